"""The edge's door checks, shared by every way in: the origin and the per-IP connect rate.

``/ws`` (and the HTTP fallback's stream, ``POST /sse``) call ``EntryGate.admit``
before they open a session: a browser's ``Origin`` must be in ``ALLOWED_ORIGINS``
and the client IP must have a token left in its ``CONNECT_RATE`` bucket. The
server API calls ``check_origin`` alone (its rate limit is per credential). Each
answers a ``Refusal`` (or None); ``Refusal.response()`` is the JSON answer ``/ws``
gives, and other doors may map it to their own error shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from accord.common.audit import AuditLog
from accord.edge import metrics
from accord.edge.limits import SharedBuckets
from aiohttp import web

STATUS = {"FORBIDDEN": 403, "RATE_LIMITED": 429}


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    retry_after_ms: int | None = None

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def response(self) -> web.Response:
        body: dict[str, object] = {"error": self.code, "message": self.message}
        headers = {}
        if self.retry_after_ms is not None:
            body["retry_after_ms"] = self.retry_after_ms
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_ms / 1000)))
        return web.json_response(body, status=self.status, headers=headers)


def check_origin(
    allowed: tuple[str, ...] | None, request: web.Request, audit: AuditLog
) -> Refusal | None:
    """A browser's ``Origin`` outside ``ALLOWED_ORIGINS``: refused (no Origin: not a browser)."""
    origin = request.headers.get("Origin")
    if origin is None or allowed is None or origin.rstrip("/") in allowed:
        return None
    audit.emit("origin.refused", ip=request.remote, origin=origin, path=request.path)
    return Refusal("FORBIDDEN", "origin not allowed")


class EntryGate:
    """The origin and per-IP connect-rate checks of a door that opens sessions."""

    def __init__(
        self, allowed_origins: tuple[str, ...] | None, limits: SharedBuckets, audit: AuditLog
    ) -> None:
        self._origins = allowed_origins
        self.limits = limits
        self._audit = audit

    def allows_origin(self, origin: str) -> bool:
        """``origin`` may open sessions here (for CORS answers: nothing is audited)."""
        return self._origins is None or origin.rstrip("/") in self._origins

    def refuse_origin(self, request: web.Request) -> Refusal | None:
        """The origin check alone (a request into a session that is already open)."""
        return check_origin(self._origins, request, self._audit)

    def admit(self, request: web.Request) -> Refusal | None:
        refusal = check_origin(self._origins, request, self._audit)
        if refusal is not None:
            return refusal
        wait_ms = self.limits.take(request.remote or "?")
        if wait_ms:
            metrics.CONNECTS_REFUSED.inc()
            return Refusal("RATE_LIMITED", "too many connections", retry_after_ms=wait_ms)
        return None

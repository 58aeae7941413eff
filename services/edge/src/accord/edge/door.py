"""The checks every new session passes first, whatever its transport: draining, origin, rate."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from accord.edge import metrics
from accord.edge.limits import SharedBuckets
from accord.edge.settings import Settings
from aiohttp import web

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a new session is refused, before anything of it is read."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    retry_after_ms: int | None = None


def origin_allowed(settings: Settings, origin: str | None) -> bool:
    allowed = settings.allowed_origins
    return origin is None or allowed is None or origin.rstrip("/") in allowed


def check(
    request: web.Request, settings: Settings, draining: bool, connect_limits: SharedBuckets
) -> Refusal | None:
    """None when a session may start; else the refusal to answer with."""
    if draining:
        return Refusal(503, "draining", "the edge is shutting down")
    origin = request.headers.get("Origin")
    if not origin_allowed(settings, origin):
        log.info("refused connection from origin %s", origin)
        return Refusal(403, "FORBIDDEN", "origin not allowed")
    wait_ms = connect_limits.take(request.remote or "?")
    if wait_ms:
        metrics.CONNECTS_REFUSED.inc()
        return Refusal(
            429,
            "RATE_LIMITED",
            "too many connections",
            {"Retry-After": str(max(1, wait_ms // 1000))},
            wait_ms,
        )
    return None

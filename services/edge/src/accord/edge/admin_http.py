"""What the edge's admin routes share: the admin token check, JSON bodies, refusals.

Used by ``accord.edge.admin`` (sessions and revocations) and
``accord.edge.admin_webhooks``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import datetime
from typing import Any

from accord.edge.revocation_store import StoreUnavailable
from accord.edge.settings import Settings
from aiohttp import web

LOOPBACK = "loopback"
MAX_TTL = 10 * 365 * 86400.0


def fingerprint(token: str) -> str:
    """How the audit log names an admin token: never the token itself."""
    return "admin:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def authorized(
    settings: Settings, request: web.Request, *, loopback_ok: bool
) -> str | web.Response:
    """The caller (the token's fingerprint, or ``loopback``), or the refusal to answer."""
    token = settings.admin_token
    if token is None:
        if loopback_ok and request.remote in ("127.0.0.1", "::1"):
            return LOOPBACK
        return web.json_response(
            {"error": "FORBIDDEN", "message": "the admin API is off: set ADMIN_TOKEN"}, status=403
        )
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return web.json_response({"error": "UNAUTHENTICATED"}, status=401)
    return fingerprint(token)


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"error":"BAD_REQUEST","message":"body must be JSON"}',
            content_type="application/json",
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text='{"error":"BAD_REQUEST","message":"body must be an object"}',
            content_type="application/json",
        )
    return body


def bad(message: str) -> web.Response:
    return web.json_response({"error": "BAD_REQUEST", "message": message}, status=400)


def unavailable(error: StoreUnavailable, **extra: Any) -> web.Response:
    return web.json_response({"error": "UNAVAILABLE", "message": str(error), **extra}, status=503)


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def expiry_of(body: dict[str, Any], now: float) -> float | web.Response | None:
    """``ttl`` (seconds) or ``expires_at`` (Unix seconds or RFC 3339): when the rule ends."""
    ttl, expires_at = body.get("ttl"), body.get("expires_at")
    if ttl is not None and expires_at is not None:
        return bad("give ttl or expires_at, not both")
    if ttl is not None:
        seconds = number(ttl)
        if seconds is None or not 0 < seconds <= MAX_TTL:
            return bad(f"ttl must be a number of seconds in (0, {MAX_TTL:.0f}]")
        return now + seconds
    if expires_at is None:
        return None
    at = number(expires_at)
    if at is None and isinstance(expires_at, str):
        try:
            parsed = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            at = parsed.timestamp()
    if at is None:
        return bad("expires_at must be Unix seconds or an RFC 3339 time with its offset")
    if not now < at <= now + MAX_TTL:
        return bad("expires_at must be in the future (and within 10 years)")
    return at

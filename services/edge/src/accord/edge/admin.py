"""The operator's HTTP API on the edge: list, disconnect, revoke room access; webhooks.

Every call needs ``Authorization: Bearer <ADMIN_TOKEN>``; without ADMIN_TOKEN
the API is off (``/peers`` alone then answers loopback callers). Revocations and
disconnects go through the revocation store: with ``REDIS_URL`` they reach every
edge and revocations survive restarts; without it they are this edge's alone.
Every call is in the audit log (``admin.call``: the token's fingerprint, the
action, the result).
The webhook routes proxy sync's ``Webhooks`` service: any edge answers for all
(the state is in sync's database).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from datetime import datetime
from typing import Any

import grpc
from accord.api.sync.v1 import sync_pb2 as spb
from accord.api.sync.v1.sync_pb2_grpc import WebhooksStub
from accord.common.audit import AuditLog, rfc3339
from accord.edge.codes import CLOSE_ADMIN
from accord.edge.registry import Sessions
from accord.edge.revocation_store import Store, StoreUnavailable
from accord.edge.revocations import ACCESS, Rule
from accord.edge.session import Session
from accord.edge.settings import Settings
from aiohttp import web

log = logging.getLogger(__name__)


LOOPBACK = "loopback"
_RESULTS = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 503: "unavailable"}
MAX_TTL = 10 * 365 * 86400.0


def fingerprint(token: str) -> str:
    """How the audit log names an admin token: never the token itself."""
    return "admin:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _authorized(
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


async def _body(request: web.Request) -> dict[str, Any]:
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


def _bad(message: str) -> web.Response:
    return web.json_response({"error": "BAD_REQUEST", "message": message}, status=400)


def _unavailable(error: StoreUnavailable, **extra: Any) -> web.Response:
    return web.json_response({"error": "UNAVAILABLE", "message": str(error), **extra}, status=503)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _expiry(body: dict[str, Any], now: float) -> float | web.Response | None:
    """``ttl`` (seconds) or ``expires_at`` (Unix seconds or RFC 3339): when the rule ends."""
    ttl, expires_at = body.get("ttl"), body.get("expires_at")
    if ttl is not None and expires_at is not None:
        return _bad("give ttl or expires_at, not both")
    if ttl is not None:
        seconds = _number(ttl)
        if seconds is None or not 0 < seconds <= MAX_TTL:
            return _bad(f"ttl must be a number of seconds in (0, {MAX_TTL:.0f}]")
        return now + seconds
    if expires_at is None:
        return None
    at = _number(expires_at)
    if at is None and isinstance(expires_at, str):
        try:
            parsed = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            at = parsed.timestamp()
    if at is None:
        return _bad("expires_at must be Unix seconds or an RFC 3339 time with its offset")
    if not now < at <= now + MAX_TTL:
        return _bad("expires_at must be in the future (and within 10 years)")
    return at


class AdminApi:
    def __init__(
        self, settings: Settings, sessions: Sessions[Session], store: Store, audit: AuditLog
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.store = store
        self.revocations = store.revocations
        self.audit = audit
        store.listen(self)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/peers", self.peers)
        app.router.add_post("/admin/disconnect", self.disconnect)
        app.router.add_post("/admin/revoke", self.revoke)
        app.router.add_delete("/admin/revoke", self.unrevoke)
        app.router.add_get("/admin/revocations", self.list_revocations)

    def _caller(
        self, request: web.Request, action: str, *, loopback_ok: bool = False
    ) -> str | web.Response:
        caller = _authorized(self.settings, request, loopback_ok=loopback_ok)
        if isinstance(caller, web.Response):
            self._audit(request, action, None, caller.status)
        return caller

    def _audit(
        self, request: web.Request, action: str, actor: str | None, status: int, **fields: Any
    ) -> None:
        result = "ok" if status < 400 else _RESULTS.get(status, "error")
        self.audit.emit(
            "admin.call",
            actor=actor,
            ip=request.remote,
            action=action,
            result=result,
            status=status,
            **fields,
        )

    # -- the store's listener (changes made on any edge) --------------------

    async def revoked(self, user_id: str) -> None:
        for session in self.sessions.values():
            if session.identity is not None and session.identity.user_id == user_id:
                await session.enforce_access()

    def close_sessions(self, user_id: str | None, session_id: str | None) -> int:
        closed = 0
        for session in self.sessions.values():
            matches = session.session_id == session_id or (
                user_id is not None
                and session.identity is not None
                and session.identity.user_id == user_id
            )
            if matches:
                session.close_soon(CLOSE_ADMIN, "disconnected by an operator")
                self.audit.emit(
                    "session.disconnected",
                    actor=session.identity.user_id if session.identity else None,
                    session_id=session.session_id,
                    ip=session.remote,
                    code=CLOSE_ADMIN,
                )
                closed += 1
        return closed

    def lifted(self, rule: Rule) -> None:
        user_id, room, access = rule
        self.audit.emit(
            "revocation.lifted",
            actor="system",
            room=room,
            user_id=user_id,
            access=access,
            reason="expired",
        )

    # -- routes -------------------------------------------------------------

    async def peers(self, request: web.Request) -> web.Response:
        caller = self._caller(request, "peers", loopback_ok=True)
        if isinstance(caller, web.Response):
            return caller
        sessions = [
            {
                "session_id": s.session_id,
                "user_id": s.identity.user_id if s.identity else None,
                "client_id": s.client_id,
                "remote": s.remote,
                "rooms": sorted(s.subscriptions),
                "encoding": "binary" if s.binary else "json",
                "queued": s.queued,
            }
            for s in self.sessions.values()
        ]
        self._audit(request, "peers", caller, 200)
        return web.json_response(
            {"edge_id": self.settings.edge_id, "count": len(sessions), "sessions": sessions}
        )

    async def disconnect(self, request: web.Request) -> web.Response:
        caller = self._caller(request, "disconnect")
        if isinstance(caller, web.Response):
            return caller
        body = await _body(request)
        user_id, session_id = body.get("user_id"), body.get("session_id")
        if not isinstance(user_id, str):
            user_id = None
        if not isinstance(session_id, str):
            session_id = None
        if user_id is None and session_id is None:
            self._audit(request, "disconnect", caller, 400)
            return _bad("give user_id or session_id")
        closed = self.close_sessions(user_id, session_id)
        target = {"user_id": user_id, "session_id": session_id}
        log.info("admin disconnected %d sessions", closed, extra=target)
        try:
            await self.store.disconnect(user_id, session_id)
        except StoreUnavailable as error:
            self._audit(request, "disconnect", caller, 503, disconnected=closed, **target)
            return _unavailable(error, disconnected=closed)
        self._audit(request, "disconnect", caller, 200, disconnected=closed, **target)
        answer: dict[str, Any] = {"disconnected": closed}
        if self.store.shared:
            answer["other_edges"] = "told"
        return web.json_response(answer)

    def _rule(self, body: dict[str, Any]) -> Rule | web.Response:
        user_id, room, access = body.get("user_id"), body.get("room"), body.get("access", "read")
        if not isinstance(user_id, str) or not user_id:
            return _bad("user_id must be a non-empty string")
        if not isinstance(room, str) or not room:
            return _bad("room must be a room name or glob pattern")
        if access not in ACCESS:
            return _bad("access must be read or write")
        return user_id, room, access

    async def revoke(self, request: web.Request) -> web.Response:
        caller = self._caller(request, "revoke")
        if isinstance(caller, web.Response):
            return caller
        body = await _body(request)
        rule = self._rule(body)
        expires_at = _expiry(body, time.time()) if not isinstance(rule, web.Response) else None
        if isinstance(rule, web.Response) or isinstance(expires_at, web.Response):
            refusal = rule if isinstance(rule, web.Response) else expires_at
            assert isinstance(refusal, web.Response)
            self._audit(request, "revoke", caller, 400)
            return refusal
        user_id, room, access = rule
        try:
            await self.store.add(rule, expires_at)
        except StoreUnavailable as error:
            self._audit(request, "revoke", caller, 503, user_id=user_id, access=access, room=room)
            return _unavailable(error)
        ended = 0
        for session in self.sessions.values():
            if session.identity is not None and session.identity.user_id == user_id:
                ended += await session.enforce_access()
        log.info("admin revoked %s access to %s", access, room, extra={"user_id": user_id})
        expiry = None if expires_at is None else rfc3339(expires_at)
        self._audit(request, "revoke", caller, 200, user_id=user_id, access=access, room=room)
        self.audit.emit(
            "revocation.added",
            actor=caller,
            ip=request.remote,
            room=room,
            user_id=user_id,
            access=access,
            expires_at=expiry,
        )
        return web.json_response(
            {"revoked": True, "subscriptions_ended": ended, "expires_at": expiry}
        )

    async def unrevoke(self, request: web.Request) -> web.Response:
        caller = self._caller(request, "unrevoke")
        if isinstance(caller, web.Response):
            return caller
        rule = self._rule(await _body(request))
        if isinstance(rule, web.Response):
            self._audit(request, "unrevoke", caller, 400)
            return rule
        user_id, room, access = rule
        try:
            removed = await self.store.remove(rule)
        except StoreUnavailable as error:
            self._audit(request, "unrevoke", caller, 503, user_id=user_id, access=access, room=room)
            return _unavailable(error)
        self._audit(
            request,
            "unrevoke",
            caller,
            200,
            user_id=user_id,
            access=access,
            room=room,
            removed=removed,
        )
        if removed:
            self.audit.emit(
                "revocation.lifted",
                actor=caller,
                ip=request.remote,
                room=room,
                user_id=user_id,
                access=access,
                reason="admin",
            )
        return web.json_response({"removed": removed})

    async def list_revocations(self, request: web.Request) -> web.Response:
        caller = self._caller(request, "revocations")
        if isinstance(caller, web.Response):
            return caller
        self._audit(request, "revocations", caller, 200)
        return web.json_response(
            {"revocations": self.revocations.listing(), "shared": self.store.shared}
        )


def webhook_json(endpoint: spb.WebhookEndpoint) -> dict[str, Any]:
    """One endpoint as ``ListWebhooks`` gives it, with the proto's field names."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "rooms": list(endpoint.rooms),
        "events": list(endpoint.events),
        "configured": endpoint.configured,
        "parked": endpoint.parked,
        "parked_at": endpoint.parked_at,
        "parked_reason": endpoint.parked_reason,
        "backlog_rows": endpoint.backlog_rows,
        "backlog_changes": endpoint.backlog_changes,
        "backlog_rooms": endpoint.backlog_rooms,
        "oldest_at": endpoint.oldest_at,
        "attempts": endpoint.attempts,
        "last_error": endpoint.last_error,
    }


_RPC_STATUS = {grpc.StatusCode.NOT_FOUND: (404, "NOT_FOUND")}


def _rpc_failed(error: grpc.aio.AioRpcError) -> web.Response:
    status, code = _RPC_STATUS.get(error.code(), (503, "UNAVAILABLE"))
    return web.json_response({"error": code, "message": error.details() or code}, status=status)


class WebhooksAdmin:
    """``GET /admin/webhooks`` and ``POST /admin/webhooks/{id}/resume``, over sync's
    ``Webhooks`` service on the edge's sync channel."""

    def __init__(self, settings: Settings, sync_channel: grpc.aio.Channel) -> None:
        self.settings = settings
        self._stub = WebhooksStub(sync_channel)  # type: ignore[no-untyped-call]

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/webhooks", self.list_webhooks)
        app.router.add_post("/admin/webhooks/{id}/resume", self.resume)

    async def list_webhooks(self, request: web.Request) -> web.Response:
        caller = _authorized(self.settings, request, loopback_ok=False)
        if isinstance(caller, web.Response):
            return caller
        try:
            answer: spb.ListWebhooksResponse = await self._stub.ListWebhooks(
                spb.ListWebhooksRequest(), timeout=self.settings.rpc_timeout
            )
        except grpc.aio.AioRpcError as error:
            return _rpc_failed(error)
        return web.json_response({"endpoints": [webhook_json(e) for e in answer.endpoints]})

    async def resume(self, request: web.Request) -> web.Response:
        caller = _authorized(self.settings, request, loopback_ok=False)
        if isinstance(caller, web.Response):
            return caller
        endpoint = request.match_info["id"]
        try:
            answer: spb.ResumeWebhookResponse = await self._stub.ResumeWebhook(
                spb.ResumeWebhookRequest(id=endpoint), timeout=self.settings.rpc_timeout
            )
        except grpc.aio.AioRpcError as error:
            return _rpc_failed(error)
        log.info("admin resumed webhook endpoint %s (parked: %s)", endpoint, answer.was_parked)
        return web.json_response(
            {"was_parked": answer.was_parked, "endpoint": webhook_json(answer.endpoint)}
        )

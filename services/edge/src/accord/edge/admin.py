"""The operator's HTTP API on the edge: list, disconnect, revoke room access; webhooks.

Every call needs ``Authorization: Bearer <ADMIN_TOKEN>``; without ADMIN_TOKEN
the API is off (``/peers`` alone then answers loopback callers). Revocations
live in this edge's memory until lifted or the process restarts: with several
edges, call each one (``/peers`` on each shows who is where). The webhook routes
proxy sync's ``Webhooks`` service: any edge answers for all (the state is in sync's
database).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import grpc
from accord.api.sync.v1 import sync_pb2 as spb
from accord.api.sync.v1.sync_pb2_grpc import WebhooksStub
from accord.edge.codes import CLOSE_ADMIN
from accord.edge.registry import Sessions
from accord.edge.revocations import ACCESS, Revocations
from accord.edge.session import Session
from accord.edge.settings import Settings
from aiohttp import web

log = logging.getLogger(__name__)


def _authorized(
    settings: Settings, request: web.Request, *, loopback_ok: bool
) -> web.Response | None:
    token = settings.admin_token
    if token is None:
        if loopback_ok and request.remote in ("127.0.0.1", "::1"):
            return None
        return web.json_response(
            {"error": "FORBIDDEN", "message": "the admin API is off: set ADMIN_TOKEN"}, status=403
        )
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return web.json_response({"error": "UNAUTHENTICATED"}, status=401)
    return None


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


class AdminApi:
    def __init__(
        self, settings: Settings, sessions: Sessions[Session], revocations: Revocations
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.revocations = revocations

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/peers", self.peers)
        app.router.add_post("/admin/disconnect", self.disconnect)
        app.router.add_post("/admin/revoke", self.revoke)
        app.router.add_delete("/admin/revoke", self.unrevoke)
        app.router.add_get("/admin/revocations", self.list_revocations)

    async def peers(self, request: web.Request) -> web.Response:
        denied = _authorized(self.settings, request, loopback_ok=True)
        if denied is not None:
            return denied
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
        return web.json_response(
            {"edge_id": self.settings.edge_id, "count": len(sessions), "sessions": sessions}
        )

    async def disconnect(self, request: web.Request) -> web.Response:
        denied = _authorized(self.settings, request, loopback_ok=False)
        if denied is not None:
            return denied
        body = await _body(request)
        user_id, session_id = body.get("user_id"), body.get("session_id")
        if not isinstance(user_id, str) and not isinstance(session_id, str):
            return _bad("give user_id or session_id")
        closed = 0
        for session in list(self.sessions.values()):
            matches = session.session_id == session_id or (
                session.identity is not None and session.identity.user_id == user_id
            )
            if matches:
                session.close_soon(CLOSE_ADMIN, "disconnected by an operator")
                closed += 1
        log.info(
            "admin disconnected %d sessions",
            closed,
            extra={"user_id": user_id, "session_id": session_id},
        )
        return web.json_response({"disconnected": closed})

    def _rule(self, body: dict[str, Any]) -> tuple[str, str, str] | web.Response:
        user_id, room, access = body.get("user_id"), body.get("room"), body.get("access", "read")
        if not isinstance(user_id, str) or not user_id:
            return _bad("user_id must be a non-empty string")
        if not isinstance(room, str) or not room:
            return _bad("room must be a room name or glob pattern")
        if access not in ACCESS:
            return _bad("access must be read or write")
        return user_id, room, access

    async def revoke(self, request: web.Request) -> web.Response:
        denied = _authorized(self.settings, request, loopback_ok=False)
        if denied is not None:
            return denied
        rule = self._rule(await _body(request))
        if isinstance(rule, web.Response):
            return rule
        user_id, room, access = rule
        self.revocations.add(user_id, room, access)
        ended = 0
        for session in list(self.sessions.values()):
            if session.identity is not None and session.identity.user_id == user_id:
                ended += await session.enforce_access()
        log.info("admin revoked %s access to %s", access, room, extra={"user_id": user_id})
        return web.json_response({"revoked": True, "subscriptions_ended": ended})

    async def unrevoke(self, request: web.Request) -> web.Response:
        denied = _authorized(self.settings, request, loopback_ok=False)
        if denied is not None:
            return denied
        rule = self._rule(await _body(request))
        if isinstance(rule, web.Response):
            return rule
        return web.json_response({"removed": self.revocations.remove(*rule)})

    async def list_revocations(self, request: web.Request) -> web.Response:
        denied = _authorized(self.settings, request, loopback_ok=False)
        if denied is not None:
            return denied
        return web.json_response({"revocations": self.revocations.listing()})


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
        denied = _authorized(self.settings, request, loopback_ok=False)
        if denied is not None:
            return denied
        try:
            answer: spb.ListWebhooksResponse = await self._stub.ListWebhooks(
                spb.ListWebhooksRequest(), timeout=self.settings.rpc_timeout
            )
        except grpc.aio.AioRpcError as error:
            return _rpc_failed(error)
        return web.json_response({"endpoints": [webhook_json(e) for e in answer.endpoints]})

    async def resume(self, request: web.Request) -> web.Response:
        denied = _authorized(self.settings, request, loopback_ok=False)
        if denied is not None:
            return denied
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

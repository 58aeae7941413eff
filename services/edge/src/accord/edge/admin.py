"""The operator's HTTP API on the edge: list, disconnect, revoke room access; webhooks.

Every call needs ``Authorization: Bearer <ADMIN_TOKEN>``; without ADMIN_TOKEN
the API is off (``/peers`` alone then answers loopback callers). Revocations and
disconnects go through the revocation store: with ``REDIS_URL`` they reach every
edge and revocations survive restarts; without it they are this edge's alone.
Every call is in the audit log (``admin.call``: the token's fingerprint, the
action, the result).
The webhook routes (``accord.edge.admin_webhooks``) proxy sync's ``Webhooks``
service: any edge answers for all (the state is in sync's database). The shared
pieces (the token check, bodies, refusals) are in ``accord.edge.admin_http``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from accord.common.audit import AuditLog, rfc3339
from accord.edge.admin_http import authorized, bad, expiry_of, json_body, unavailable
from accord.edge.codes import CLOSE_ADMIN
from accord.edge.registry import Sessions
from accord.edge.revocation_store import Store, StoreUnavailable
from accord.edge.revocations import ACCESS, Rule
from accord.edge.session import Session
from accord.edge.settings import Settings
from aiohttp import web

log = logging.getLogger(__name__)

_RESULTS = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 503: "unavailable"}


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
        caller = authorized(self.settings, request, loopback_ok=loopback_ok)
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
        self._rule_event("revocation.lifted", rule, "system", None, reason="expired")

    def _rule_event(
        self, event: str, rule: Rule, actor: str, ip: str | None, **fields: Any
    ) -> None:
        """An audit event about one revocation rule (``revocation.added``, ``.lifted``)."""
        user_id, room, access = rule
        self.audit.emit(
            event, actor=actor, ip=ip, room=room, user_id=user_id, access=access, **fields
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
        body = await json_body(request)
        user_id, session_id = body.get("user_id"), body.get("session_id")
        if not isinstance(user_id, str):
            user_id = None
        if not isinstance(session_id, str):
            session_id = None
        if user_id is None and session_id is None:
            self._audit(request, "disconnect", caller, 400)
            return bad("give user_id or session_id")
        closed = self.close_sessions(user_id, session_id)
        target = {"user_id": user_id, "session_id": session_id}
        log.info("admin disconnected %d sessions", closed, extra=target)
        try:
            await self.store.disconnect(user_id, session_id)
        except StoreUnavailable as error:
            self._audit(request, "disconnect", caller, 503, disconnected=closed, **target)
            return unavailable(error, disconnected=closed)
        self._audit(request, "disconnect", caller, 200, disconnected=closed, **target)
        answer: dict[str, Any] = {"disconnected": closed}
        if self.store.shared:
            answer["other_edges"] = "told"
        return web.json_response(answer)

    def _rule(self, body: dict[str, Any]) -> Rule | web.Response:
        user_id, room, access = body.get("user_id"), body.get("room"), body.get("access", "read")
        if not isinstance(user_id, str) or not user_id:
            return bad("user_id must be a non-empty string")
        if not isinstance(room, str) or not room:
            return bad("room must be a room name or glob pattern")
        if access not in ACCESS:
            return bad("access must be read or write")
        return user_id, room, access

    async def revoke(self, request: web.Request) -> web.Response:
        caller = self._caller(request, "revoke")
        if isinstance(caller, web.Response):
            return caller
        body = await json_body(request)
        rule = self._rule(body)
        expires_at = expiry_of(body, time.time()) if not isinstance(rule, web.Response) else None
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
            return unavailable(error)
        ended = 0
        for session in self.sessions.values():
            if session.identity is not None and session.identity.user_id == user_id:
                ended += await session.enforce_access()
        log.info("admin revoked %s access to %s", access, room, extra={"user_id": user_id})
        expiry = None if expires_at is None else rfc3339(expires_at)
        self._audit(request, "revoke", caller, 200, user_id=user_id, access=access, room=room)
        self._rule_event("revocation.added", rule, caller, request.remote, expires_at=expiry)
        return web.json_response(
            {"revoked": True, "subscriptions_ended": ended, "expires_at": expiry}
        )

    async def unrevoke(self, request: web.Request) -> web.Response:
        caller = self._caller(request, "unrevoke")
        if isinstance(caller, web.Response):
            return caller
        rule = self._rule(await json_body(request))
        if isinstance(rule, web.Response):
            self._audit(request, "unrevoke", caller, 400)
            return rule
        user_id, room, access = rule
        try:
            removed = await self.store.remove(rule)
        except StoreUnavailable as error:
            self._audit(request, "unrevoke", caller, 503, user_id=user_id, access=access, room=room)
            return unavailable(error)
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
            self._rule_event("revocation.lifted", rule, caller, request.remote, reason="admin")
        return web.json_response({"removed": removed})

    async def list_revocations(self, request: web.Request) -> web.Response:
        caller = self._caller(request, "revocations")
        if isinstance(caller, web.Response):
            return caller
        self._audit(request, "revocations", caller, 200)
        return web.json_response(
            {"revocations": self.revocations.listing(), "shared": self.store.shared}
        )

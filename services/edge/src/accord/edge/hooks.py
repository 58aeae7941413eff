"""The edge's side of ``accord.extensions``: its five hooks, run where sessions reach them.

``EdgeHooks`` holds one ``HookRunner`` per hook over the ``EDGE_EXTENSIONS``
(their failures counted in ``accord_edge_extension_errors_total``). Every call
site asks ``runner.active`` first, so a hook no extension implements costs
nothing: no payload is built and nothing more is awaited (``bench/edge_hooks.py``).

- ``door``: ``on_connect``, before the WebSocket upgrade (or any transport's
  first response); a refusal is an HTTP error ``{"code","message"}`` (403 for
  ``FORBIDDEN``, 429, 500, 503 …).
- ``authenticated``: ``on_authenticate``, after a ``hello``'s or ``refresh``'s
  token verified; raises ``ProtocolError`` or gives the (rewritten) identity.
- ``subscribing``: ``on_subscribe``, after the grants allowed it.
- ``push``: ``before_push`` for each change, then sync for the changes let
  through; the refused ones get their error result in place. The WebSocket
  ``push`` and the server API's ``POST …/changes`` both go through it.
- ``ended``: ``on_disconnect`` once a transport's session ended, each
  extension told in turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from accord.api.sync.v1 import sync_pb2 as spb
from accord.common.opcheck import OpError, check_change
from accord.edge import auth, metrics
from accord.edge.api.errors import STATUS
from accord.edge.backends import SyncClient
from accord.edge.ops import parse_change
from accord.edge.protocol import ProtocolError
from accord.edge.results import error_result, push_results
from accord.extensions import (
    BeforePush,
    Connection,
    Extension,
    Failed,
    HookRunner,
    Identity,
    OnAuthenticate,
    OnConnect,
    OnDisconnect,
    OnSubscribe,
    Refuse,
    Rewriting,
    Session,
)
from aiohttp import web

SHOWN_HEADERS = ("user-agent", "accept-language")
"""The request headers an extension sees (with every ``x-forwarded-*``), by lower-case name."""


def connection_of(
    request: web.Request, transport: Literal["websocket", "sse", "api"] = "websocket"
) -> Connection:
    """What an extension may know of where a request comes from (never its credentials)."""
    headers = {
        name.lower(): value
        for name, value in request.headers.items()
        if name.lower() in SHOWN_HEADERS or name.lower().startswith("x-forwarded-")
    }
    return Connection(
        remote=request.remote or "",
        origin=request.headers.get("Origin"),
        headers=headers,
        transport=transport,
    )


class Sessionlike(Protocol):
    """What the hooks read of a client session (``session.Session``)."""

    session_id: str
    client_id: str
    identity: auth.Identity | None
    connection: Connection | None
    close_reason: str
    ended_rooms: tuple[str, ...]

    @property
    def remote(self) -> str | None: ...


def connection_of_session(session: Sessionlike) -> Connection:
    """The session's ``Connection``; a transport that made none gives only the peer address."""
    return session.connection or Connection(session.remote or "", None)


def public_identity(identity: auth.Identity) -> Identity:
    return Identity(identity.user_id, identity.claims, identity.read, identity.write)


def session_of(session: Sessionlike) -> Session:
    """An authenticated session (after its ``hello``) as extensions see it."""
    identity = session.identity
    assert identity is not None
    connection = connection_of_session(session)
    return Session(session.session_id, session.client_id, public_identity(identity), connection)


def _patterns(value: Any, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"identity {name} must be a sequence of glob patterns or None")
    if not all(isinstance(pattern, str) for pattern in value):
        raise ValueError(f"identity {name} must hold strings")
    return tuple(value)


def _checked_identity(value: Any) -> Identity:
    if not isinstance(value, Identity):
        raise ValueError(f"Rewrite of an identity holds {type(value).__name__}, not an Identity")
    user_id = value.user_id
    if not isinstance(user_id, str) or not 0 < len(user_id) <= auth.MAX_SUB:
        raise ValueError(f"identity user_id must be 1-{auth.MAX_SUB} characters")
    if not isinstance(value.claims, Mapping):
        raise ValueError("identity claims must be a mapping")
    return Identity(
        user_id, value.claims, _patterns(value.rooms, "rooms"), _patterns(value.write, "write")
    )


def _checked_change(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"Rewrite of a change holds {type(value).__name__}, not a mapping")
    change = dict(value)
    try:
        check_change(change, 0)
    except OpError as error:
        raise ValueError(error.message) from None
    return change


def _error(result: Refuse | Failed, room: str | None = None) -> ProtocolError:
    return ProtocolError(result.code, result.message, room=room)


class EdgeHooks:
    def __init__(self, extensions: Sequence[Extension] = (), timeout: float = 1.0) -> None:
        errors = metrics.EXTENSION_ERRORS
        self.on_connect: HookRunner[OnConnect] = HookRunner(
            extensions, "on_connect", timeout, errors
        )
        self.on_authenticate: HookRunner[OnAuthenticate] = HookRunner(
            extensions,
            "on_authenticate",
            timeout,
            errors,
            Rewriting("identity", _checked_identity),
        )
        self.on_subscribe: HookRunner[OnSubscribe] = HookRunner(
            extensions, "on_subscribe", timeout, errors
        )
        self.before_push: HookRunner[BeforePush] = HookRunner(
            extensions, "before_push", timeout, errors, Rewriting("change", _checked_change)
        )
        # One runner per extension: every one is told, whatever the others answer.
        self._on_disconnect: list[HookRunner[OnDisconnect]] = [
            HookRunner([e], "on_disconnect", timeout, errors)
            for e in extensions
            if e.hook("on_disconnect") is not None
        ]
        self.active = bool(extensions)
        """Whether any extension is installed (sessions then keep their ``Connection``)."""

    @property
    def on_disconnect_active(self) -> bool:
        return bool(self._on_disconnect)

    async def door(
        self, request: web.Request, transport: Literal["websocket", "sse"]
    ) -> tuple[Connection | None, web.Response | None]:
        """A transport's door: the ``Connection`` its session keeps (None without
        extensions), and ``on_connect``'s refusal (an HTTP answer) or None to go on."""
        if not self.active:
            return None, None
        connection = connection_of(request, transport)
        if not self.on_connect.active:
            return connection, None
        return connection, await self.refusal(connection)

    async def refusal(self, connection: Connection) -> web.Response | None:
        """``on_connect``: None to go on, or the HTTP answer refusing the connection."""
        result = await self.on_connect.run(OnConnect(connection))
        if not isinstance(result, Refuse | Failed):
            return None
        return web.json_response(
            {"code": result.code, "message": result.message}, status=STATUS[result.code]
        )

    async def authenticated(
        self,
        identity: auth.Identity,
        connection: Connection,
        client_id: str,
        user: Mapping[str, Any],
    ) -> auth.Identity:
        """``on_authenticate``: the identity the session goes on with; raises ``ProtocolError``."""
        payload = OnAuthenticate(connection, client_id, public_identity(identity), user)
        result = await self.on_authenticate.run(payload)
        if isinstance(result, Refuse | Failed):
            raise _error(result)
        new = result.identity
        if new is payload.identity:
            return identity
        write = new.write if new.write is not None else new.rooms
        return auth.Identity(new.user_id, identity.expires_at, new.rooms, write, new.claims)

    async def subscribing(
        self, session: Session, room: str, since: int, presence: Mapping[str, Any] | None
    ) -> None:
        """``on_subscribe``: returns to go on; raises ``ProtocolError`` for that subscribe."""
        result = await self.on_subscribe.run(OnSubscribe(session, room, since, presence))
        if isinstance(result, Refuse | Failed):
            raise _error(result, room)

    async def push(
        self, sync: SyncClient, session: Session, request: spb.PushRequest, raw: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """``before_push`` for each change of ``request`` (``raw``: as the client sent them),
        then the changes let through to sync: the ack's results, one per change, in order."""
        room = request.room
        refused: dict[int, dict[str, Any]] = {}
        kept: list[spb.Change] = []
        rewritten = False
        for index, (change, original) in enumerate(zip(request.changes, raw, strict=True)):
            result = await self.before_push.run(BeforePush(session, room, original))
            if isinstance(result, Refuse):
                refused[index] = error_result(
                    change.client_seq, result.code, result.message, result.json_path
                )
            elif isinstance(result, Failed):
                refused[index] = error_result(change.client_seq, result.code, result.message)
            elif result.change is original:
                kept.append(change)
            else:
                rewrite = {**result.change, "client_seq": change.client_seq}
                kept.append(parse_change(rewrite, room, index))
                rewritten = True
        results: list[dict[str, Any]] = []
        if kept:
            if refused or rewritten:
                request = spb.PushRequest(
                    room=room, user_id=request.user_id, client_id=request.client_id, changes=kept
                )
            results = push_results(await sync.push(request))
        if not refused:
            return results
        applied = iter(results)
        return [refused[i] if i in refused else next(applied) for i in range(len(raw))]

    async def ended(self, session: Sessionlike, code: int) -> None:
        """``on_disconnect`` for a session that ended with close ``code``: every extension
        told; a failure is only logged and counted."""
        connection = session.connection
        if connection is None or not self._on_disconnect:
            return
        who = session_of(session) if session.identity is not None else None
        rooms = session.ended_rooms
        payload = OnDisconnect(who, connection, code, session.close_reason, rooms)
        for runner in self._on_disconnect:
            await runner.run(payload)


NO_HOOKS = EdgeHooks()
"""An edge without extensions (every runner inactive)."""

"""The WebSocket transport (aiohttp) and the ``/ws`` route that starts sessions on it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from accord.edge import metrics
from accord.edge.codes import CLOSE_FULL, FAST_WRITE_LIMIT
from accord.edge.context import SessionContext
from accord.edge.gate import EntryGate
from accord.edge.protocol import Out
from accord.edge.registry import Sessions
from accord.edge.session import Session
from accord.edge.transport import Incoming, Kind
from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

_KINDS = {
    WSMsgType.TEXT: Kind.TEXT,
    WSMsgType.BINARY: Kind.BINARY,
    WSMsgType.PING: Kind.PING,
    WSMsgType.PONG: Kind.PONG,
}
_CLOSED = Incoming(Kind.CLOSED)
_TOO_BIG = Incoming(Kind.TOO_BIG)


class WebSocketTransport:
    """A session's WebSocket: aiohttp's response, and its asyncio transport for the fast path."""

    __slots__ = ("_raw", "_remote", "_ws")

    def __init__(self, ws: web.WebSocketResponse, raw: Any, remote: str | None) -> None:
        self._ws = ws
        # uvloop's transports are not asyncio.Transport subclasses: duck-typed.
        self._raw: asyncio.Transport | None = raw if hasattr(raw, "get_write_buffer_size") else None
        self._remote = remote

    @property
    def remote(self) -> str | None:
        return self._remote

    @property
    def closed(self) -> bool:
        return self._ws.closed

    def buffered(self) -> int:
        raw = self._raw
        return 0 if raw is None else raw.get_write_buffer_size()

    def write_now(self, out: Out, binary: bool) -> int | None:
        raw = self._raw
        if (
            raw is None
            or raw.get_write_buffer_size() >= FAST_WRITE_LIMIT
            or raw.is_closing()
            or self._ws.closed
        ):
            return None
        # aiohttp writes uncompressed frames synchronously (a unit test guards it):
        # once nothing is queued here, every earlier frame is in the transport, so
        # writing the frame ourselves keeps the order.
        frame = out.frame(binary)
        raw.write(frame)
        return len(frame)

    async def write(self, out: Out, binary: bool) -> int:
        if binary:
            data, opcode = out.binary(), WSMsgType.BINARY
        else:
            data, opcode = out.text(), WSMsgType.TEXT
        await self._ws.send_frame(data, opcode)
        return len(data)

    async def receive(self, timeout: float | None = None) -> Incoming:
        msg = await self._ws.receive(timeout=timeout)
        kind = _KINDS.get(msg.type)
        if kind is not None:
            return Incoming(kind, msg.data or b"")
        if msg.type == WSMsgType.ERROR:
            error = self._ws.exception()
            if error is not None and "too big" in str(error).lower():
                return _TOO_BIG
        return _CLOSED

    async def pong(self, data: bytes) -> None:
        await self._ws.pong(data)

    async def ping(self) -> None:
        await self._ws.ping()

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code=code, message=reason.encode()[:120])

    @property
    def info(self) -> dict[str, Any] | None:
        return None


class WebSocketRoute:
    """``GET /ws``: checks the door (draining, origin, rate, ``on_connect``, capacity), then
    runs a session (and tells ``on_disconnect`` when it ended)."""

    def __init__(self, ctx: SessionContext, sessions: Sessions[Session], gate: EntryGate) -> None:
        self._ctx = ctx
        self._sessions = sessions
        self._gate = gate

    async def handle(self, request: web.Request) -> web.StreamResponse:
        settings = self._ctx.settings
        if self._sessions.draining:
            return web.json_response({"error": "draining"}, status=503)
        refusal = self._gate.admit(request)
        if refusal is not None:
            return refusal.response()
        hooks = self._ctx.extensions
        connection, refused = await hooks.door(request, "websocket")
        if refused is not None:
            return refused
        ws = web.WebSocketResponse(
            autoping=False,
            max_msg_size=settings.max_message_size * 4,
            compress=False,
            decode_text=False,
        )
        await ws.prepare(request)
        metrics.OPENED.inc()
        if len(self._sessions) >= settings.max_connections:
            await ws.close(code=CLOSE_FULL, message=b"server full, retry later")
            metrics.CLOSED.labels(str(CLOSE_FULL)).inc()
            return ws
        transport = WebSocketTransport(ws, request.transport, request.remote)
        session = Session(self._ctx, transport, connection)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.remove(session)
            code = session.close_code or ws.close_code or 1006
            metrics.CLOSED.labels(str(code)).inc()
            if not ws.closed:
                await ws.close()
            await hooks.ended(session, code)
        return ws

"""Which transport each connection uses (docs/transport.md): the WebSocket, until it failed
``fallback_after`` times in a row (refused, or closed before ``welcome``); then the HTTP
fallback, trying the WebSocket again in the background every ``websocket_retry``
seconds and moving back as soon as it works.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from accord.client.channel import Channel, WebSocketChannel
from accord.client.codes import THROTTLED, TOO_MANY_CONNECTS
from accord.client.connection import Connection, MessageHandler
from accord.client.errors import ConnectionLost
from accord.client.sse import SseChannel, StreamBuffered

__all__ = ["TRANSPORTS", "Fallback", "Transports"]

log = logging.getLogger(__name__)

TRANSPORTS = ("websocket", "sse")


@dataclass(frozen=True)
class Fallback:
    """When a client uses the HTTP fallback (SSE down, POST up) instead of the WebSocket.

    ``transports``: those it may use (``websocket``, ``sse``). ``after``: WebSocket
    failures in a row (refused, or closed before ``welcome``) before it falls back.
    ``websocket_retry``: seconds between tries of the WebSocket while on the fallback
    (it moves back as soon as one works). ``stream_timeout``: seconds the fallback's
    stream may take to send its first event before it is reported as buffered by a
    proxy (``StreamBuffered``).
    """

    transports: Sequence[str] = TRANSPORTS
    after: int = 2
    websocket_retry: float = 30.0
    stream_timeout: float = 10.0

    def __post_init__(self) -> None:
        order = tuple(self.transports)
        if not order or len(set(order)) != len(order) or set(order) - set(TRANSPORTS):
            raise ValueError(f"transports must be some of {TRANSPORTS}, each once")
        if self.after < 1 or self.websocket_retry <= 0 or self.stream_timeout <= 0:
            raise ValueError("fallback needs after >= 1, websocket_retry > 0, stream_timeout > 0")
        object.__setattr__(self, "transports", order)


class Transports:
    def __init__(
        self, url: str, fallback: Fallback, heartbeat: float, report: Callable[[Exception], None]
    ) -> None:
        self.url = url
        self.order = tuple(fallback.transports)
        self.fallback_after = fallback.after
        self.websocket_retry = fallback.websocket_retry
        self.stream_timeout = fallback.stream_timeout
        self.heartbeat = heartbeat
        self._report = report
        self._failures = 0
        self._fell_back_at = 0.0
        self._probe: asyncio.Task[None] | None = None

    def choose(self) -> str:
        """The transport for the next connection."""
        if len(self.order) == 1:
            return self.order[0]
        fallen_back = self._failures >= self.fallback_after
        if fallen_back and time.monotonic() - self._fell_back_at < self.websocket_retry:
            return "sse"
        return "websocket"

    async def open(
        self, http: aiohttp.ClientSession, on_message: MessageHandler, timeout: float
    ) -> Connection:
        channel: Channel
        if self.choose() == "websocket":
            try:
                ws = await http.ws_connect(self.url, heartbeat=self.heartbeat, max_msg_size=0)
            except aiohttp.WSServerHandshakeError as error:
                self._failed()
                log.info("accord: the upgrade to %s was refused: %r", self.url, error)
                throttled = error.status == TOO_MANY_CONNECTS
                raise ConnectionLost(THROTTLED[0] if throttled else None) from error
            except (OSError, aiohttp.ClientError, TimeoutError):
                self._failed()
                raise
            channel = WebSocketChannel(ws)
        else:
            channel = SseChannel(http, self.url, self.heartbeat, self.stream_timeout)
        return Connection(channel, on_message, timeout)

    async def greet(
        self, conn: Connection, hello: dict[str, Any], http: aiohttp.ClientSession
    ) -> dict[str, Any]:
        """Send ``hello`` (its None members left out) on ``conn``: the welcome. A fallback
        connection starts the probe that moves back to the WebSocket."""
        hello = {name: value for name, value in hello.items() if value is not None}
        try:
            welcome = await conn.request(hello)
        except StreamBuffered as error:
            self._report(error)
            raise
        except (ConnectionLost, TimeoutError):
            if conn.transport == "websocket":
                self._failed()
            raise
        if conn.transport == "websocket":
            self._failures = 0
        elif "websocket" in self.order:
            self._probe = asyncio.create_task(self._try_websocket(conn, hello, http))
        return welcome

    def detach(self) -> None:
        """The connection ended: stop its probe."""
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None

    def _failed(self) -> None:
        self._failures += 1
        if self._failures >= self.fallback_after and "sse" in self.order:
            self._fell_back_at = time.monotonic()
            log.info(
                "accord: the WebSocket failed %d times: using the HTTP fallback", self._failures
            )

    async def _try_websocket(
        self, conn: Connection, hello: dict[str, Any], http: aiohttp.ClientSession
    ) -> None:
        while not conn.closed:
            await asyncio.sleep(self.websocket_retry)
            if await self._welcomed(hello, http):
                log.info("accord: the WebSocket works again: moving back to it")
                self._failures = 0
                self._probe = None
                await conn.close()
                return

    async def _welcomed(self, hello: dict[str, Any], http: aiohttp.ClientSession) -> bool:
        """Whether a WebSocket opens and answers ``hello`` (then closed): any answer, an
        expired token's error too, shows that the WebSocket gets through."""
        try:
            async with asyncio.timeout(self.stream_timeout):
                ws = await http.ws_connect(self.url)
                try:
                    await ws.send_str(json.dumps({**hello, "id": 1}))
                    frame = await ws.receive()
                finally:
                    with contextlib.suppress(Exception):
                        await ws.close()
        except (OSError, aiohttp.ClientError, TimeoutError, RuntimeError):
            return False
        if frame.type != aiohttp.WSMsgType.TEXT:
            return False
        with contextlib.suppress(ValueError):
            return json.loads(frame.data).get("type") in ("welcome", "error")
        return False

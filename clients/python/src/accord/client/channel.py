"""What a ``Connection`` runs over: JSON text in both directions, whatever carries it.

``WebSocketChannel`` is the WebSocket; ``sse.SseChannel`` the HTTP fallback
(docs/transport.md). ``transports.Transports`` picks one for each connection.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import aiohttp
from accord.client.errors import ConnectionLost

__all__ = ["Channel", "WebSocketChannel"]

_CLOSING = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)


class Channel(Protocol):
    @property
    def name(self) -> str:
        """``websocket`` or ``sse``."""
        ...

    @property
    def closed(self) -> bool: ...

    @property
    def close_code(self) -> int | None:
        """The server's close code, once closed (None when the connection just dropped)."""
        ...

    async def send(self, text: str) -> None:
        """Send one JSON message; raises ``ConnectionLost``."""
        ...

    async def receive(self) -> str | None:
        """The next JSON message from the server; None once the channel has closed."""
        ...

    async def close(self, code: int = 1000) -> None: ...


class WebSocketChannel:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    name = "websocket"

    @property
    def closed(self) -> bool:
        return self.ws.closed

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    async def send(self, text: str) -> None:
        try:
            await self.ws.send_str(text)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as error:
            raise ConnectionLost(self.ws.close_code) from error

    async def receive(self) -> str | None:
        while True:
            frame = await self.ws.receive()
            if frame.type in _CLOSING:
                if not self.ws.closed:
                    with contextlib.suppress(Exception):
                        await self.ws.close()
                return None
            if frame.type == aiohttp.WSMsgType.TEXT:
                return str(frame.data)

    async def close(self, code: int = 1000) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code)

"""One WebSocket session: JSON frames out, replies matched to requests by ``id``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from accord.client.errors import ConnectionLost, error_from_message

__all__ = ["Connection", "MessageHandler"]

log = logging.getLogger(__name__)

MessageHandler = Callable[[dict[str, Any]], Awaitable[None]]
CLOSING = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)


class Connection:
    """Reads in one loop (``run``); every message but an error reply goes to ``on_message``,
    in order, before the reply's waiter is woken, so state a reply implies (a
    subscription's head) is in place before the messages that follow it are handled.
    """

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, on_message: MessageHandler, timeout: float
    ) -> None:
        self.ws = ws
        self.on_message = on_message
        self.timeout = timeout
        self.close_code: int | None = None
        self._next_id = 1
        self._waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._done = False

    @property
    def closed(self) -> bool:
        return self._done or self.ws.closed

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            raise ConnectionLost(self.close_code)
        try:
            await self.ws.send_str(json.dumps(message, separators=(",", ":")))
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as error:
            raise ConnectionLost(self.close_code) from error

    def take_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` with a fresh ``id``; its reply, or the typed error it got."""
        request_id = self.take_id()
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = waiter
        try:
            await self.send({**message, "id": request_id})
            return await asyncio.wait_for(waiter, self.timeout)
        finally:
            self._waiters.pop(request_id, None)

    async def run(self) -> int | None:
        """Read until the socket closes; the close code. Waiters then get ``ConnectionLost``."""
        try:
            while True:
                frame = await self.ws.receive()
                if frame.type in CLOSING:
                    break
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    message = json.loads(frame.data)
                except ValueError:
                    log.warning("ignoring a frame that is not JSON")
                    continue
                if isinstance(message, dict):
                    await self._dispatch(message)
        finally:
            self._done = True
            if not self.ws.closed:
                with contextlib.suppress(Exception):
                    await self.ws.close()
            self.close_code = self.ws.close_code
            lost = ConnectionLost(self.close_code)
            for waiter in self._waiters.values():
                if not waiter.done():
                    waiter.set_exception(lost)
        return self.close_code

    async def _dispatch(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        waiter = self._waiters.get(request_id) if isinstance(request_id, int) else None
        is_error = message.get("type") == "error"
        if waiter is None or not is_error:
            await self.on_message(message)
        if waiter is not None and not waiter.done():
            if is_error:
                waiter.set_exception(error_from_message(message))
            else:
                waiter.set_result(message)

    async def close(self, code: int = aiohttp.WSCloseCode.OK) -> None:
        self._done = True
        with contextlib.suppress(Exception):
            await self.ws.close(code=code)

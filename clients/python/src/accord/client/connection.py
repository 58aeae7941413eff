"""One session over a ``Channel`` (WebSocket or HTTP fallback); replies matched by ``id``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from accord.client.channel import Channel
from accord.client.errors import ConnectionLost, error_from_message

__all__ = ["Connection", "MessageHandler"]

log = logging.getLogger(__name__)

MessageHandler = Callable[[dict[str, Any]], Awaitable[None]]


class Connection:
    """Reads in one loop (``run``); every message but an error reply goes to ``on_message``,
    in order, before the reply's waiter is woken, so state a reply implies (a
    subscription's head) is in place before the messages that follow it are handled.
    """

    def __init__(self, channel: Channel, on_message: MessageHandler, timeout: float) -> None:
        self.channel = channel
        self.on_message = on_message
        self.timeout = timeout
        self.close_code: int | None = None
        self._next_id = 1
        self._waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._done = False

    @property
    def closed(self) -> bool:
        return self._done or self.channel.closed

    @property
    def transport(self) -> str:
        return self.channel.name

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            raise ConnectionLost(self.close_code)
        await self.channel.send(json.dumps(message, separators=(",", ":")))

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
            async with asyncio.timeout(self.timeout):
                return await waiter
        finally:
            self._waiters.pop(request_id, None)

    async def run(self) -> int | None:
        """Read until the channel closes; the close code. Waiters then get ``ConnectionLost``."""
        try:
            while (text := await self.channel.receive()) is not None:
                try:
                    message = json.loads(text)
                except ValueError:
                    log.warning("ignoring a frame that is not JSON")
                    continue
                if isinstance(message, dict):
                    await self._dispatch(message)
        finally:
            self._done = True
            if not self.channel.closed:
                with contextlib.suppress(Exception):
                    await self.channel.close()
            self.close_code = self.channel.close_code
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

    async def close(self, code: int = 1000) -> None:
        self._done = True
        with contextlib.suppress(Exception):
            await self.channel.close(code)

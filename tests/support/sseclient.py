"""An HTTP-fallback client for driving the edge in tests: the same interface as
``wsclient.Client``, over ``POST /sse`` (the stream) and ``POST /sse/{session_id}``.

The first message sent opens the stream (``{"hello": message}``), whatever it is,
so that the edge answers a bad first message as it would on a WebSocket. A
``close`` event ends the stream with the code a WebSocket close frame would carry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from accord.api.edge.v1 import frames_pb2 as pb

from tests.support.wsclient import DEFAULT_TIMEOUT, Client, Closed

SECRET_HEADER = "Accord-Session-Secret"


class SseError(Exception):
    """A POST the edge refused: its HTTP status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def sse_url(url: str) -> str:
    """``ws://host/ws`` → ``http://host/sse``."""
    base = url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    return base[: -len("/ws")] + "/sse" if base.endswith("/ws") else base.rstrip("/") + "/sse"


async def read_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` pairs of a ``text/event-stream``; comments as ``(":", text)``."""
    name, data = "message", list[str]()
    while True:
        line = await response.content.readline()
        if not line:
            return
        text = line.decode().rstrip("\r\n")
        if not text:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif text.startswith(":"):
            yield ":", text[1:]
        else:
            field, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


class SseClient(Client):
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.encoding = "json"
        self.next_id = 1
        self.inbox: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] = {}
        self.binary_replies = 0
        self.headers: dict[str, str] = {}
        self.session_id: str | None = None
        self.secret = ""
        self.close_code: int | None = None
        self.comments = 0
        self.last_status = 0
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._opened = asyncio.Event()
        self._stream: aiohttp.ClientResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, url: str, encoding: str = "json", **kwargs: Any) -> SseClient:
        if encoding != "json":
            raise ValueError("only JSON travels over SSE")
        client = cls(aiohttp.ClientSession(), sse_url(url))
        client.headers = dict(kwargs.get("headers") or {})
        return client

    async def __aenter__(self) -> SseClient:
        return self

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._stream is not None:
            self._stream.close()
        await self.http.close()

    # -- sending ---------------------------------------------------------

    async def open(self, body: bytes) -> None:
        response = await self.http.post(
            self.url,
            data=body,
            headers={"Content-Type": "application/json", **self.headers},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        if response.status != 200:
            payload = await response.json()
            response.release()
            raise SseError(response.status, payload)
        self._stream = response
        self._reader = asyncio.create_task(self._read(response))

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(message))

    async def send_raw(self, data: str | bytes) -> None:
        body = data.encode() if isinstance(data, str) else data
        if self._stream is None:
            await self.open(b'{"hello":' + body + b"}")
            return
        status, payload = await self.post(body)
        self.last_status = status
        # 413 ends the session (its stream carries the 1009 close), as an oversized frame
        # would; 404: the session has ended (a message into a closing socket is lost too).
        # The other refusals have no WebSocket equivalent.
        if status not in (202, 404, 413):
            raise SseError(status, payload)

    async def post(self, body: bytes, secret: str | None = None) -> tuple[int, dict[str, Any]]:
        """POST ``body`` to the session (once its welcome came); the status and the answer."""
        await asyncio.wait_for(self._opened.wait(), DEFAULT_TIMEOUT)
        headers = {SECRET_HEADER: self.secret if secret is None else secret}
        async with self.http.post(f"{self.url}/{self.session_id}", data=body, headers=headers) as r:
            return r.status, await r.json()

    async def send_frame(self, frame: pb.ClientFrame) -> None:
        raise NotImplementedError("binary frames do not travel over SSE")

    # -- receiving -------------------------------------------------------

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        try:
            async for name, data in read_events(response):
                if name == ":":
                    self.comments += 1
                elif name == "close":
                    self.close_code = int(json.loads(data)["code"])
                elif name == "message":
                    message = json.loads(data)
                    if message.get("type") == "welcome" and self.session_id is None:
                        self.session_id = message["session_id"]
                        self.secret = message["transport"]["secret"]
                        self._opened.set()
                    await self._events.put(message)
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            await self._events.put(None)

    async def _receive(self, timeout: float | None) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            message = await self._events.get()
        if message is None:
            self._events.put_nowait(None)  # every later read sees the end too
            raise Closed(self.close_code)
        return message

    async def closed(self, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Read until the stream ends; the code of its ``close`` event."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    self.inbox.append(await self._receive(None))
                except Closed as closed:
                    return closed.code

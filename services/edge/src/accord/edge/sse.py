"""The HTTP fallback transport: server messages down a ``text/event-stream``, client messages
POSTed up (docs/transport.md).

The stream is the response to ``POST /sse`` (the routes are in ``sse_routes``);
each message the client POSTs to ``/sse/{session_id}`` waits in the session's
bounded inbox until the session reads it, exactly as a WebSocket frame would.
SSE has no control frames: the heartbeat is an SSE comment, and the client's
POSTs are its liveness.
"""

from __future__ import annotations

import asyncio
import collections
import json
import secrets
from typing import Any

from accord.common.tasks import until_set
from accord.edge.protocol import Out
from accord.edge.transport import Incoming, Kind
from aiohttp import web

STREAM_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx: do not buffer this response
}
PADDING = b":" + b" " * 2048 + b"\n\n"
"""A 2 KiB comment first: proxies that buffer a response's first kilobytes flush it."""
PING = b": ping\n\n"

_CLOSED = Incoming(Kind.CLOSED)
_TOO_BIG = Incoming(Kind.TOO_BIG)
_ALIVE = Incoming(Kind.PONG)  # an empty POST (or ``[]``): liveness only


def event(data: bytes, event_id: int, name: str = "message") -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, name.encode(), data)


def _encode(message: Any) -> bytes:
    try:
        return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate: escaped, for the session to refuse
        return json.dumps(message, separators=(",", ":")).encode()


def split_body(body: bytes) -> list[Incoming]:
    """A POST's messages: the body is one message, or a JSON array of message objects.

    Anything else is handed over whole, as one message, so that the session
    answers it exactly as it would answer that WebSocket frame.
    """
    text = body.strip()
    if not text or text == b"[]":
        return [_ALIVE]
    if text[:1] == b"[":
        try:
            batch = json.loads(text)
        except (ValueError, RecursionError):
            batch = None
        if isinstance(batch, list) and all(isinstance(m, dict) for m in batch):
            return [Incoming(Kind.TEXT, _encode(m)) for m in batch]
    return [Incoming(Kind.TEXT, body)]


def hello_of(body: bytes) -> Incoming | None:
    """The ``hello`` of a ``POST /sse`` body ``{"hello": {…}}`` (None: not that shape)."""
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(envelope, dict) or "hello" not in envelope:
        return None
    return Incoming(Kind.TEXT, _encode(envelope["hello"]))


class SseTransport:
    """One session's stream (an aiohttp ``StreamResponse``) and its inbox of POSTed messages."""

    __slots__ = (
        "_closed",
        "_inbox",
        "_inbox_size",
        "_next_event",
        "_ready",
        "_request",
        "_response",
        "secret",
        "session_id",
    )

    def __init__(self, request: web.Request, response: web.StreamResponse, inbox: int) -> None:
        self._request = request
        self._response = response
        self._inbox: collections.deque[Incoming] = collections.deque()
        self._inbox_size = inbox
        self._ready = asyncio.Event()
        self._closed = False
        self._next_event = 1
        self.secret = secrets.token_urlsafe(32)
        """Every POST to the session carries it (``Accord-Session-Secret``)."""
        self.session_id = ""

    # -- the session's side (Transport) -----------------------------------

    @property
    def remote(self) -> str | None:
        return self._request.remote

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def info(self) -> dict[str, Any] | None:
        return {"name": "sse", "secret": self.secret}

    def buffered(self) -> int:
        raw = self._request.transport
        return 0 if raw is None else raw.get_write_buffer_size()

    def write_now(self, out: Out, binary: bool) -> int | None:
        return None  # every event goes through the response's chunked writer

    async def write(self, out: Out, binary: bool) -> int:
        # Only JSON travels over SSE: ``binary`` never holds (the inbox has only text).
        data = event(out.text(), self._next_event)
        self._next_event += 1
        await self._send(data)
        return len(data)

    async def receive(self, timeout: float | None = None) -> Incoming:
        while not self._inbox:
            self._ready.clear()
            await until_set(self._ready, timeout)
        return self._inbox.popleft()

    async def pong(self, data: bytes) -> None:
        return None  # no ping reaches a session over SSE

    async def ping(self) -> None:
        await self._send(PING)

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        body = json.dumps({"code": code, "reason": reason}).encode()
        try:
            await self._send(event(body, self._next_event, "close"))
            await self._response.write_eof()
        except ConnectionError:
            pass
        self.lost()

    # -- the routes' side -------------------------------------------------

    async def start(self) -> None:
        """Send the headers and the padding."""
        await self._response.prepare(self._request)
        await self._send(PADDING)

    def offer(self, messages: list[Incoming]) -> bool:
        """Queue all of ``messages``, or none when the inbox has no room for them all."""
        if len(self._inbox) + len(messages) > self._inbox_size:
            return False
        self._inbox.extend(messages)
        self._ready.set()
        return True

    def too_big(self) -> None:
        """A POST over the size limit: the session ends (1009), as for a WebSocket frame."""
        self._inbox.append(_TOO_BIG)
        self._ready.set()

    def lost(self) -> None:
        """The stream is gone: the session reads ``CLOSED`` next."""
        if self._closed:
            return
        self._closed = True
        self._inbox.append(_CLOSED)
        self._ready.set()

    def dropped(self) -> bool:
        """The client's connection has gone (the stream cannot reach it)."""
        raw = self._request.transport
        return raw is None or raw.is_closing()

    async def _send(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionResetError("the stream has ended")
        try:
            await self._response.write(data)
        except (ConnectionError, RuntimeError) as error:
            self.lost()
            raise ConnectionResetError("the stream has ended") from error

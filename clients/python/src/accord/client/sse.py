"""The HTTP fallback channel (docs/transport.md): the server's messages down an SSE stream,
the client's POSTed up, in order, batched while a POST is in flight.

The first message sent (the ``hello``) opens the stream; its first event must
arrive within ``stream_timeout``, or the stream is taken to be held back by a
buffering proxy (``StreamBuffered``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import aiohttp
from accord.client.errors import ConnectionLost

__all__ = ["SECRET_HEADER", "SseChannel", "StreamBuffered", "sse_url"]

log = logging.getLogger(__name__)

SECRET_HEADER = "Accord-Session-Secret"
MAX_BATCH = 32
"""Messages in one POST (the edge's inbox holds 64 by default)."""
_CLOSE_EVENT = "close"


class StreamBuffered(ConnectionLost):
    """The fallback's stream sent nothing in time: a proxy on the way buffers responses."""

    def __init__(self, timeout: float) -> None:
        super().__init__(None)
        self.args = (
            f"stream buffered by a proxy: no event within {timeout:g}s of opening the"
            " HTTP fallback's stream (docs/transport.md, Proxies)",
        )


def sse_url(url: str) -> str:
    """The fallback's address for a WebSocket URL: ``ws://host/ws`` → ``http://host/sse``."""
    base = url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    return base[: -len("/ws")] + "/sse" if base.endswith("/ws") else base.rstrip("/") + "/sse"


class SseChannel:
    name = "sse"

    def __init__(
        self, http: aiohttp.ClientSession, url: str, heartbeat: float, stream_timeout: float
    ) -> None:
        self._http = http
        self._url = sse_url(url)
        self._heartbeat = heartbeat
        self._stream_timeout = stream_timeout
        self._response: aiohttp.ClientResponse | None = None
        self._messages: asyncio.Queue[str | None] = asyncio.Queue()
        self._pending: list[tuple[str, asyncio.Future[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._sender: asyncio.Task[None] | None = None
        self._session_id = ""
        self._secret = ""
        self._silence = heartbeat * 2
        self._last_heard = time.monotonic()
        self._last_sent = time.monotonic()
        self._closed = False
        self._close_code: int | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def close_code(self) -> int | None:
        return self._close_code

    async def send(self, text: str) -> None:
        if self._closed:
            raise ConnectionLost(self._close_code)
        if self._response is None:
            await self._open(text)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((text, done))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop(), name="accord-sse-send")
        await done

    async def receive(self) -> str | None:
        message = await self._messages.get()
        if message is None:
            self._messages.put_nowait(None)
        return message

    async def close(self, code: int = 1000) -> None:
        self._end(self._close_code)
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # -- the stream ------------------------------------------------------

    async def _open(self, hello: str) -> None:
        body = ('{"hello":' + hello + "}").encode()
        try:
            async with asyncio.timeout(self._stream_timeout):
                response = await self._http.post(
                    self._url,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                )
                if response.status != 200:
                    answer = await _answer(response)
                    response.release()
                    self._end(None)
                    raise ConnectionLost(None) from aiohttp.ClientResponseError(
                        response.request_info,
                        (),
                        status=response.status,
                        message=str(answer.get("message", answer)),
                    )
                self._response = response
                first = await self._next_event(response)
        except TimeoutError:
            self._end(None)
            raise StreamBuffered(self._stream_timeout) from None
        except (OSError, aiohttp.ClientError) as error:
            self._end(None)
            raise ConnectionLost(None) from error
        if first is None:
            self._end(self._close_code)
            raise ConnectionLost(self._close_code)
        self._welcome(first)
        self._messages.put_nowait(first)
        self._tasks.append(asyncio.create_task(self._read_loop(response), name="accord-sse-read"))
        self._tasks.append(asyncio.create_task(self._keepalive(), name="accord-sse-alive"))

    def _welcome(self, text: str) -> None:
        with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
            welcome: dict[str, Any] = json.loads(text)
            self._session_id = welcome["session_id"]
            self._secret = welcome["transport"]["secret"]
            server_beat = welcome["server"]["heartbeat_ms"] / 1000
            # POST at least twice per server heartbeat (the edge's liveness), and give up on
            # a stream silent for two of its heartbeats.
            self._heartbeat = min(self._heartbeat, server_beat / 2)
            self._silence = 2 * server_beat + self._heartbeat

    async def _next_event(self, response: aiohttp.ClientResponse) -> str | None:
        """The next ``message`` event's data; None at the end (a ``close`` event's code kept)."""
        name, data = "message", list[str]()
        while True:
            line = await response.content.readline()
            if not line:
                return None
            self._last_heard = time.monotonic()
            text = line.decode().rstrip("\r\n")
            if text.startswith(":"):
                continue
            if text:
                field, _, value = text.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
                continue
            if name == _CLOSE_EVENT and data:
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    self._close_code = int(json.loads(data[0])["code"])
                return None
            if name == "message" and data:
                return "\n".join(data)
            name, data = "message", []

    async def _read_loop(self, response: aiohttp.ClientResponse) -> None:
        try:
            while (text := await self._next_event(response)) is not None:
                self._messages.put_nowait(text)
        except (OSError, aiohttp.ClientError, ValueError) as error:
            log.info("accord: the fallback stream broke: %r", error)
        finally:
            self._end(self._close_code)

    async def _keepalive(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._heartbeat / 2)
            now = time.monotonic()
            if now - self._last_heard > self._silence:
                log.info("accord: the fallback stream went silent")
                self._end(None)
                return
            if now - self._last_sent >= self._heartbeat and not self._pending:
                with contextlib.suppress(ConnectionLost):
                    await self._post("[]")

    def _end(self, code: int | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_code = code
        self._messages.put_nowait(None)
        if self._response is not None:
            self._response.close()
        for _, done in self._pending:
            if not done.done():
                done.set_exception(ConnectionLost(code))
        self._pending.clear()

    # -- sending ---------------------------------------------------------

    async def _send_loop(self) -> None:
        try:
            while self._pending and not self._closed:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                texts = [text for text, _ in batch]
                body = texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]"
                try:
                    await self._post(body)
                except ConnectionLost as error:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(error)
                    continue
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._sender = None

    async def _post(self, body: str) -> None:
        """POST ``body`` to the session, retrying while its inbox is full."""
        url = f"{self._url}/{self._session_id}"
        headers = {SECRET_HEADER: self._secret, "Content-Type": "application/json"}
        while True:
            self._last_sent = time.monotonic()
            try:
                async with self._http.post(url, data=body.encode(), headers=headers) as response:
                    if response.status == 202:
                        return
                    answer = await _answer(response)
            except (OSError, aiohttp.ClientError) as error:
                self._end(None)
                raise ConnectionLost(None) from error
            if response.status == 429:
                await asyncio.sleep(int(answer.get("retry_after_ms", 100)) / 1000)
                continue
            # 404: the session is gone (ended, or another edge holds the stream): reconnect
            # and resume. 413 ends the session (the stream says 1009). Anything else too.
            log.info("accord: the fallback refused a POST: %s %s", response.status, answer)
            self._end(self._close_code)
            raise ConnectionLost(self._close_code)


async def _answer(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        answer = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return {}
    return answer if isinstance(answer, dict) else {}

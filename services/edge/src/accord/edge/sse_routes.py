"""``POST /sse`` (open a session; its stream is the answer) and ``POST /sse/{session_id}``
(messages for it), with the same door, limits and session as ``/ws`` (docs/transport.md)."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from accord.common.tasks import stop
from accord.edge import metrics
from accord.edge.codes import CLOSE_FULL
from accord.edge.context import SessionContext
from accord.edge.gate import EntryGate
from accord.edge.registry import Sessions
from accord.edge.session import Session
from accord.edge.sse import STREAM_HEADERS, SseTransport, hello_of, split_body
from aiohttp import web

log = logging.getLogger(__name__)

SECRET_HEADER = "Accord-Session-Secret"
WATCH_INTERVAL = 0.5
"""Seconds between checks for streams whose client has gone (aiohttp does not say)."""
INBOX_RETRY_MS = 100


def _error(
    status: int, code: str, message: str, cors: dict[str, str], **extra: Any
) -> web.Response:
    headers = dict(cors)
    retry = extra.get("retry_after_ms")
    if isinstance(retry, int):
        headers["Retry-After"] = str(max(1, retry // 1000))
    return web.json_response(
        {"code": code, "message": message, **extra}, status=status, headers=headers
    )


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The request's body, or None when it is over ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class SseRoutes:
    """The HTTP fallback's routes and the streams open on this edge (by session id)."""

    def __init__(self, ctx: SessionContext, sessions: Sessions[Session], gate: EntryGate) -> None:
        self._ctx = ctx
        self._sessions = sessions
        self._gate = gate
        self._streams: dict[str, SseTransport] = {}
        self._watcher: asyncio.Task[None] | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/sse", self.open)
        app.router.add_post("/sse/{session_id}", self.post)
        app.router.add_route("OPTIONS", "/sse", self.preflight)
        app.router.add_route("OPTIONS", "/sse/{session_id}", self.preflight)

    async def __aenter__(self) -> SseRoutes:
        self._watcher = asyncio.create_task(self._watch(), name="sse-watcher")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop(self._watcher)

    @property
    def _limit(self) -> int:
        # The transport's own limit, as a WebSocket frame's (a batch counts whole).
        return self._ctx.settings.max_message_size * 4

    def _cors(self, request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin")
        if origin is None or not self._gate.allows_origin(origin):
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Headers": f"Content-Type, {SECRET_HEADER}",
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }

    async def preflight(self, request: web.Request) -> web.Response:
        cors = self._cors(request)
        return web.Response(status=204 if cors else 403, headers=cors)

    async def open(self, request: web.Request) -> web.StreamResponse:
        settings = self._ctx.settings
        cors = self._cors(request)
        if self._sessions.draining:
            return _error(503, "draining", "the edge is shutting down", cors)
        refusal = self._gate.admit(request)
        if refusal is not None:
            extra = (
                {} if refusal.retry_after_ms is None else {"retry_after_ms": refusal.retry_after_ms}
            )
            return _error(refusal.status, refusal.code, refusal.message, cors, **extra)
        hooks = self._ctx.extensions
        connection, refused = await hooks.door(request, "sse")
        if refused is not None:
            return refused
        body = await _read_body(request, self._limit)
        if body is None:
            return _error(413, "TOO_LARGE", f"the body is over {self._limit} bytes", cors)
        hello = hello_of(body)
        if hello is None:
            return _error(400, "BAD_REQUEST", 'the body must be {"hello": {…}}', cors)
        response = web.StreamResponse(headers={**STREAM_HEADERS, **cors})
        transport = SseTransport(request, response, settings.sse_inbox_size)
        await transport.start()
        metrics.OPENED.inc()
        if len(self._sessions) >= settings.max_connections:
            await transport.close(CLOSE_FULL, "server full, retry later")
            metrics.CLOSED.labels(str(CLOSE_FULL)).inc()
            return response
        session = Session(self._ctx, transport, connection)
        transport.session_id = session.session_id
        transport.offer([hello])
        self._streams[session.session_id] = transport
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.remove(session)
            self._streams.pop(session.session_id, None)
            code = session.close_code or 1006
            metrics.CLOSED.labels(str(code)).inc()
            if not transport.closed:
                await transport.close(session.close_code or 1000, "")
            await hooks.ended(session, code)
        return response

    async def post(self, request: web.Request) -> web.Response:
        cors = self._cors(request)
        refused = self._gate.refuse_origin(request)
        if refused is not None:
            return _error(refused.status, refused.code, refused.message, cors)
        transport = self._streams.get(request.match_info["session_id"])
        if transport is None or transport.closed:
            return _error(
                404,
                "NOT_FOUND",
                "no such session on this edge (it ended, or another edge holds its stream):"
                " open a new one and resume",
                cors,
            )
        secret = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(secret.encode(), transport.secret.encode()):
            return _error(403, "FORBIDDEN", f"{SECRET_HEADER} does not match the session's", cors)
        body = await _read_body(request, self._limit)
        if body is None:
            transport.too_big()
            return _error(413, "TOO_LARGE", f"the body is over {self._limit} bytes", cors)
        messages = split_body(body)
        if not transport.offer(messages):
            return _error(
                429,
                "RATE_LIMITED",
                "the session's inbox is full: retry shortly",
                cors,
                retry_after_ms=INBOX_RETRY_MS,
            )
        return web.json_response({"queued": len(messages)}, status=202, headers=cors)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            for transport in list(self._streams.values()):
                if transport.dropped():
                    transport.lost()

"""The edge process: HTTP routes, WebSocket sessions, backends and tickers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import grpc
from accord.common import grpcutil
from accord.edge import metrics
from accord.edge.admin import AdminApi, Revocations
from accord.edge.auth import Authenticator
from accord.edge.backends import PresenceClient, SyncClient
from accord.edge.limits import SharedBuckets
from accord.edge.protocol import ProtocolError
from accord.edge.rooms import Hub
from accord.edge.roster import Roster
from accord.edge.session import CLOSE_FULL, CLOSE_HEARTBEAT, Session
from accord.edge.settings import Settings
from accord.edge.static import add_static_routes
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

STATIC_HEADERS = {"Cache-Control": "no-store"}


class Edge:
    """Everything one edge process shares between its sessions."""

    def __init__(
        self, settings: Settings, sync_channel: grpc.aio.Channel, presence_channel: grpc.aio.Channel
    ) -> None:
        self.settings = settings
        self.auth = Authenticator(settings)
        self.sync_channel = sync_channel
        self.presence_channel = presence_channel
        self.sync = SyncClient(sync_channel, settings.rpc_timeout)
        self.presence = PresenceClient(presence_channel, settings.rpc_timeout, settings.edge_id)
        self.hub = Hub(self.sync, settings.rpc_timeout)
        self.roster = Roster(self.presence, settings.rpc_timeout, settings.presence_sync_limit)
        self.sessions: dict[str, Session] = {}
        self.no_sessions = asyncio.Event()
        self.no_sessions.set()
        self.draining = False
        self.connect_limits = SharedBuckets(settings.connect_rate, settings.connect_burst)
        self.user_limits = SharedBuckets(settings.user_rate_limit, settings.user_rate_burst)
        self.revocations = Revocations()

    # -- HTTP -------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.json_response({"ready": False, "reason": "draining"}, status=503)
        sync_ok, presence_ok = await asyncio.gather(
            grpcutil.check_health(self.sync_channel), grpcutil.check_health(self.presence_channel)
        )
        body = {"ready": sync_ok and presence_ok, "sync": sync_ok, "presence": presence_ok}
        return web.json_response(body, status=200 if sync_ok and presence_ok else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if self.draining:
            return web.json_response({"error": "draining"}, status=503)
        origin = request.headers.get("Origin")
        allowed = self.settings.allowed_origins
        if origin is not None and allowed is not None and origin.rstrip("/") not in allowed:
            log.info("refused connection from origin %s", origin)
            return web.json_response(
                {"error": "FORBIDDEN", "message": "origin not allowed"}, status=403
            )
        wait_ms = self.connect_limits.take(request.remote or "?")
        if wait_ms:
            metrics.CONNECTS_REFUSED.inc()
            return web.json_response(
                {"error": "RATE_LIMITED", "retry_after_ms": wait_ms},
                status=429,
                headers={"Retry-After": str(max(1, wait_ms // 1000))},
            )
        ws = web.WebSocketResponse(
            autoping=False,
            max_msg_size=self.settings.max_message_size * 4,
            compress=False,
            decode_text=False,
        )
        await ws.prepare(request)
        metrics.OPENED.inc()
        if len(self.sessions) >= self.settings.max_connections:
            await ws.close(code=CLOSE_FULL, message=b"server full, retry later")
            metrics.CLOSED.labels(str(CLOSE_FULL)).inc()
            return ws
        # uvloop's transports are not asyncio.Transport subclasses: duck-type.
        transport = request.transport
        fast = transport if hasattr(transport, "get_write_buffer_size") else None
        session = Session(self, ws, request.remote, fast)
        self.sessions[session.session_id] = session
        self.no_sessions.clear()
        metrics.CONNECTIONS.set(len(self.sessions))
        try:
            await session.run()
        finally:
            self.sessions.pop(session.session_id, None)
            if not self.sessions:
                self.no_sessions.set()
            metrics.CONNECTIONS.set(len(self.sessions))
            code = session.close_code or ws.close_code or 1006
            metrics.CLOSED.labels(str(code)).inc()
            if not ws.closed:
                await ws.close()
        return ws

    # -- tickers ----------------------------------------------------------

    async def heartbeat_loop(self) -> None:
        """Ping every socket, end silent ones, refresh presence TTLs in one batch."""
        interval = self.settings.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            self.connect_limits.prune()
            self.user_limits.prune()
            for session in list(self.sessions.values()):
                if now - session.last_seen > 2 * interval:
                    session.close_soon(CLOSE_HEARTBEAT, "no heartbeat", flush=False)
                elif not session.ws.closed:
                    metrics.SEND_QUEUE.observe(session.queued)
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await session.ws.ping()
            self.roster.retry_resyncs()
            joined = [
                s.session_id
                for s in self.sessions.values()
                if any(e.presence is not None for e in s.rooms.values())
            ]
            if not joined:
                continue
            try:
                unknown = await self.presence.heartbeat(joined)
            except grpc.aio.AioRpcError as error:
                log.warning("presence heartbeat failed: %s", error.code().name)
                continue
            for session_id in unknown:
                forgotten = self.sessions.get(session_id)
                if forgotten is not None:
                    try:
                        rooms = await forgotten.rejoin()
                    except ProtocolError as error:
                        log.warning("presence re-join failed: %s", error.code)
                        continue
                    # A sync listed while this session was forgotten lacks it.
                    self.roster.resync(rooms)

    async def drain(self) -> None:
        self.draining = True
        sessions = list(self.sessions.values())
        log.info("draining %d sessions", len(sessions))
        timeout = self.settings.drain_timeout
        await asyncio.gather(*(s.drain(timeout / 2) for s in sessions), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.no_sessions.wait(), timeout / 2)


def build_app(edge: Edge) -> web.Application:
    app = web.Application()
    app.router.add_get("/ws", edge.websocket)
    app.router.add_get("/health", edge.health)
    app.router.add_get("/ready", edge.ready)
    app.router.add_get("/metrics", edge.metrics)
    AdminApi(edge).routes(app)
    add_static_routes(app)
    return app


@dataclass
class Running:
    edge: Edge
    port: int


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Running]:
    metrics.MAX_CONNECTIONS.set(settings.max_connections)
    async with AsyncExitStack() as stack:
        sync_channel = grpcutil.create_channel(settings.sync_target)
        stack.push_async_callback(sync_channel.close)
        presence_channel = grpcutil.create_channel(settings.presence_target)
        stack.push_async_callback(presence_channel.close)
        edge = Edge(settings, sync_channel, presence_channel)
        await stack.enter_async_context(edge.hub)
        await stack.enter_async_context(edge.roster)
        heartbeat = asyncio.create_task(edge.heartbeat_loop())
        stack.callback(heartbeat.cancel)
        runner = web.AppRunner(
            build_app(edge),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            # From aiohttp 3.14 the keep-alive timer also runs from the connection's
            # start and closes a connection whose request is not complete when it
            # fires: a header-read timeout (slowloris) and the idle limit between
            # requests. An upgraded WebSocket is a request in progress: not affected.
            keepalive_timeout=settings.request_header_timeout,
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        host, port = settings.ws_addr
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound = port
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            bound = int(server.sockets[0].getsockname()[1])
        log.info("edge listening on %s:%d", host, bound)
        stack.push_async_callback(edge.drain)
        yield Running(edge, bound)


async def main_async(settings: Settings, stop: asyncio.Event) -> None:
    async with serve(settings):
        await stop.wait()
        log.info("edge stopping")

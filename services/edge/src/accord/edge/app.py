"""The edge process's composition root: builds the parts, wires the routes, serves."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from accord.common import grpcutil, native
from accord.common.audit import AuditLog
from accord.common.config import format_addr
from accord.common.lifecycle import BindError
from accord.edge import http, metrics, tls
from accord.edge.admin import AdminApi
from accord.edge.admin_webhooks import WebhooksAdmin
from accord.edge.api.routes import ServerApi
from accord.edge.auth import Authenticator
from accord.edge.backends import PresenceClient, SyncClient
from accord.edge.context import SessionContext
from accord.edge.gate import EntryGate
from accord.edge.handlers import HANDLERS
from accord.edge.heartbeat import heartbeat_loop
from accord.edge.hooks import EdgeHooks
from accord.edge.limits import SharedBuckets
from accord.edge.outbound import Budget, QueueLimits
from accord.edge.registry import Sessions
from accord.edge.revocation_store import open_store
from accord.edge.rooms import Hub
from accord.edge.roster import Roster
from accord.edge.session import Session
from accord.edge.settings import Settings
from accord.edge.sse_routes import SseRoutes
from accord.edge.static import add_static_routes
from accord.edge.ws import WebSocketRoute
from accord.extensions import load_extensions
from aiohttp import web

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Running:
    """A serving edge: its context and sessions (for tests and tools), and its port."""

    edge: SessionContext
    sessions: Sessions[Session]
    port: int

    async def drain(self) -> None:
        await self.sessions.drain(self.edge.settings.drain_timeout)


def listen(host: str, port: int) -> socket.socket:
    """A bound TCP socket for ``WS_ADDR`` (aiohttp listens on it); raises ``BindError``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise BindError("WS_ADDR", format_addr(host, port), error.strerror or str(error)) from None
    return sock


async def _tls(stack: AsyncExitStack, settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of ``TLS_CERT_FILE``/``TLS_KEY_FILE``, reloaded as they change."""
    if settings.tls is None:
        return None
    reloader = tls.CertReloader(tls.server_context(settings.tls), settings.tls)
    await stack.enter_async_context(reloader.watching())
    return reloader.context


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Running]:
    settings.grpc.check()
    metrics.MAX_CONNECTIONS.set(settings.max_connections)
    async with AsyncExitStack() as stack:
        # First: a bad extension stops start-up before anything is opened.
        extensions = load_extensions(settings.extensions, "edge", "EDGE_EXTENSIONS")
        hooks = EdgeHooks(extensions, settings.extension_timeout)
        sock = stack.enter_context(listen(*settings.ws_addr))
        audit = stack.enter_context(AuditLog.from_settings(settings.audit, "edge"))
        store = await stack.enter_async_context(
            open_store(settings.redis_url, settings.redis_prefix)
        )
        sync_channel = grpcutil.create_channel(settings.sync_target, settings.grpc)
        stack.push_async_callback(sync_channel.close)
        presence_channel = grpcutil.create_channel(settings.presence_target, settings.grpc)
        stack.push_async_callback(presence_channel.close)
        sync = SyncClient(sync_channel, settings.rpc_timeout, settings.push_socket)
        stack.callback(sync.close)
        presence = PresenceClient(presence_channel, settings.rpc_timeout, settings.edge_id)
        hub = await stack.enter_async_context(Hub(sync, settings.rpc_timeout))
        sync.inline = hub  # pushes name the hub's Subscribe call: batches in their answers
        roster = await stack.enter_async_context(
            Roster(presence, settings.rpc_timeout, settings.presence_sync_limit)
        )
        auth = await stack.enter_async_context(
            Authenticator(settings.identity, keep_claims=hooks.active)
        )
        ctx = SessionContext(
            settings=settings,
            auth=auth,
            hub=hub,
            roster=roster,
            sync=sync,
            presence=presence,
            user_limits=SharedBuckets(settings.user_rate_limit, settings.user_rate_burst),
            revocations=store.revocations,
            budget=Budget(settings.edge_queue_bytes),
            queue_limits=QueueLimits(settings.send_queue_size, settings.send_queue_bytes),
            handlers=HANDLERS,
            audit=audit,
            extensions=hooks,
        )
        sessions: Sessions[Session] = Sessions()
        connect_limits = SharedBuckets(settings.connect_rate, settings.connect_burst)

        app = web.Application()
        gate = EntryGate(settings.allowed_origins, connect_limits, audit)
        app.router.add_get("/ws", WebSocketRoute(ctx, sessions, gate).handle)
        sse = await stack.enter_async_context(SseRoutes(ctx, sessions, gate))
        sse.add_routes(app)
        readiness = http.Readiness(
            lambda: sessions.draining, sync_channel, presence_channel, lambda: auth.ready
        )
        http.add_routes(app, readiness)
        AdminApi(settings, sessions, store, audit).routes(app)
        WebhooksAdmin(settings, sync_channel).routes(app)
        ServerApi(settings, auth, sync, presence, store.revocations, audit, hooks=hooks).add_routes(
            app
        )
        add_static_routes(app)

        heartbeat = asyncio.create_task(heartbeat_loop(ctx, sessions, connect_limits))
        stack.callback(heartbeat.cancel)
        runner = web.AppRunner(
            app,
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
        ssl_context = await _tls(stack, settings)
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        port = int(sock.getsockname()[1])
        log.info("edge hot modules: %s", native.describe())
        log.info(
            "edge listening on %s%s",
            format_addr(settings.ws_addr[0], port),
            " (TLS)" if ssl_context is not None else "",
        )
        running = Running(ctx, sessions, port)
        stack.push_async_callback(running.drain)
        yield running

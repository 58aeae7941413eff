"""The presence process: store, sweeper, gRPC server and metrics, composed.

Start-up order is webhooks (with ``WEBHOOKS_FILE``) → store → metrics →
sweeper → broadcaster → gRPC; teardown mirrors it: health NOT_SERVING → Watch
streams ended → ``server.stop(grace)`` → held-back broadcasts dropped → sweeper
stopped → metrics stopped → store closed → queued webhook events dropped.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from accord.api.presence.v1 import presence_pb2_grpc
from accord.common.audit import AuditLog
from accord.common.config import format_addr
from accord.common.grpc_serve import secured_server, start_serving
from accord.common.metrics import metrics_server
from accord.common.webhooks import PRESENCE, WebhookRouter
from accord.presence import access, metrics
from accord.presence.broadcaster import broadcasting
from accord.presence.servicer import SERVICE_NAME, PresenceServicer
from accord.presence.settings import Settings
from accord.presence.store import Changed, PresenceStore, ignore_changes
from accord.presence.store_memory import open_memory_store
from accord.presence.store_redis import open_redis_store
from accord.presence.sweeper import sweeping
from accord.presence.throttle import Throttle
from accord.presence.webhooks import HookOptions, delivering

log = logging.getLogger(__name__)

# Channels one session may have waiting at once (see throttle.py).
MAX_PENDING_PER_SESSION = 64


@dataclass(frozen=True, slots=True)
class Running:
    port: int
    metrics_port: int | None
    store: PresenceStore


def open_store(
    settings: Settings, changed: Changed = ignore_changes
) -> AbstractAsyncContextManager[PresenceStore]:
    ttl, max_rooms = settings.presence_ttl, settings.max_rooms_per_session
    if settings.redis_url is None:
        return open_memory_store(ttl, max_rooms, changed)
    return open_redis_store(settings.redis_url, settings.redis_prefix, ttl, max_rooms, changed)


@asynccontextmanager
async def open_webhooks(settings: Settings) -> AsyncIterator[Changed]:
    """Where this replica's presence changes go: the webhooks, with ``WEBHOOKS_FILE``."""
    hooks = settings.webhooks
    if hooks.file is None:
        yield ignore_changes
        return
    router = WebhookRouter(
        hooks.config,
        hooks.file,
        hooks.defaults,
        on_reload=lambda ok: metrics.WEBHOOK_RELOADS.labels("ok" if ok else "error").inc(),
        event=PRESENCE,
        actor="presence",
    )
    router.replace(hooks.config)
    options = HookOptions(hooks.backoff_base, hooks.backoff_max, settings.webhook_queue_size)
    async with delivering(router, options, hooks.poll_interval) as sender:
        yield sender.changed


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Running]:
    settings.grpc.check()
    async with AsyncExitStack() as stack:
        changed = await stack.enter_async_context(open_webhooks(settings))
        store = await stack.enter_async_context(open_store(settings, changed))
        metrics_port = stack.enter_context(metrics_server(settings.metrics_addr))
        await stack.enter_async_context(sweeping(store, settings.sweep_interval))
        throttle = Throttle(
            settings.broadcast_rate,
            settings.broadcast_burst,
            settings.broadcast_window,
            MAX_PENDING_PER_SESSION,
        )
        broadcaster = await stack.enter_async_context(broadcasting(store, throttle))

        servicer = PresenceServicer(
            store,
            broadcaster,
            max_state_bytes=settings.max_state_bytes,
            watch_queue_size=settings.watch_queue_size,
        )
        audit = stack.enter_context(AuditLog.from_settings(settings.audit, "presence"))
        server = secured_server(
            "presence",
            settings.grpc,
            access.SCOPES,
            metrics.GRPC_AUTH_REFUSED,
            metrics.GRPC_HANDLING,
            audit,
        )
        presence_pb2_grpc.add_PresenceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        host = settings.presence_addr[0]
        port = await start_serving(
            stack,
            server,
            setting="PRESENCE_ADDR",
            addr=settings.presence_addr,
            security=settings.grpc,
            names=[SERVICE_NAME],
            grace=settings.shutdown_grace,
            before_stop=servicer.end_watches,
        )
        log.info("presence store: %s", "redis" if settings.redis_url else "in-memory")
        log.info("presence gRPC: %s", settings.grpc.describe())
        log.info("presence listening on %s", format_addr(host, port))
        yield Running(port=port, metrics_port=metrics_port, store=store)

"""Composition: store, bus, webhooks, gRPC server and metrics, started and stopped as one unit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from accord.api.sync.v1 import sync_pb2_grpc
from accord.common import native
from accord.common.audit import AuditLog
from accord.common.config import format_addr
from accord.common.grpc_serve import secured_server, start_serving
from accord.common.metrics import metrics_server
from accord.extensions import load_extensions
from accord.sync import access
from accord.sync.bus import Bus
from accord.sync.bus_memory import MemoryBus
from accord.sync.bus_redis import RedisBus
from accord.sync.delivery import Deliverer, DeliveryOptions
from accord.sync.dispatch import Dispatcher
from accord.sync.engine import Engine
from accord.sync.extensions import Screen
from accord.sync.hlc import HybridClock
from accord.sync.metrics import GRPC_AUTH_REFUSED, GRPC_HANDLING, WEBHOOK_RELOADS
from accord.sync.model import Limits, Retention
from accord.sync.outbox import Outbox
from accord.sync.push_socket import PushSocket
from accord.sync.recheck import Rechecker
from accord.sync.schemas import SchemaWatcher
from accord.sync.servicer import SyncServicer
from accord.sync.settings import PostgresTarget, Settings
from accord.sync.store import Store
from accord.sync.store_postgres import PostgresStore
from accord.sync.store_sqlite import SqliteStore
from accord.sync.webhooks import WebhookRouter
from accord.sync.webhooks_servicer import WebhooksServicer

log = logging.getLogger(__name__)

SERVICE_NAME = access.SERVICE
SHUTDOWN_GRACE = 10.0


@dataclass(frozen=True)
class Running:
    port: int
    """The bound gRPC port."""
    metrics_port: int | None
    """The bound /metrics port; None when metrics are disabled."""


def open_store(settings: Settings) -> AbstractAsyncContextManager[Store]:
    if isinstance(settings.database, PostgresTarget):
        return PostgresStore.open(settings.database.url)
    return SqliteStore.open(settings.database.path)


def open_bus(settings: Settings) -> AbstractAsyncContextManager[Bus]:
    if settings.redis_url is None:
        return MemoryBus.open()
    return RedisBus.open(
        settings.redis_url, settings.redis_prefix, settings.bus_shards, settings.bus_skip_unheard
    )


def limits_of(settings: Settings) -> Limits:
    return Limits(
        max_batch_changes=settings.max_batch_changes,
        max_record_bytes=settings.max_record_bytes,
        max_json_depth=settings.max_json_depth,
    )


def retention_of(settings: Settings) -> Retention:
    return Retention(log_changes=settings.log_retention, conflicts=settings.conflict_retention)


def delivery_options(settings: Settings) -> DeliveryOptions:
    return DeliveryOptions(
        concurrency=settings.webhook_concurrency,
        backoff_base=settings.webhook_backoff_base,
        backoff_max=settings.webhook_backoff_max,
        poll_interval=settings.webhook_poll_interval,
    )


@asynccontextmanager
async def open_router(settings: Settings, audit: AuditLog) -> AsyncIterator[WebhookRouter]:
    """The webhook endpoints in force; with ``WEBHOOKS_FILE``, re-read as it changes."""
    router = WebhookRouter(
        settings.webhooks,
        settings.webhooks_file,
        settings.webhook_defaults,
        on_reload=lambda ok: WEBHOOK_RELOADS.labels("ok" if ok else "error").inc(),
        audit=audit,
    )
    if settings.webhooks_file is None:
        yield router
        return
    router.replace(settings.webhooks)
    async with router.watching(settings.webhook_poll_interval):
        yield router


@asynccontextmanager
async def serve(settings: Settings, *, grace: float = SHUTDOWN_GRACE) -> AsyncIterator[Running]:
    """Run the sync service for the block's duration."""
    settings.grpc.check()
    async with AsyncExitStack() as stack:
        # First: a bad extension or schema file stops start-up before anything is opened.
        extensions = load_extensions(settings.extensions, "sync", "SYNC_EXTENSIONS")
        schemas = await stack.enter_async_context(SchemaWatcher(settings.schemas_file).running())
        store = await stack.enter_async_context(open_store(settings))
        bus = await stack.enter_async_context(open_bus(settings))
        metrics_port = stack.enter_context(metrics_server(settings.metrics_addr))
        audit = stack.enter_context(AuditLog.from_settings(settings.audit, "sync"))
        router = await stack.enter_async_context(open_router(settings, audit))
        screen = Screen(extensions, settings.extension_timeout, limits_of(settings), schemas)
        dispatcher = await stack.enter_async_context(
            Dispatcher(store, extensions, settings.extension_timeout).running()
        )
        engine = Engine(
            store,
            HybridClock(settings.max_clock_skew_us),
            limits_of(settings),
            retention_of(settings),
            memory_bytes=settings.room_memory_bytes,
            webhooks=router if settings.webhooks_file else None,
            screen=screen if screen.active or settings.schemas_file else None,
            holds=dispatcher.holds(),
        )
        outbox = Outbox(store.outbox())
        if settings.webhooks_file and settings.webhook_concurrency > 0:
            await stack.enter_async_context(
                Deliverer(outbox, router, delivery_options(settings)).running()
            )
        rechecker = await stack.enter_async_context(
            Rechecker(bus, settings.recheck_interval).running()
        )
        servicer = SyncServicer(
            engine,
            bus,
            limits_of(settings),
            rechecker,
            on_committed=dispatcher.notify if dispatcher.names else None,
        )
        server = secured_server(
            "sync", settings.grpc, access.SCOPES, GRPC_AUTH_REFUSED, GRPC_HANDLING, audit
        )
        sync_pb2_grpc.add_SyncServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        sync_pb2_grpc.add_WebhooksServicer_to_server(  # type: ignore[no-untyped-call]
            WebhooksServicer(outbox, router, on_resume=router.written), server
        )
        host = settings.sync_addr[0]
        bound = await start_serving(
            stack,
            server,
            setting="SYNC_ADDR",
            addr=settings.sync_addr,
            security=settings.grpc,
            names=[SERVICE_NAME],
            grace=grace,
            before_stop=servicer.close_streams,
        )
        if settings.push_socket is not None:
            pushes = PushSocket(settings.push_socket, servicer.push_many)
            await pushes.start()
            stack.push_async_callback(pushes.stop, grace)  # before gRPC's stop
            log.info("sync push socket: %s", settings.push_socket)
        log.info("sync gRPC: %s", settings.grpc.describe())
        log.info("sync hot modules: %s", native.describe())
        log.info("sync listening on %s", format_addr(host, bound))
        yield Running(port=bound, metrics_port=metrics_port)

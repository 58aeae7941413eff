"""Composition: store, bus, gRPC server and metrics, started and stopped as one unit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from accord.api.sync.v1 import sync_pb2_grpc
from accord.common.config import format_addr
from accord.common.grpc_auth import authenticating
from accord.common.grpcutil import (
    LatencyInterceptor,
    add_health,
    add_port,
    create_server,
    set_serving,
)
from accord.common.lifecycle import BindError
from accord.common.metrics import metrics_server
from accord.sync import access
from accord.sync.bus import Bus
from accord.sync.bus_memory import MemoryBus
from accord.sync.bus_redis import RedisBus
from accord.sync.engine import Engine
from accord.sync.hlc import HybridClock
from accord.sync.metrics import GRPC_AUTH_REFUSED, GRPC_HANDLING
from accord.sync.model import Limits, Retention
from accord.sync.recheck import Rechecker
from accord.sync.servicer import SyncServicer
from accord.sync.settings import PostgresTarget, Settings
from accord.sync.store import Store
from accord.sync.store_postgres import PostgresStore
from accord.sync.store_sqlite import SqliteStore

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
    return RedisBus.open(settings.redis_url, settings.redis_prefix, settings.bus_shards)


def limits_of(settings: Settings) -> Limits:
    return Limits(
        max_batch_changes=settings.max_batch_changes,
        max_record_bytes=settings.max_record_bytes,
        max_json_depth=settings.max_json_depth,
    )


def retention_of(settings: Settings) -> Retention:
    return Retention(log_changes=settings.log_retention, conflicts=settings.conflict_retention)


@asynccontextmanager
async def serve(settings: Settings, *, grace: float = SHUTDOWN_GRACE) -> AsyncIterator[Running]:
    """Run the sync service for the block's duration."""
    settings.grpc.check()
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_store(settings))
        bus = await stack.enter_async_context(open_bus(settings))
        metrics_port = stack.enter_context(metrics_server(settings.metrics_addr))
        engine = Engine(
            store,
            HybridClock(settings.max_clock_skew_us),
            limits_of(settings),
            retention_of(settings),
            memory_bytes=settings.room_memory_bytes,
        )
        rechecker = await stack.enter_async_context(
            Rechecker(bus, settings.recheck_interval).running()
        )
        servicer = SyncServicer(engine, bus, limits_of(settings), rechecker)
        guard = authenticating("sync", settings.grpc, access.SCOPES, GRPC_AUTH_REFUSED)
        server = create_server([*guard, LatencyInterceptor(GRPC_HANDLING)])
        sync_pb2_grpc.add_SyncServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        health = add_health(server)
        host, port = settings.sync_addr
        try:
            bound = add_port(server, format_addr(host, port), settings.grpc)
        except RuntimeError as error:
            raise BindError("SYNC_ADDR", format_addr(host, port), str(error)) from error
        await server.start()

        async def shutdown() -> None:
            await set_serving(health, [SERVICE_NAME], False)
            servicer.close_streams()
            await server.stop(grace)

        stack.push_async_callback(shutdown)
        await set_serving(health, [SERVICE_NAME], True)
        log.info("sync gRPC: %s", settings.grpc.describe())
        log.info("sync listening on %s", format_addr(host, bound))
        yield Running(port=bound, metrics_port=metrics_port)

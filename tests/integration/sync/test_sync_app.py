"""Start-up, shutdown, failure and scale-out behaviour of the whole service."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1.sync_pb2_grpc import SyncStub
from accord.common.grpc_security import ServerSecurity
from accord.common.grpcutil import create_channel, reason_of
from accord.common.lifecycle import BindError
from accord.sync import wire
from accord.sync.app import Running, serve
from accord.sync.bus_memory import MemoryBus
from accord.sync.engine import Engine
from accord.sync.errors import Unavailable
from accord.sync.hlc import HybridClock
from accord.sync.model import Limits
from accord.sync.schema import MIGRATIONS
from accord.sync.settings import PostgresTarget, Settings, SqliteTarget
from accord.sync.store_sqlite import SqliteStore
from accord.sync.subscription import RoomStream

from tests.integration.sync.sync_helpers import push, set_change
from tests.support.suite import UNPROTECTED_GRPC

DEADLINE = 10.0


def running_channel(running: Running) -> grpc.aio.Channel:
    return create_channel(f"127.0.0.1:{running.port}")


def pg_settings(url: str, redis: tuple[str, str] | None = None) -> Settings:
    return Settings(
        sync_addr=("127.0.0.1", 0),
        grpc=ServerSecurity.unprotected(),
        metrics_addr=None,
        database=PostgresTarget(url),
        redis_url=redis[0] if redis else None,
        redis_prefix=redis[1] if redis else "accord",
    )


async def test_start_fails_clearly_when_postgresql_is_unreachable(unused_port: int) -> None:
    settings = pg_settings(f"postgresql://postgres@127.0.0.1:{unused_port}/none")
    with pytest.raises(Unavailable, match="PostgreSQL"):
        async with serve(settings):
            pass


class Proxy:
    """A TCP proxy to PostgreSQL that a test can cut and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def proxied_url(database_url: str) -> AsyncIterator[tuple[str, Proxy]]:
    parts = urlsplit(database_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    await proxy.start()
    netloc = (
        f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    )
    yield urlunsplit(parts._replace(netloc=netloc)), proxy


@pytest.mark.integration
async def test_push_is_unavailable_while_postgresql_is_down_and_nothing_half_done(
    proxied_url: tuple[str, Proxy], database_url: str
) -> None:
    url, proxy = proxied_url
    async with serve(pg_settings(url), grace=1.0) as running, running_channel(running) as channel:
        stub = SyncStub(channel)
        await stub.Push(push("r", set_change(1, "a", x=1)), timeout=DEADLINE)
        await proxy.cut()
        for attempt in (2, 3):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Push(push("r", set_change(attempt, "a", x=2)), timeout=DEADLINE)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert reason_of(caught.value) == "UNAVAILABLE"
        await proxy.start()
        ack = await stub.Push(push("r", set_change(2, "a", x=2)), timeout=DEADLINE)
        assert [(r.seq, r.status) for r in ack.results] == [(2, pb.CHANGE_STATUS_APPLIED)]
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM changes") == 2
    finally:
        await conn.close()


@pytest.mark.integration
async def test_two_replicas_share_changes_through_postgresql_and_redis(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = pg_settings(database_url, (redis_url, redis_prefix))
    async with (
        serve(settings, grace=1.0) as one,
        serve(settings, grace=1.0) as two,
        running_channel(one) as channel_one,
        running_channel(two) as channel_two,
    ):
        stubs = [SyncStub(channel_one), SyncStub(channel_two)]
        stream = stubs[1].Subscribe()
        await stream.write(pb.SubscribeRequest(add=["shared"]))
        confirm = await asyncio.wait_for(stream.read(), DEADLINE)
        assert confirm.changes.room == "shared" and not confirm.changes.changes
        requests = [push("shared", set_change(1, "k"), client_id=f"c{i}") for i in range(20)]
        await asyncio.gather(
            *(stubs[i % 2].Push(r, timeout=DEADLINE) for i, r in enumerate(requests))
        )
        seen: list[int] = []
        while len(seen) < 20:
            response = await asyncio.wait_for(stream.read(), DEADLINE)
            seen += [c.seq for c in response.changes.changes]
        assert seen == list(range(1, 21))
        stream.cancel()


async def test_a_subscription_fills_gaps_from_the_log(tmp_path: Path) -> None:
    async with SqliteStore.open(str(tmp_path / "s.db")) as store, MemoryBus.open() as bus:
        engine = Engine(store, HybridClock(60_000_000), Limits())
        stream = RoomStream(bus, engine)
        await stream.add("r")
        assert [b.changes for b in await stream.next()] == [[]]
        outcomes = [
            await engine.push(wire.push_batch(push("r", set_change(i, "k", n=i)), Limits()))
            for i in (1, 2, 3)
        ]
        await bus.publish(wire.change_batch("r", outcomes[2].committed))
        await bus.publish(wire.change_batch("r", outcomes[0].committed))
        delivered = await stream.next()
        assert [[c.seq for c in b.changes] for b in delivered] == [[1, 2], [3]]
        await bus.publish(wire.change_batch("r", outcomes[1].committed))
        assert await stream.next() == []
        await stream.close()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(UNPROTECTED_GRPC, **extra)
    return env


async def test_main_serves_until_sigterm(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.sync",
        env=child_env(
            SYNC_ADDR="127.0.0.1:0",
            METRICS_ADDR="",
            DATABASE_URL=f"sqlite:///{tmp_path / 'main.db'}",
        ),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    line = b""
    while b"sync listening on 127.0.0.1:" not in line:
        line = await asyncio.wait_for(process.stderr.readline(), DEADLINE)
        assert line, "the service exited before listening"
    port = int(line.decode().rsplit(":", 1)[1])
    async with create_channel(f"127.0.0.1:{port}") as channel:
        head = await SyncStub(channel).Head(pb.HeadRequest(room="r"), timeout=DEADLINE)
    assert head.head == 0
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), DEADLINE) == 0


async def test_main_rejects_bad_configuration_in_one_line() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.sync",
        env=child_env(MAX_BATCH_CHANGES="lots"),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode == 2
    assert stderr.decode().strip().splitlines() == [
        "configuration error: MAX_BATCH_CHANGES='lots' is not an integer"
    ]


@pytest.mark.integration
async def test_migrate_command_creates_the_schema_and_exits(database_url: str) -> None:
    for _ in range(2):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "accord.sync", "migrate", env=child_env(DATABASE_URL=database_url)
        )
        assert await asyncio.wait_for(process.wait(), DEADLINE * 3) == 0
    conn = await asyncpg.connect(database_url)
    try:
        versions = await conn.fetch("SELECT version FROM schema_migrations")
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
    finally:
        await conn.close()
    assert [r["version"] for r in versions] == [v for v, _ in MIGRATIONS]
    assert [r["tablename"] for r in tables] == [
        "changes",
        "clients",
        "conflicts",
        "extension_cursors",
        "incarnation",
        "record_bases",
        "records",
        "rooms",
        "schema_migrations",
        "webhook_outbox",
        "webhook_parked",
    ]


async def test_an_overflowing_subscription_is_flagged(tmp_path: Path) -> None:
    async with SqliteStore.open(str(tmp_path / "s.db")) as store, MemoryBus.open() as bus:
        stream = RoomStream(bus, Engine(store, HybridClock(60_000_000), Limits()), queue_size=3)
        await stream.add("r")
        for seq in range(1, 4):
            await bus.publish(pb.ChangeBatch(room="r", changes=[pb.CommittedChange(seq=seq)]))
        assert stream.overflowed.is_set()
        await stream.close()


async def test_in_memory_database_and_shutdown_ends_subscriptions() -> None:
    settings = Settings(
        sync_addr=("127.0.0.1", 0),
        grpc=ServerSecurity.unprotected(),
        metrics_addr=None,
        database=SqliteTarget(":memory:"),
    )
    async with serve(settings, grace=1.0) as running:
        channel = running_channel(running)
        stub = SyncStub(channel)
        stream = stub.Subscribe()
        await stream.write(pb.SubscribeRequest(add=["r"]))
        assert (await asyncio.wait_for(stream.read(), DEADLINE)).changes.room == "r"
        await stub.Push(push("r", set_change(1, "a", x=1)), timeout=DEADLINE)
        live = await asyncio.wait_for(stream.read(), DEADLINE)
        assert [c.seq for c in live.changes.changes] == [1]
        pulled = [r async for r in stub.Pull(pb.PullRequest(room="r"), timeout=DEADLINE)]
        assert pulled[1].snapshot.records[0].value_json == '{"x":1}'
        reading = asyncio.ensure_future(stream.read())
    try:
        assert await asyncio.wait_for(reading, DEADLINE) is grpc.aio.EOF
    finally:
        await channel.close()


async def test_start_fails_clearly_when_the_port_is_taken(tmp_path: Path) -> None:
    settings = Settings(
        sync_addr=("127.0.0.1", 0),
        grpc=ServerSecurity.unprotected(),
        metrics_addr=None,
        database=SqliteTarget(":memory:"),
    )
    async with serve(settings) as first:
        taken = dataclasses.replace(settings, sync_addr=("127.0.0.1", first.port))
        with pytest.raises(BindError, match="cannot listen on SYNC_ADDR="):
            async with serve(taken):
                pass

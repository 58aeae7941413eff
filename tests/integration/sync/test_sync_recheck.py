"""Re-checks: a live subscription gets every committed change the bus lost, with no later
change to the room needed (every store; real Redis, a private one where it is stopped)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis
from accord.sync import wire
from accord.sync.bus import Bus
from accord.sync.bus_memory import MemoryBus
from accord.sync.bus_redis import RedisBus
from accord.sync.committer import Committer
from accord.sync.engine import Engine
from accord.sync.model import Limits
from accord.sync.recheck import Rechecker
from accord.sync.subscription import RoomStream
from prometheus_client import REGISTRY

from tests.integration.sync.sync_helpers import push, set_change
from tests.support.redis_server import PrivateRedis

DEADLINE = 10.0
ROOM = "quiet"


class Subscriber:
    """One RoomStream followed by a replica's Rechecker, read by one task: the seqs it sent."""

    def __init__(self, bus: Bus, engine: Engine, rechecker: Rechecker) -> None:
        self.stream = RoomStream(bus, engine)
        self.rechecker = rechecker
        self.seqs: list[int] = []
        self.arrived = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.rechecker.follow(self.stream)
        await self.stream.add(ROOM)
        assert [list(b.changes) for b in await self.stream.next()] == [[]]  # confirmed
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batches = await self.stream.next()
            async with self.arrived:
                self.seqs.extend(c.seq for b in batches for c in b.changes)
                self.arrived.notify_all()

    async def until(self, seq: int) -> list[int]:
        async with asyncio.timeout(DEADLINE), self.arrived:
            await self.arrived.wait_for(lambda: bool(self.seqs) and self.seqs[-1] >= seq)
        return self.seqs

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self.rechecker.forget(self.stream)
        await self.stream.close()


async def subscriber(
    stack: AsyncExitStack, bus: Bus, engine: Engine, rechecker: Rechecker
) -> Subscriber:
    sub = Subscriber(bus, engine, rechecker)
    await sub.start()
    stack.push_async_callback(sub.close)
    return sub


def recovered_changes() -> float:
    return REGISTRY.get_sample_value("accord_sync_recheck_recovered_changes_total") or 0.0


async def commit_unpublished(engine: Engine, first: int, count: int) -> int:
    """Commit ``count`` changes without publishing them (a replica killed before its
    publish); the room's head after them."""
    head = 0
    for client_seq in range(first, first + count):
        outcome = await engine.push(
            wire.push_batch(push(ROOM, set_change(client_seq, "k", n=client_seq)), Limits())
        )
        head = outcome.head
    return head


async def test_a_recheck_sends_what_the_log_holds_beyond_the_last_seq_sent_once(
    engine: Engine,
) -> None:
    async with MemoryBus.open() as bus, AsyncExitStack() as stack:
        rechecker = Rechecker(bus)
        committer = Committer(engine, bus)
        sub = await subscriber(stack, bus, engine, rechecker)
        await committer.push(wire.push_batch(push(ROOM, set_change(1, "k", n=1)), Limits()))
        assert await sub.until(1) == [1]
        recovered = recovered_changes()
        head = await commit_unpublished(engine, 2, 3)
        rechecker.recheck("interval")
        assert await sub.until(head) == [1, 2, 3, 4]
        assert recovered_changes() == recovered + 3
        # Nothing twice: a second re-check sends nothing, and the next published change
        # follows right after.
        rechecker.recheck("interval")
        await committer.push(wire.push_batch(push(ROOM, set_change(5, "k", n=5)), Limits()))
        assert await sub.until(5) == [1, 2, 3, 4, 5]


async def test_the_periodic_recheck_catches_up_a_quiet_room(engine: Engine) -> None:
    async with MemoryBus.open() as bus, AsyncExitStack() as stack:
        rechecker = await stack.enter_async_context(Rechecker(bus, interval=0.2).running())
        sub = await subscriber(stack, bus, engine, rechecker)
        head = await commit_unpublished(engine, 1, 2)
        assert await sub.until(head) == [1, 2]


@pytest.mark.integration
async def test_a_replica_starting_makes_the_others_recheck(
    engine: Engine, redis_url: str, redis_prefix: str
) -> None:
    # Replica A committed and was killed before publishing; B's subscriber is behind until
    # A starts again and asks every replica to re-check.
    async with RedisBus.open(redis_url, redis_prefix) as bus_b, AsyncExitStack() as stack:
        sub = await subscriber(stack, bus_b, engine, Rechecker(bus_b))
        head = await commit_unpublished(engine, 1, 3)
        bus_a = await stack.enter_async_context(RedisBus.open(redis_url, redis_prefix))
        await stack.enter_async_context(Rechecker(bus_a).running())
        assert await sub.until(head) == [1, 2, 3]


@pytest.mark.integration
async def test_a_change_committed_while_redis_is_down_arrives_once_it_is_back(
    engine: Engine, private_redis: PrivateRedis, redis_prefix: str
) -> None:
    async with RedisBus.open(private_redis.url, redis_prefix) as bus, AsyncExitStack() as stack:
        rechecker = await stack.enter_async_context(Rechecker(bus).running())
        committer = Committer(engine, bus, on_unpublished=rechecker.ask_every_replica)
        sub = await subscriber(stack, bus, engine, rechecker)
        await committer.push(wire.push_batch(push(ROOM, set_change(1, "k", n=1)), Limits()))
        assert await sub.until(1) == [1]
        private_redis.stop()
        # Acknowledged (it is committed), though published to nobody.
        outcome = await committer.push(
            wire.push_batch(push(ROOM, set_change(2, "k", n=2)), Limits())
        )
        assert outcome.head == 2
        private_redis.start()
        await private_redis.ready()
        # No further push: the bus coming back is enough.
        assert await sub.until(2) == [1, 2]
        await committer.push(wire.push_batch(push(ROOM, set_change(3, "k", n=3)), Limits()))
        assert await sub.until(3) == [1, 2, 3]


@pytest.mark.integration
async def test_a_refused_publish_is_recovered_once_redis_takes_publishes_again(
    engine: Engine, private_redis: PrivateRedis, redis_prefix: str
) -> None:
    # Replica A may not publish (its Redis user lost the right), while B's connection
    # stays up: B only learns of A's commits from A's re-check request.
    admin = aioredis.from_url(private_redis.url)
    await admin.acl_setuser(
        "replica-a",
        enabled=True,
        passwords=["+pw-a"],
        keys=["*"],
        channels=["*"],
        categories=["+@all"],
    )
    url_a = private_redis.url.replace("redis://", "redis://replica-a:pw-a@")
    try:
        async with (
            RedisBus.open(private_redis.url, redis_prefix) as bus_b,
            RedisBus.open(url_a, redis_prefix) as bus_a,
            AsyncExitStack() as stack,
        ):
            rechecker_a = await stack.enter_async_context(Rechecker(bus_a).running())
            committer_a = Committer(engine, bus_a, on_unpublished=rechecker_a.ask_every_replica)
            sub = await subscriber(stack, bus_b, engine, Rechecker(bus_b))
            await admin.acl_setuser("replica-a", enabled=True, commands=["-publish"])
            head = 0
            for client_seq in (1, 2):
                outcome = await committer_a.push(
                    wire.push_batch(push(ROOM, set_change(client_seq, "k", n=1)), Limits())
                )
                head = outcome.head
            assert head == 2  # acknowledged: committed, though published to nobody
            await admin.acl_setuser("replica-a", enabled=True, commands=["+publish"])
            assert await sub.until(head) == [1, 2]
    finally:
        await admin.aclose()

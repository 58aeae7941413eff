"""One contract, every bus: in-process and Redis pub/sub (a private Redis where it restarts)."""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from accord.api.sync.v1 import sync_pb2 as pb
from accord.sync import bus_redis
from accord.sync.bus import Bus, LossReason
from accord.sync.bus_memory import MemoryBus
from accord.sync.bus_redis import RedisBus
from prometheus_client import REGISTRY

from tests.support.redis_server import PrivateRedis

DEADLINE = 10.0


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def bus_target(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    """None for the in-process bus, else Redis (url, prefix)."""
    if request.param == "memory":
        return None
    return str(request.getfixturevalue("redis_url")), str(request.getfixturevalue("redis_prefix"))


@pytest.fixture
async def bus(bus_target: tuple[str, str] | None) -> AsyncIterator[Bus]:
    if bus_target is None:
        async with MemoryBus.open() as memory:
            yield memory
        return
    async with RedisBus.open(*bus_target) as redis_bus:
        yield redis_bus


def batch(room: str, *seqs: int) -> pb.ChangeBatch:
    return pb.ChangeBatch(
        room=room,
        changes=[pb.CommittedChange(seq=s, collection="c", key="k", patch_json="{}") for s in seqs],
    )


class Inbox:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[pb.ChangeBatch] = asyncio.Queue()

    def __call__(self, received: pb.ChangeBatch) -> None:
        self.queue.put_nowait(received)

    async def next(self) -> pb.ChangeBatch:
        return await asyncio.wait_for(self.queue.get(), DEADLINE)


async def test_a_subscriber_gets_every_batch_of_its_room_in_order(bus: Bus) -> None:
    inbox = Inbox()
    await bus.subscribe("room-a", inbox)
    for seq in range(1, 31):
        await bus.publish(batch("room-a", seq))
    received = [await inbox.next() for _ in range(30)]
    assert [b.changes[0].seq for b in received] == list(range(1, 31))
    assert all(b.room == "room-a" for b in received)


async def test_publish_many_delivers_each_batch_to_its_room_in_order(bus: Bus) -> None:
    a, b = Inbox(), Inbox()
    await bus.subscribe("room-a", a)
    await bus.subscribe("room-b", b)
    await bus.publish_many([batch("room-a", 1, 2), batch("room-b", 5), batch("room-a", 3)])
    await bus.publish_many([])
    assert [c.seq for c in (await a.next()).changes] == [1, 2]
    assert [c.seq for c in (await a.next()).changes] == [3]
    assert [c.seq for c in (await b.next()).changes] == [5]
    assert a.queue.empty() and b.queue.empty()


async def test_subscribe_many_follows_every_room_once(bus: Bus) -> None:
    inbox = Inbox()
    await bus.subscribe_many(["room-a", "room-b", "room-a"], inbox)
    await bus.subscribe_many(["room-b", "room-c"], inbox)  # room-b: already followed
    await bus.publish_many([batch("room-a", 1), batch("room-b", 2), batch("room-c", 3)])
    received = [await inbox.next() for _ in range(3)]
    assert sorted((b.room, b.changes[0].seq) for b in received) == [
        ("room-a", 1),
        ("room-b", 2),
        ("room-c", 3),
    ]
    await bus.unsubscribe("room-b", inbox)
    await bus.publish_many([batch("room-b", 4), batch("room-c", 5)])
    assert (await inbox.next()).room == "room-c"
    assert inbox.queue.empty()


async def test_rooms_are_isolated_and_unsubscribe_stops_delivery(bus: Bus) -> None:
    first, second = Inbox(), Inbox()
    await bus.subscribe("room-a", first)
    await bus.subscribe("room-a", second)
    await bus.subscribe("room-b", second)
    await bus.publish(batch("room-a", 1))
    assert (await first.next()).changes[0].seq == 1
    assert (await second.next()).room == "room-a"
    await bus.unsubscribe("room-a", second)
    await bus.publish(batch("room-a", 2))
    await bus.publish(batch("room-b", 7))
    assert (await first.next()).changes[0].seq == 2
    marker = await second.next()
    assert (marker.room, marker.changes[0].seq) == ("room-b", 7)
    assert second.queue.empty()


async def test_a_failing_listener_does_not_stop_the_others(bus: Bus) -> None:
    def broken(_: pb.ChangeBatch) -> None:
        raise RuntimeError("boom")

    inbox = Inbox()
    await bus.subscribe("room-a", broken)
    await bus.subscribe("room-a", inbox)
    await bus.publish(batch("room-a", 1))
    await bus.publish(batch("room-a", 2))
    assert [(await inbox.next()).changes[0].seq for _ in range(2)] == [1, 2]


@pytest.mark.integration
async def test_redis_channel_and_payload(redis_url: str, redis_prefix: str) -> None:
    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        shard = zlib.crc32(b"room-a") % 16
        await pubsub.subscribe(f"{redis_prefix}:sync:{shard}")
        async with RedisBus.open(redis_url, redis_prefix, shards=16) as bus:
            # A group's batches for rooms of one shard travel in one message.
            other = next(
                f"room-{i}"
                for i in range(1000)
                if zlib.crc32(f"room-{i}".encode()) % 16 == shard and f"room-{i}" != "room-a"
            )
            await bus.publish_many([batch("room-a", 4), batch(other, 9)])
            message = None
            while message is None or message["type"] != "message":
                message = await pubsub.get_message(timeout=DEADLINE)
        received = pb.BusMessage.FromString(message["data"])
        assert list(received.batches) == [batch("room-a", 4), batch(other, 9)]
        # The publisher's origin comes first, so that it can pass over its own messages.
        assert len(received.origin) == 8
        assert message["data"].startswith(pb.BusMessage(origin=received.origin).SerializeToString())
    finally:
        await pubsub.aclose()
        await client.aclose()


@pytest.mark.integration
async def test_redis_carries_batches_between_replicas(redis_url: str, redis_prefix: str) -> None:
    async with (
        RedisBus.open(redis_url, redis_prefix) as publisher,
        RedisBus.open(redis_url, redis_prefix) as subscriber,
    ):
        inbox = Inbox()
        await subscriber.subscribe("room-a", inbox)
        await publisher.publish(batch("room-a", 1, 2))
        assert [c.seq for c in (await inbox.next()).changes] == [1, 2]


@pytest.mark.integration
async def test_rooms_sharing_a_channel_stay_apart(redis_url: str, redis_prefix: str) -> None:
    # One shard: every room on one channel. Listeners still get only their rooms, and
    # dropping one room keeps the channel for the others.
    async with (
        RedisBus.open(redis_url, redis_prefix, shards=1) as publisher,
        RedisBus.open(redis_url, redis_prefix, shards=1) as subscriber,
    ):
        a, b = Inbox(), Inbox()
        await subscriber.subscribe_many(["room-a", "room-b"], a)
        await subscriber.subscribe("room-b", b)
        await publisher.publish_many([batch("room-a", 1), batch("room-c", 1), batch("room-b", 1)])
        assert [(await a.next()).room for _ in range(2)] == ["room-a", "room-b"]
        assert (await b.next()).room == "room-b"
        await subscriber.unsubscribe("room-a", a)
        await subscriber.unsubscribe("room-b", a)
        await publisher.publish_many([batch("room-a", 2), batch("room-b", 2)])
        assert (await b.next()).changes[0].seq == 2
        assert a.queue.empty()
        await subscriber.unsubscribe("room-b", b)
        await subscriber.subscribe("room-a", a)  # the channel again, confirmed anew
        await publisher.publish(batch("room-a", 3))
        assert (await a.next()).changes[0].seq == 3
        assert b.queue.empty()


class Losses:
    """A loss listener: the reasons it was called with."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[LossReason] = asyncio.Queue()

    def __call__(self, reason: LossReason) -> None:
        self.queue.put_nowait(reason)

    async def next(self) -> LossReason:
        return await asyncio.wait_for(self.queue.get(), DEADLINE)


async def test_a_recheck_request_reaches_the_loss_listeners(bus: Bus) -> None:
    losses = Losses()
    bus.on_loss(losses)
    await bus.request_recheck()
    assert await losses.next() == "requested"
    assert losses.queue.empty()


@pytest.mark.integration
async def test_a_recheck_request_reaches_every_replica(redis_url: str, redis_prefix: str) -> None:
    async with (
        RedisBus.open(redis_url, redis_prefix) as asking,
        RedisBus.open(redis_url, redis_prefix) as other,
    ):
        mine, theirs = Losses(), Losses()
        asking.on_loss(mine)
        other.on_loss(theirs)
        await asking.request_recheck()
        assert await theirs.next() == "requested"
        assert await mine.next() == "requested"


async def restart(redis_server: PrivateRedis, losses: Losses) -> None:
    """Restart Redis; returns once the bus has reported its reconnection."""
    redis_server.stop()
    redis_server.start()
    await redis_server.ready()
    assert await losses.next() == "reconnected"


@pytest.mark.integration
async def test_redis_reports_a_reconnection_once_subscribed_again(
    private_redis: PrivateRedis, redis_prefix: str
) -> None:
    async with RedisBus.open(private_redis.url, redis_prefix) as bus:
        inbox, losses = Inbox(), Losses()
        await bus.subscribe("room-a", inbox)
        bus.on_loss(losses)
        await restart(private_redis, losses)
        # From then on, whatever is published arrives.
        async with RedisBus.open(private_redis.url, redis_prefix) as publisher:
            await publisher.publish(batch("room-a", 1))
        assert [c.seq for c in (await inbox.next()).changes] == [1]
        assert losses.queue.empty()


@pytest.mark.integration
async def test_a_replica_hands_its_own_batches_over_once_and_at_once(
    redis_url: str, redis_prefix: str
) -> None:
    # Its own listeners get a published batch before Redis has carried it anywhere
    # (and so also while Redis cannot take it), and not a second time when it comes back.
    async with (
        RedisBus.open(redis_url, redis_prefix) as publisher,
        RedisBus.open(redis_url, redis_prefix) as other,
    ):
        own, theirs = Inbox(), Inbox()
        await publisher.subscribe("room-a", own)
        await other.subscribe("room-a", theirs)
        handed: list[int] = []
        await publisher.subscribe("room-a", lambda b: handed.append(b.changes[0].seq))
        publishing = asyncio.ensure_future(publisher.publish(batch("room-a", 1)))
        assert handed == [] and not publishing.done()
        await asyncio.sleep(0)  # the publish has started: handed over, Redis not answered yet
        assert handed == [1]
        await publishing
        await publisher.publish(batch("room-a", 2))
        assert [c.seq for c in (await theirs.next()).changes] == [1]
        assert [c.seq for c in (await theirs.next()).changes] == [2]
        # Both came back from Redis to the publisher too (the other replica has them, and
        # one pub/sub connection reads both): a message the other replica publishes is
        # still handed over, after which nothing else is queued.
        await other.publish(batch("room-a", 3))
        assert [(await own.next()).changes[0].seq for _ in range(3)] == [1, 2, 3]
        assert (await theirs.next()).changes[0].seq == 3
        await asyncio.sleep(0.2)
        assert own.queue.empty() and theirs.queue.empty()
        assert handed == [1, 2, 3]


def unpublished() -> float:
    return REGISTRY.get_sample_value("accord_sync_bus_unpublished_total") or 0.0


async def until_unpublished(bus: RedisBus, room: str, seqs: itertools.count[int]) -> float:
    """Publish batches of ``room`` until the bus keeps one to itself; the counter then."""
    async with asyncio.timeout(DEADLINE):
        while True:
            before = unpublished()
            await bus.publish(batch(room, next(seqs)))
            if unpublished() > before:
                return unpublished()
            await asyncio.sleep(0.01)  # its own copy back from Redis


class Owed:
    """An ``on_recheck_owed`` listener: how often it was called."""

    def __init__(self) -> None:
        self.calls = 0
        self.called = asyncio.Event()

    def __call__(self) -> None:
        self.calls += 1
        self.called.set()


@pytest.mark.integration
@pytest.mark.parametrize("follows", [True, False], ids=["follows", "does-not-follow"])
async def test_a_replica_alone_on_a_shard_stops_publishing_there(
    redis_url: str, redis_prefix: str, follows: bool
) -> None:
    # Nobody else listens: after one message Redis says reached only this replica (or
    # nobody), the shard's batches go to this replica's own listeners and no further.
    async with RedisBus.open(redis_url, redis_prefix) as bus:
        inbox = Inbox()
        if follows:
            await bus.subscribe("room-a", inbox)
        seqs = itertools.count(1)
        last = await until_unpublished(bus, "room-a", seqs)
        for _ in range(5):
            await bus.publish(batch("room-a", next(seqs)))
        assert unpublished() == last + 5
        if follows:
            got = [(await inbox.next()).changes[0].seq for _ in range(next(seqs) - 1)]
            assert got == list(range(1, len(got) + 1))
            await asyncio.sleep(0.1)
            assert inbox.queue.empty()


@pytest.mark.integration
async def test_a_replica_joining_a_quiet_shard_is_published_to_at_once(
    redis_url: str, redis_prefix: str
) -> None:
    async with (
        RedisBus.open(redis_url, redis_prefix) as publisher,
        RedisBus.open(redis_url, redis_prefix) as joiner,
    ):
        owed = Owed()
        publisher.on_recheck_owed(owed)
        seqs = itertools.count(1)
        last = await until_unpublished(publisher, "room-a", seqs)
        assert owed.calls == 0
        inbox = Inbox()
        await joiner.subscribe("room-a", inbox)  # says so on the join channel
        # The publisher learns it from Redis; what it skipped is owed as a re-check.
        await asyncio.wait_for(owed.called.wait(), DEADLINE)
        seq = next(seqs)
        await publisher.publish(batch("room-a", seq))
        assert unpublished() == last
        assert [c.seq for c in (await inbox.next()).changes] == [seq]
        assert owed.calls == 1


@pytest.mark.integration
async def test_a_listener_that_never_joined_is_found_after_the_quiet_time(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A subscriber that says nothing (a replica of an older version): the quiet shard's
    # next batch after QUIET_SECONDS is published, Redis counts it, and the re-check of
    # what was skipped is owed.
    monkeypatch.setattr(bus_redis, "QUIET_SECONDS", 0.3)
    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        async with RedisBus.open(redis_url, redis_prefix) as bus:
            owed = Owed()
            bus.on_recheck_owed(owed)
            seqs = itertools.count(1)
            await until_unpublished(bus, "room-a", seqs)
            await pubsub.subscribe(bus.channel(bus.shard("room-a")))
            assert (await pubsub.get_message(timeout=DEADLINE) or {}).get("type") == "subscribe"
            await asyncio.sleep(0.3)
            seq = next(seqs)
            await bus.publish(batch("room-a", seq))
            message = await pubsub.get_message(timeout=DEADLINE)
            assert message is not None and message["type"] == "message"
            assert [
                c.seq for c in pb.BusMessage.FromString(message["data"]).batches[0].changes
            ] == [seq]
            assert owed.calls == 1
            before = unpublished()
            await bus.publish(batch("room-a", next(seqs)))  # heard now: published
            assert unpublished() == before
            assert await pubsub.get_message(timeout=DEADLINE) is not None
    finally:
        await pubsub.aclose()
        await client.aclose()


@pytest.mark.integration
async def test_skip_unheard_off_publishes_everything(redis_url: str, redis_prefix: str) -> None:
    async with RedisBus.open(redis_url, redis_prefix, skip_unheard=False) as bus:
        inbox = Inbox()
        await bus.subscribe("room-a", inbox)
        before = unpublished()
        for seq in range(1, 21):
            await bus.publish(batch("room-a", seq))
            await asyncio.sleep(0.005)
        assert unpublished() == before
        assert [(await inbox.next()).changes[0].seq for _ in range(20)] == list(range(1, 21))


@pytest.mark.integration
async def test_a_reconnected_replica_publishes_to_its_quiet_shards_again(
    private_redis: PrivateRedis, redis_prefix: str
) -> None:
    # While it was away others may have subscribed (their joins went by): after the
    # reconnection it publishes again, and owes a re-check of what it skipped.
    async with RedisBus.open(private_redis.url, redis_prefix) as bus:
        owed, losses = Owed(), Losses()
        bus.on_recheck_owed(owed)
        bus.on_loss(losses)
        await bus.subscribe("room-a", Inbox())
        seqs = itertools.count(1)
        last = await until_unpublished(bus, "room-a", seqs)
        await restart(private_redis, losses)
        assert owed.calls == 1
        await bus.publish(batch("room-a", next(seqs)))
        assert unpublished() == last

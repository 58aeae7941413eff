"""Inline batches: a push naming its caller's Subscribe stream of the same replica is
answered with the commit group's batches of its rooms, and that stream does not send
them (every store; the in-process bus and real Redis; real gRPC for the servicer).

Each committed batch reaches the subscriber once, in the answer or on the stream; the
stream's later batches of the room still follow it in order; a subscriber on another
replica, one never named, or one whose stream has not written what it owes, gets
everything on the stream as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import grpc
import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1.sync_pb2_grpc import SyncStub
from accord.common.grpc_security import ServerSecurity
from accord.common.grpcutil import create_channel
from accord.edge.backends import SyncClient
from accord.edge.protocol import ChangesOut, Out, ProtocolError
from accord.edge.rooms import Hub
from accord.sync import wire
from accord.sync.app import Running, serve
from accord.sync.bus import Bus
from accord.sync.bus_memory import MemoryBus
from accord.sync.bus_redis import RedisBus
from accord.sync.committer import Committer
from accord.sync.engine import Engine
from accord.sync.model import Limits, LoggedChange
from accord.sync.settings import PostgresTarget, Settings, SqliteTarget
from accord.sync.subscription import RoomStream
from prometheus_client import REGISTRY

from tests.integration.sync.sync_helpers import push, set_change

DEADLINE = 10.0
ROOM = "inline"


def pushed(client_seq: int, room: str = ROOM, client_id: str = "c1") -> Any:
    return wire.push_batch(
        push(room, set_change(client_seq, "k", n=client_seq), client_id=client_id), Limits()
    )


def seqs(batches: list[pb.ChangeBatch]) -> list[list[int]]:
    return [[c.seq for c in batch.changes] for batch in batches]


def inline_total() -> float:
    return REGISTRY.get_sample_value("accord_sync_inline_batches_total") or 0.0


class Answer:
    """What a push's response would carry: the batches the stream let it claim."""

    def __init__(self, stream: RoomStream) -> None:
        self.stream = stream
        self.batches: list[pb.ChangeBatch] = []

    def offer(self, batch: pb.ChangeBatch) -> None:
        if self.stream.claim(batch):
            self.batches.append(batch)


class Gated:
    """The engine, whose log reads wait for ``gate`` (a gap fill held half-way). A wrapper,
    not a subclass: the engine may be compiled, and compiled classes take no Python
    subclasses."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.gate = asyncio.Event()
        self.reading = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def changes(self, room: str, since: int, until: int, limit: int) -> list[LoggedChange]:
        self.reading.set()
        await self.gate.wait()
        return await self._engine.changes(room, since, until, limit)


async def confirmed(bus: Bus, engine: Engine) -> RoomStream:
    stream = RoomStream(bus, engine)
    await stream.add(ROOM)
    out = await stream.next()
    assert seqs(out) == [[]]
    stream.written(out)
    return stream


async def next_written(stream: RoomStream) -> list[list[int]]:
    out = await asyncio.wait_for(stream.next(), DEADLINE)
    stream.written(out)
    return seqs(out)


async def test_a_claimed_batch_is_answered_and_its_bus_copy_never_sent(engine: Engine) -> None:
    async with MemoryBus.open() as bus:
        committer = Committer(engine, bus)
        stream = await confirmed(bus, engine)
        before = inline_total()
        answer = Answer(stream)
        outcome = await committer.submit(pushed(1), answer)
        assert outcome.head == 1
        assert seqs(answer.batches) == [[1]]
        # Later batches of the room still flow on the stream, right after the claimed one
        # (whose copy from the bus would have come first).
        await committer.push(pushed(2))
        assert await next_written(stream) == [[2]]
        again = Answer(stream)
        await committer.submit(pushed(3), again)
        await committer.push(pushed(4))
        assert seqs(again.batches) == [[3]]
        assert await next_written(stream) == [[4]]
        assert inline_total() == before  # counted by the servicer's answer, not here
        await stream.close()


async def test_the_groups_whole_batch_of_the_room_is_claimed_once(engine: Engine) -> None:
    # Two pushes to the room in one group, one of them another client's: the answer holds
    # the group's one batch of the room, as the stream would have sent it, once.
    async with MemoryBus.open() as bus:
        committer = Committer(engine, bus)
        stream = await confirmed(bus, engine)
        answer = Answer(stream)
        first = committer.submit(pushed(1), answer)
        other = committer.submit(pushed(1, client_id="c2"))
        mine_again = committer.submit(pushed(2), answer)
        await asyncio.gather(first, other, mine_again)
        assert seqs(answer.batches) == [[1, 2, 3]]
        await committer.push(pushed(3))
        assert await next_written(stream) == [[4]]
        await stream.close()


async def test_no_claim_while_the_streams_output_of_the_room_is_unwritten(engine: Engine) -> None:
    async with MemoryBus.open() as bus:
        committer = Committer(engine, bus)
        stream = RoomStream(bus, engine)
        await stream.add(ROOM)
        confirmation = await stream.next()  # not written yet
        answer = Answer(stream)
        await committer.submit(pushed(1), answer)
        assert answer.batches == []  # the client must see the confirmation first
        stream.written(confirmation)
        out = await stream.next()
        assert seqs(out) == [[1]]
        await committer.submit(pushed(2), answer)
        assert answer.batches == []  # seq 1 is on its way, unwritten
        stream.written(out)
        assert await next_written(stream) == [[2]]
        await committer.submit(pushed(3), answer)
        assert seqs(answer.batches) == [[3]]
        await stream.close()


async def test_no_claim_past_a_batch_the_stream_has_not_sent(engine: Engine) -> None:
    async with MemoryBus.open() as bus:
        committer = Committer(engine, bus)
        stream = await confirmed(bus, engine)
        await committer.push(pushed(1))  # queued on the stream, not sent yet
        answer = Answer(stream)
        await committer.submit(pushed(2), answer)
        assert answer.batches == []
        out = await asyncio.wait_for(stream.next(), DEADLINE)
        assert seqs(out) == [[1], [2]]
        await stream.close()


async def test_no_claim_while_a_gap_of_the_room_is_filled(engine: Engine) -> None:
    gated = Gated(engine)
    async with MemoryBus.open() as bus:
        committer = Committer(engine, bus)
        stream = RoomStream(bus, cast(Engine, gated))
        await stream.add(ROOM)
        stream.written(await stream.next())
        await engine.push(pushed(1))  # committed, never published: a gap
        await committer.push(pushed(2))
        filling = asyncio.ensure_future(stream.next())
        await asyncio.wait_for(gated.reading.wait(), DEADLINE)
        # Seq 1 follows the last sent seq, but the gap fill is about to send it.
        one = pb.ChangeBatch(room=ROOM, changes=[pb.CommittedChange(seq=1)])
        assert not stream.claim(one)
        gated.gate.set()
        out = await asyncio.wait_for(filling, DEADLINE)
        assert seqs(out) == [[1], [2]]
        await stream.close()


@pytest.mark.integration
async def test_the_redis_echo_of_a_claimed_batch_is_dropped(
    engine: Engine, redis_url: str, redis_prefix: str
) -> None:
    async with RedisBus.open(redis_url, redis_prefix) as bus:
        committer = Committer(engine, bus)
        stream = await confirmed(bus, engine)
        answer = Answer(stream)
        await committer.submit(pushed(1), answer)
        assert seqs(answer.batches) == [[1]]
        # Redis delivers the two publishes in order: the claimed copy came first and was
        # dropped.
        await committer.push(pushed(2))
        assert await next_written(stream) == [[2]]
        await stream.close()


# Through gRPC: the servicer's map of subscribers.


@pytest.fixture
async def running(tmp_path: Any) -> AsyncIterator[Running]:
    settings = Settings(
        sync_addr=("127.0.0.1", 0),
        grpc=ServerSecurity.unprotected(),
        metrics_addr=None,
        database=SqliteTarget(str(tmp_path / "sync.db")),
    )
    async with serve(settings, grace=1.0) as started:
        yield started


@pytest.fixture
async def stub(running: Running) -> AsyncIterator[SyncStub]:
    async with create_channel(f"127.0.0.1:{running.port}") as channel:
        yield SyncStub(channel)


async def read(call: Any) -> pb.SubscribeResponse:
    response = await asyncio.wait_for(call.read(), DEADLINE)
    assert response is not grpc.aio.EOF
    return response  # type: ignore[no-any-return]


async def subscribe(stub: SyncStub, subscriber: str, *rooms: str) -> Any:
    call = stub.Subscribe()
    await call.write(pb.SubscribeRequest(add=list(rooms), batched=True, subscriber=subscriber))
    confirmation = await read(call)
    assert sorted(b.room for b in confirmation.batches) == sorted(rooms)
    return call


async def exchange(stream: Any, *pushes: pb.PushRequest, subscriber: str) -> Any:
    await stream.write(pb.PushManyRequest(pushes=pushes, subscriber=subscriber))
    return await asyncio.wait_for(stream.read(), DEADLINE)


def one(client_seq: int, room: str = ROOM) -> pb.PushRequest:
    return push(room, set_change(client_seq, "k", n=client_seq))


async def test_a_push_naming_its_subscribe_call_is_answered_with_the_batch(
    stub: SyncStub,
) -> None:
    subscribed = await subscribe(stub, "edge-1-call-1", ROOM, "other")
    pushing = stub.PushStream()
    before = inline_total()
    answer = await exchange(pushing, one(1), one(1, "unfollowed"), subscriber="edge-1-call-1")
    assert [r.response.head for r in answer.results] == [1, 1]
    # Only the followed room's batch, as the stream would have sent it.
    assert [(b.room, [c.seq for c in b.changes]) for b in answer.batches] == [(ROOM, [1])]
    assert answer.batches[0].changes[0].client_id == "c1"
    assert inline_total() == before + 1
    # The stream's next message is the next batch: no copy of seq 1 was written.
    plain = await exchange(pushing, one(2), one(1, "other"), subscriber="")
    assert not plain.batches
    got: list[tuple[str, list[int]]] = []
    while len(got) < 2:
        message = await read(subscribed)
        got += [(b.room, [c.seq for c in b.changes]) for b in message.batches]
    assert sorted(got) == [(ROOM, [2]), ("other", [1])]
    # Later inline answers keep following the stream's batches.
    again = await exchange(pushing, one(3), subscriber="edge-1-call-1")
    assert [[c.seq for c in b.changes] for b in again.batches] == [[3]]
    pushing.cancel()
    subscribed.cancel()


async def test_an_unknown_or_ended_subscriber_gets_its_batches_on_the_stream(
    stub: SyncStub,
) -> None:
    ended = await subscribe(stub, "call-gone", ROOM)
    ended.cancel()
    subscribed = await subscribe(stub, "call-live", ROOM)
    pushing = stub.PushStream()
    for seq, name in ((1, "never-named"), (2, "call-gone")):
        answer = await exchange(pushing, one(seq), subscriber=name)
        assert answer.results[0].response.head == seq and not answer.batches
        message = await read(subscribed)
        assert [[c.seq for c in b.changes] for b in message.batches] == [[seq]]
    pushing.cancel()
    subscribed.cancel()


async def test_a_subscriber_id_is_taken_by_its_first_call_only(stub: SyncStub) -> None:
    first = await subscribe(stub, "same-id", ROOM)
    second = await subscribe(stub, "same-id", ROOM)
    pushing = stub.PushStream()
    answer = await exchange(pushing, one(1), subscriber="same-id")
    assert len(answer.batches) == 1
    # The first call skipped it; the second, never registered, sends it.
    message = await read(second)
    assert [[c.seq for c in b.changes] for b in message.batches] == [[1]]
    await exchange(pushing, one(2), subscriber="")
    message = await read(first)
    assert [[c.seq for c in b.changes] for b in message.batches] == [[2]]
    for call in (pushing, first, second):
        call.cancel()


@pytest.mark.integration
async def test_pushing_through_one_replica_subscribed_on_another_delivers_once(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = Settings(
        sync_addr=("127.0.0.1", 0),
        grpc=ServerSecurity.unprotected(),
        metrics_addr=None,
        database=PostgresTarget(database_url),
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )
    async with (
        serve(settings, grace=1.0) as a,
        serve(settings, grace=1.0) as b,
        create_channel(f"127.0.0.1:{a.port}") as channel_a,
        create_channel(f"127.0.0.1:{b.port}") as channel_b,
    ):
        via_a, via_b = SyncStub(channel_a), SyncStub(channel_b)
        subscribed = await subscribe(via_b, "edge-on-b", ROOM)
        pushing_a, pushing_b = via_a.PushStream(), via_b.PushStream()
        seen: list[int] = []
        answered: list[int] = []
        for seq in range(1, 7):
            # Alternately through A (which does not know the subscriber) and B (which does).
            pushing = pushing_a if seq % 2 else pushing_b
            answer = await exchange(pushing, one(seq), subscriber="edge-on-b")
            answered += [c.seq for batch in answer.batches for c in batch.changes]
            if pushing is pushing_a:
                assert not answer.batches
                message = await read(subscribed)
                seen += [c.seq for batch in message.batches for c in batch.changes]
        assert answered == [2, 4, 6]
        assert seen == [1, 3, 5]
        for call in (pushing_a, pushing_b, subscribed):
            call.cancel()


# The edge's side: SyncClient and Hub against the real service.


class Session:
    session_id = "s-1"

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.arrived = asyncio.Event()

    def send(self, out: Out) -> None:
        if isinstance(out, ChangesOut):
            self.seqs.extend(c.seq for c in out.changes)
            self.arrived.set()

    async def until(self, count: int) -> list[int]:
        async with asyncio.timeout(DEADLINE):
            while len(self.seqs) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.seqs


class CountingCall:
    """A Subscribe call whose messages carrying changes are counted."""

    def __init__(self, call: Any, counts: list[int]) -> None:
        self._call, self._counts = call, counts

    async def wait_for_connection(self) -> None:
        await self._call.wait_for_connection()

    def cancel(self) -> bool:
        return bool(self._call.cancel())

    async def __aiter__(self) -> AsyncIterator[pb.SubscribeResponse]:
        async for message in self._call:
            if any(b.changes for b in message.batches):
                self._counts.append(sum(len(b.changes) for b in message.batches))
            yield message


class CountingSync(SyncClient):
    def __init__(self, channel: grpc.aio.Channel) -> None:
        super().__init__(channel, DEADLINE)
        self.streamed: list[int] = []

    def subscribe(self, requests: AsyncIterator[pb.SubscribeRequest]) -> Any:
        return CountingCall(super().subscribe(requests), self.streamed)


async def test_an_edges_pushes_fan_out_from_their_answers_and_each_change_once(
    running: Running, stub: SyncStub
) -> None:
    async with create_channel(f"127.0.0.1:{running.port}") as channel:
        sync = CountingSync(channel)
        async with Hub(sync, DEADLINE) as hub:
            sync.inline = hub
            session = Session()
            sub = hub.open(ROOM, session)
            await hub.catch_up(sub, 0, "", lambda head, epoch: None)
            before = inline_total()
            for seq in range(1, 6):
                ack = await sync.push(one(seq))
                assert ack.head == seq
                # Fanned out from the answer before the ack was handed back.
                assert session.seqs == list(range(1, seq + 1))
            assert inline_total() == before + 5
            # Another caller's push (naming no subscriber) comes on the stream, and is the
            # stream's first message with changes: no copy of 1..5 was written.
            await stub.Push(push(ROOM, set_change(1, "k", n=0), client_id="c2"), timeout=DEADLINE)
            assert await session.until(6) == [1, 2, 3, 4, 5, 6]
            assert sync.streamed == [1]


async def test_an_edge_naming_a_call_the_service_does_not_know_gets_everything_streamed(
    running: Running,
) -> None:
    # As against a sync that does not answer inline (an older one ignores the field).
    async with create_channel(f"127.0.0.1:{running.port}") as channel:
        sync = CountingSync(channel)
        async with Hub(sync, DEADLINE) as hub:
            sync.inline = hub
            session = Session()
            sub = hub.open(ROOM, session)
            await hub.catch_up(sub, 0, "", lambda head, epoch: None)
            hub.subscriber = "not-a-call-of-this-replica"
            before = inline_total()
            for seq in range(1, 4):
                await sync.push(one(seq))
            assert await session.until(3) == [1, 2, 3]
            assert inline_total() == before
            assert sum(sync.streamed) == 3


class Recording:
    """An InlineBatches that records what the client hands it."""

    subscriber = "recorded-call"

    def __init__(self) -> None:
        self.taken: list[pb.ChangeBatch] = []
        self.lost_rooms: list[list[str]] = []

    def take(self, batches: Sequence[pb.ChangeBatch]) -> None:
        self.taken.extend(batches)

    def lost(self, rooms: Sequence[str]) -> None:
        self.lost_rooms.append(list(rooms))


async def test_a_failed_exchange_naming_a_subscriber_reports_its_rooms(running: Running) -> None:
    async with create_channel(f"127.0.0.1:{running.port}") as channel:
        sync = SyncClient(channel, timeout=0.000001)  # every exchange times out
        recording = sync.inline = Recording()
        with pytest.raises(ProtocolError):
            await sync.push(one(1))
        assert recording.lost_rooms == [[ROOM]] and recording.taken == []

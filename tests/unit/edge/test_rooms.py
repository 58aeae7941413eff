"""The edge's per-room fan-out (accord.edge.rooms) against a fake sync client: gaps in
the stream are backfilled in order, batches that come during a backfill wait for it,
a gap the log no longer holds resyncs the subscribers, the catch-up skips the Pull
only for the room's own epoch, and a new epoch on a re-confirmation resyncs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import grpc
import pytest
from accord.api.sync.v1 import sync_pb2 as spb
from accord.edge.protocol import ChangesOut, Out
from accord.edge.rooms import Hub, Subscription, after

ROOM = "r"


def change(seq: int) -> spb.CommittedChange:
    return spb.CommittedChange(
        seq=seq,
        collection="c",
        key=f"k{seq}",
        client_id="w",
        client_seq=seq,
        ts=seq,
        patch_json=json.dumps({"set": {"n": seq}}),
    )


def out_of_range(details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.OUT_OF_RANGE, grpc.aio.Metadata(), grpc.aio.Metadata(), details
    )


class FakeSync:
    """The log of one room under one epoch; ``floor``: the oldest seq it still holds."""

    def __init__(self) -> None:
        self.log: list[spb.CommittedChange] = []
        self.epoch = "e1"
        self.floor = 1
        self.pulls: list[tuple[int, int, bool, str]] = []
        self.hold: asyncio.Event | None = None  # set: backfills wait for it

    def subscribe(self, requests: Any) -> Any:
        raise AssertionError("the test drives the stream itself")

    async def pull(
        self, room: str, since: int, until: int = 0, changes_only: bool = False, epoch: str = ""
    ) -> AsyncIterator[spb.PullResponse]:
        self.pulls.append((since, until, changes_only, epoch))
        head = len(self.log)
        foreign = since > 0 and epoch not in ("", self.epoch)
        if changes_only and (foreign or since + 1 < self.floor):
            raise out_of_range("not in the log")
        yield spb.PullResponse(head=until or head, epoch=self.epoch)
        if head == 0 and since == 0:
            return
        if not changes_only and (since == 0 or foreign or since + 1 < self.floor):
            records = [
                spb.Record(collection=c.collection, key=c.key, value_json='{"n":1}')
                for c in self.log
            ]
            yield spb.PullResponse(snapshot=spb.SnapshotChunk(seq=head, records=records, last=True))
            return
        if self.hold is not None:
            await self.hold.wait()
        batch = self.log[since : until or head]
        if batch:
            yield spb.PullResponse(changes=spb.ChangeBatch(room=room, changes=batch))

    async def pull_changes(
        self, room: str, since: int, until: int = 0, epoch: str = ""
    ) -> list[spb.CommittedChange]:
        out: list[spb.CommittedChange] = []
        async for item in self.pull(room, since, until, True, epoch):
            if item.WhichOneof("item") == "changes":
                out.extend(item.changes.changes)
        return out


class Session:
    session_id = "s-1"

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.snapshots: list[dict[str, Any]] = []

    def send(self, out: Out) -> None:
        if isinstance(out, ChangesOut):
            self.seqs.extend(c.seq for c in out.changes)
        elif out.type == "snapshot":
            self.snapshots.append(out.message)


async def until(predicate: Any, what: str) -> None:
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never: {what}")


def record(told: list[tuple[int, str]], head: int, epoch: str) -> None:
    told.append((head, epoch))


def confirm(hub: Hub, epoch: str) -> None:
    hub._on_message(spb.SubscribeResponse(batches=[spb.ChangeBatch(room=ROOM, epoch=epoch)]))


def stream(hub: Hub, *seqs: int) -> None:
    batch = spb.ChangeBatch(room=ROOM, changes=[change(s) for s in seqs])
    hub._on_message(spb.SubscribeResponse(batches=[batch]))


async def live(
    sync: FakeSync, since: int = 0, epoch: str = ""
) -> tuple[Hub, Subscription, Session]:
    hub = Hub(sync, confirm_timeout=1.0)
    session = Session()
    sub = hub.open(ROOM, session)
    confirm(hub, sync.epoch)
    heads: list[tuple[int, str]] = []
    await hub.catch_up(sub, since, epoch, lambda head, e: heads.append((head, e)))
    assert heads == [(len(sync.log), sync.epoch)] and sub.live
    return hub, sub, session


@pytest.mark.parametrize(
    ("position", "seqs", "fresh", "gap"),
    [
        (0, [1, 2], [1, 2], 0),
        (2, [1, 2], [], 0),
        (1, [1, 2, 3], [2, 3], 0),
        (1, [4, 5], [4, 5], 3),
        (3, [2, 3, 6], [6], 5),
    ],
)
def test_after(position: int, seqs: list[int], fresh: list[int], gap: int) -> None:
    got, got_gap = after(position, [change(s) for s in seqs])
    assert ([c.seq for c in got], got_gap) == (fresh, gap)


async def test_a_gap_in_the_stream_is_backfilled_in_order() -> None:
    sync = FakeSync()
    hub, _, session = await live(sync)
    sync.log = [change(s) for s in (1, 2, 3)]
    stream(hub, 3)  # 1 and 2 never came on the stream
    await until(lambda: session.seqs == [1, 2, 3], "the backfill")
    assert sync.pulls[-1] == (0, 2, True, "e1")
    stream(hub, 2, 3)  # late duplicates
    sync.log.append(change(4))
    stream(hub, 4)
    await until(lambda: session.seqs[-1] == 4, "the next change")
    assert session.seqs == [1, 2, 3, 4] and hub.rooms[ROOM].position == 4


async def test_batches_during_a_backfill_wait_for_it() -> None:
    sync = FakeSync()
    hub, _, session = await live(sync)
    sync.log = [change(s) for s in (1, 2, 3, 4)]
    sync.hold = asyncio.Event()
    stream(hub, 3)
    await until(lambda: hub.rooms[ROOM].backfilling, "a backfill")
    stream(hub, 4)
    assert session.seqs == []
    sync.hold.set()
    await until(lambda: session.seqs == [1, 2, 3, 4], "everything, in order")


async def test_a_gap_the_log_no_longer_holds_resyncs_with_a_snapshot() -> None:
    sync = FakeSync()
    hub, sub, session = await live(sync)
    sync.log = [change(s) for s in range(1, 11)]
    sync.floor = 8  # 1..7 compacted away
    stream(hub, 10)
    await until(lambda: session.snapshots, "a snapshot")
    assert (session.snapshots[0]["seq"], session.snapshots[0]["epoch"]) == (10, "e1")
    assert sub.live and sub.position == 10


async def test_the_catch_up_skips_the_pull_only_for_the_rooms_epoch() -> None:
    sync = FakeSync()
    sync.log = [change(1), change(2)]
    hub, _, _ = await live(sync)  # a snapshot at 2: the room is at 2
    pulls = len(sync.pulls)
    for epoch, skipped in (("", True), ("e1", True), ("old", False)):
        session = Session()
        sub = hub.open(ROOM, session)
        told: list[tuple[int, str]] = []
        await hub.catch_up(sub, 2, epoch, partial(record, told))
        assert told == [(2, "e1")] and sub.live
        assert (len(sync.pulls) == pulls) == skipped, epoch
        pulls = len(sync.pulls)
        assert [s["seq"] for s in session.snapshots] == ([] if skipped else [2])


async def test_a_new_epoch_on_a_reconfirmation_resyncs_the_subscribers() -> None:
    sync = FakeSync()
    sync.log = [change(1), change(2)]
    hub, sub, session = await live(sync)
    session.snapshots.clear()
    sync.epoch = "e2"  # restored and renewed: another history
    sync.log = [change(1)]
    hub.rooms[ROOM].confirmed.clear()  # the stream reconnected
    confirm(hub, "e2")
    await until(lambda: session.snapshots, "a fresh snapshot")
    assert (session.snapshots[0]["seq"], session.snapshots[0]["epoch"]) == (1, "e2")
    assert sync.pulls[-1] == (2, 0, False, "e1"), "from its position, under its old epoch"
    assert hub.rooms[ROOM].epoch == "e2" and sub.epoch == "e2"
    sync.log.append(change(2))
    stream(hub, 2)
    await until(lambda: session.seqs[-1:] == [2], "changes of the new history")


def answered(hub: Hub, *seqs: int) -> None:
    """Sync answered a push with this batch (PushManyResponse.batches)."""
    hub.take([spb.ChangeBatch(room=ROOM, changes=[change(s) for s in seqs])])


async def test_a_batch_answered_with_a_push_fans_out_once_whichever_way_comes_first() -> None:
    sync = FakeSync()
    hub, _, session = await live(sync)
    pulls = len(sync.pulls)
    sync.log = [change(s) for s in (1, 2, 3)]
    answered(hub, 1)
    assert session.seqs == [1]  # at once: before the push's result is handed back
    stream(hub, 1)  # the stream's copy as well (a reconnect, a replaced call)
    stream(hub, 2)
    answered(hub, 2)
    answered(hub, 3)
    stream(hub, 3)
    assert session.seqs == [1, 2, 3]
    assert len(sync.pulls) == pulls  # no gap: nothing read from the log
    hub.take([spb.ChangeBatch(room="not-here", changes=[change(9)])])  # no such room: ignored
    assert session.seqs == [1, 2, 3]


async def test_an_answered_batch_past_a_gap_waits_for_the_backfill() -> None:
    sync = FakeSync()
    hub, _, session = await live(sync)
    sync.log = [change(s) for s in (1, 2, 3)]
    answered(hub, 3)  # its answer overtook the stream's 1 and 2
    await until(lambda: session.seqs == [1, 2, 3], "the backfill")
    stream(hub, 1)
    stream(hub, 2)
    assert session.seqs == [1, 2, 3]


async def test_a_failed_push_exchange_catches_its_rooms_up_from_the_log() -> None:
    sync = FakeSync()
    hub, _, session = await live(sync)
    sync.log = [change(1)]
    stream(hub, 1)
    sync.log.append(change(2))  # committed; its answer was lost with the exchange
    hub.lost([ROOM, ROOM, "not-here"])
    await until(lambda: session.seqs == [1, 2], "the catch-up")
    assert sync.pulls[-1] == (1, 0, True, "e1")


async def test_a_failed_exchange_during_a_backfill_catches_up_after_it() -> None:
    sync = FakeSync()
    hub, _, session = await live(sync)
    sync.log = [change(s) for s in (1, 2, 3)]
    sync.hold = asyncio.Event()
    stream(hub, 3)
    await until(lambda: hub.rooms[ROOM].backfilling, "a backfill")
    sync.log.append(change(4))  # the lost answer's batch
    hub.lost([ROOM])
    sync.hold.set()
    await until(lambda: session.seqs == [1, 2, 3, 4], "the backfill, then the catch-up")
    assert sync.pulls[-1] == (3, 0, True, "e1")


async def test_each_subscribe_call_names_itself_on_its_first_request_only() -> None:
    calls: list[list[spb.SubscribeRequest]] = []

    class Opening(FakeSync):
        def subscribe(self, requests: Any) -> Any:
            calls.append([])

            async def drain() -> None:
                async for request in requests:
                    calls[-1].append(request)

            return drain()

    hub = Hub(Opening(), confirm_timeout=1.0)
    ids = []
    for _ in range(2):  # a reconnect opens another call
        queue: asyncio.Queue[spb.SubscribeRequest | None] = asyncio.Queue()
        for request in (
            spb.SubscribeRequest(add=["a"], batched=True),
            spb.SubscribeRequest(add=["b"], batched=True),
            None,
        ):
            queue.put_nowait(request)

        async def requests(queue: asyncio.Queue[spb.SubscribeRequest | None] = queue) -> Any:
            while (request := await queue.get()) is not None:
                yield request

        await hub._subscribe(requests())
        ids.append(hub.subscriber)
        assert [r.subscriber for r in calls[-1]] == [hub.subscriber, ""]
    assert len(set(ids)) == 2 and all(len(i) >= 20 for i in ids)

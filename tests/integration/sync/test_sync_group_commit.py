"""Group commit: several pushes to a room in one transaction, each judged on its own.

Runs on every store (SQLite file, fresh PostgreSQL database) through the
engine, and through the committer that forms the groups.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.sync import metrics, wire
from accord.sync.bus_memory import MemoryBus
from accord.sync.committer import Committer
from accord.sync.engine import Engine, SnapshotPage
from accord.sync.errors import BadRequest, SyncError, TooLarge
from accord.sync.hlc import HybridClock
from accord.sync.model import Limits, PushBatch, PushOutcome, Retention
from accord.sync.store import RoomTransaction, Store

from tests.integration.sync.sync_helpers import insert_change, push, set_change

LIMITS = Limits()


def batch(request: pb.PushRequest) -> PushBatch:
    return wire.push_batch(request, LIMITS)


def ok(outcome: PushOutcome | SyncError) -> PushOutcome:
    assert isinstance(outcome, PushOutcome), outcome
    return outcome


async def values(engine: Engine, room: str) -> dict[str, object]:
    items = [i async for i in engine.pull(room, 0, 0, 0, False)]
    pages = [i for i in items if isinstance(i, SnapshotPage)]
    return {r.key: json.loads(r.value_json) for p in pages for r in p.records}


async def test_a_group_commits_as_if_its_pushes_came_one_by_one(engine: Engine) -> None:
    outcomes = await engine.push_group(
        [
            batch(push("r", set_change(1, "a", x=1), set_change(2, "b", x=2))),
            batch(push("r", set_change(1, "a", y=1), client_id="c2")),
            batch(push("r", set_change(3, "a", x=3))),
        ],
    )
    first, second, third = (ok(o) for o in outcomes)
    assert [r.seq for r in first.results] == [1, 2]
    assert [r.seq for r in second.results] == [3]
    assert [r.seq for r in third.results] == [4]
    # Each push reports the head as of its own last change, as if committed alone.
    assert (first.head, second.head, third.head) == (2, 3, 4)
    assert [c.seq for c in second.committed] == [3]
    assert json.loads(third.committed[0].patch_json) == {"set": {"x": 3}}
    assert await engine.head("r") == 4
    assert await values(engine, "r") == {"a": {"x": 3, "y": 1}, "b": {"x": 2}}
    # Both clients' high-water marks were saved.
    again = await engine.push_group(
        [
            batch(push("r", set_change(2, "b", x=2))),
            batch(push("r", set_change(1, "a"), client_id="c2")),
        ],
    )
    assert [r.duplicate for o in again for r in ok(o).results] == [True, True]
    assert [r.seq for o in again for r in ok(o).results] == [2, 3]
    assert await engine.head("r") == 4


async def test_a_bad_push_in_a_group_fails_alone_and_leaves_no_trace(store: Store) -> None:
    engine = Engine(store, HybridClock(60_000_000), Limits(max_record_bytes=64))
    outcomes = await engine.push_group(
        [
            batch(push("r", set_change(1, "a", x=1))),
            # Its first change alone would fit; the second makes "a" too large: all of it goes.
            batch(
                push(
                    "r", set_change(1, "b", y=2), set_change(2, "a", big="x" * 60), client_id="c2"
                ),
            ),
            batch(push("r", insert_change(1, "l", "items", "nope", "v"), client_id="c3")),
            batch(push("r", set_change(2, "a", z=3))),
        ],
    )
    assert isinstance(outcomes[1], TooLarge)
    assert isinstance(outcomes[2], BadRequest)
    assert "nope" in str(outcomes[2])
    assert [r.seq for r in ok(outcomes[0]).results] == [1]
    assert [r.seq for r in ok(outcomes[3]).results] == [2]  # gapless past the failed ones
    assert await engine.head("r") == 2
    assert await values(engine, "r") == {"a": {"x": 1, "z": 3}}
    # The failed pushes did not raise their clients' marks: the fixed retry applies.
    retry = await engine.push(batch(push("r", set_change(1, "b", y=2), client_id="c2")))
    assert [(r.seq, r.duplicate) for r in retry.results] == [(3, False)]


async def test_one_group_commits_many_rooms_each_with_its_own_seqs(store: Store) -> None:
    engine = Engine(store, HybridClock(60_000_000), Limits(max_record_bytes=64))
    await engine.push(batch(push("b", set_change(1, "x", v=0))))
    outcomes = await engine.push_group(
        [
            batch(push("a", set_change(1, "k", v=1))),
            batch(push("b", set_change(2, "k", v=2))),
            batch(push("c", set_change(1, "k", big="x" * 80))),  # too large: c stays empty
            batch(push("a", set_change(2, "k", w=3))),
        ]
    )
    assert [ok(outcomes[i]).results[0].seq for i in (0, 1, 3)] == [1, 2, 2]
    assert isinstance(outcomes[2], TooLarge)
    assert [await engine.head(r) for r in ("a", "b", "c")] == [2, 2, 0]
    assert await values(engine, "a") == {"k": {"v": 1, "w": 3}}
    assert await values(engine, "b") == {"k": {"v": 2}, "x": {"v": 0}}
    # Marks are per room: the same client's seq 1 in room c is still new.
    fixed = await engine.push(batch(push("c", set_change(1, "k", v=4))))
    assert [(r.seq, r.duplicate) for r in fixed.results] == [(1, False)]


async def test_a_retry_inside_the_group_is_a_duplicate_of_the_first(engine: Engine) -> None:
    request = push("r", set_change(1, "a", x=1), set_change(2, "a", y=2))
    first, again = (ok(o) for o in await engine.push_group([batch(request), batch(request)]))
    assert [(r.seq, r.duplicate) for r in first.results] == [(1, False), (2, False)]
    assert [(r.seq, r.duplicate) for r in again.results] == [(1, True), (2, True)]
    assert again.committed == ()
    assert await engine.head("r") == 2


async def test_one_client_pipelining_in_a_group_keeps_its_order(engine: Engine) -> None:
    outcomes = await engine.push_group(
        [batch(push("r", set_change(n, "k", n=n))) for n in range(1, 6)],
    )
    assert [ok(o).results[0].seq for o in outcomes] == [1, 2, 3, 4, 5]
    assert await values(engine, "r") == {"k": {"n": 5}}
    late = await engine.push(batch(push("r", set_change(4, "k", n=0))))
    assert [(r.seq, r.duplicate) for r in late.results] == [(4, True)]


async def test_concurrent_pushes_share_one_commit_and_one_published_batch(
    engine: Engine,
) -> None:
    bus = MemoryBus()
    published: list[pb.ChangeBatch] = []
    await bus.subscribe("r", published.append)
    committer = Committer(engine, bus)
    outcomes = await asyncio.gather(
        *(
            committer.push(batch(push("r", set_change(1, f"k{n}", n=n), client_id=f"c{n}")))
            for n in range(20)
        )
    )
    assert sorted(o.results[0].seq for o in outcomes) == list(range(1, 21))
    # The first push's worker starts after the other 19 have queued: one group.
    assert len(published) == 1
    assert [c.seq for c in published[0].changes] == list(range(1, 21))
    assert await engine.head("r") == 20


async def test_committer_groups_span_rooms_and_are_capped_by_changes(engine: Engine) -> None:
    bus = MemoryBus()
    published: list[pb.ChangeBatch] = []
    for room in ("r", "q"):
        await bus.subscribe(room, published.append)
    committer = Committer(engine, bus, max_group_changes=4)
    pushes = [
        committer.push(
            batch(push(room, set_change(1, "k", a=1), set_change(2, "k", b=2), client_id=f"c{n}"))
        )
        for n in range(5)
        for room in ("r", "q")
    ]
    outcomes = await asyncio.gather(*pushes)
    assert {o.room for o in outcomes} == {"r", "q"}
    assert (await engine.head("r"), await engine.head("q")) == (10, 10)
    # Four changes per group at most: one push to each room, one batch per room each.
    assert [(b.room, len(b.changes)) for b in published] == [("r", 2), ("q", 2)] * 5
    for room in ("r", "q"):
        seqs = [c.seq for b in published if b.room == room for c in b.changes]
        assert seqs == list(range(1, 11))


async def test_a_push_whose_caller_gave_up_still_commits_and_publishes(engine: Engine) -> None:
    bus = MemoryBus()
    published: list[pb.ChangeBatch] = []
    await bus.subscribe("r", published.append)
    committer = Committer(engine, bus)
    abandoned = asyncio.ensure_future(committer.push(batch(push("r", set_change(1, "a", x=1)))))
    await asyncio.sleep(0)  # queued
    abandoned.cancel()
    kept = await committer.push(batch(push("r", set_change(1, "b", x=2), client_id="c2")))
    assert abandoned.cancelled()
    assert kept.results[0].seq == 2
    assert [c.key for b in published for c in b.changes] == ["a", "b"]


async def test_a_bad_push_through_the_committer_raises_only_for_its_caller(
    store: Store,
) -> None:
    engine = Engine(store, HybridClock(60_000_000), Limits(max_record_bytes=64))
    committer = Committer(engine, MemoryBus())
    good, bad = await asyncio.gather(
        committer.push(batch(push("r", set_change(1, "a", x=1)))),
        committer.push(batch(push("r", set_change(1, "b", big="x" * 80), client_id="c2"))),
        return_exceptions=True,
    )
    assert isinstance(good, PushOutcome) and good.results[0].seq == 1
    assert isinstance(bad, TooLarge)
    with pytest.raises(TooLarge):
        await committer.push(batch(push("r", set_change(1, "b", big="x" * 80), client_id="c2")))
    assert await engine.head("r") == 1


async def test_only_a_store_that_checks_heads_at_save_takes_rooms_from_memory(
    engine: Engine, sync_database_url: str
) -> None:
    skipped = metrics.READS_SKIPPED._value.get()
    for n in (1, 2, 3):
        outcome = await engine.push(batch(push("r", set_change(n, "a", x=n))))
        assert outcome.results[0].seq == n
    # PostgreSQL's optimistic save checks the heads: the 2nd and 3rd pushes skip the read.
    # SQLite reads under its lock anyway and keeps nothing.
    expected = 0 if sync_database_url.startswith("sqlite") else 2
    assert metrics.READS_SKIPPED._value.get() == skipped + expected
    assert await values(engine, "r") == {"a": {"x": 3}}


async def test_room_memory_can_be_turned_off(store: Store) -> None:
    engine = Engine(store, HybridClock(max_skew_us=60_000_000), Limits(), memory_bytes=0)
    skipped = metrics.READS_SKIPPED._value.get()
    for n in (1, 2, 3):
        assert (await engine.push(batch(push("r", set_change(n, "a", x=n))))).results[0].seq == n
    assert metrics.READS_SKIPPED._value.get() == skipped
    assert await values(engine, "r") == {"a": {"x": 3}}


async def test_the_committer_answers_a_group_before_it_compacts_the_room(store: Store) -> None:
    engine = Engine(store, HybridClock(60_000_000), LIMITS, Retention(log_changes=2))
    committer = Committer(engine, MemoryBus())
    for n in range(1, 4):
        await committer.push(batch(push("r", set_change(n, "a", n=n))))
    started, release = asyncio.Event(), asyncio.Event()
    compact = engine._compact

    async def slow_compact(tx: RoomTransaction, room: str, head: int) -> None:
        if head == 4:  # the compaction push 4 owes (push 3's may still be running)
            started.set()
            await release.wait()
        await compact(tx, room, head)

    engine._compact = slow_compact  # type: ignore[method-assign]
    answered = await asyncio.wait_for(committer.push(batch(push("r", set_change(4, "a")))), 5)
    assert answered.results[0].seq == 4
    # Answered, and the compaction it owes runs now.
    await asyncio.wait_for(started.wait(), 5)
    release.set()
    await asyncio.wait_for(committer.push(batch(push("r", set_change(5, "a", n=5)))), 5)
    # Push 5's compaction (floor 3) follows its answer too: the log keeps 4 and 5.
    for _ in range(250):
        logged = [c.seq for c in await engine.changes("r", 0, 5, 100)]
        if logged == [4, 5]:
            break
        await asyncio.sleep(0.02)
    assert logged == [4, 5]

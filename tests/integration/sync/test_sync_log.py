"""The log's tail, snapshots for what fell off it, streamed snapshots, and the conflict
record — one contract for every store (SQLite file, PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.sync import wire
from accord.sync.engine import Engine, PullHead
from accord.sync.errors import OutOfRange
from accord.sync.hlc import HybridClock
from accord.sync.model import Limits, LoggedChange, PushOutcome, Retention, SnapshotPage
from accord.sync.store import Store

from tests.integration.sync.sync_helpers import push, set_change

LIMITS = Limits()


def engine_with(store: Store, **retention: int) -> Engine:
    return Engine(store, HybridClock(60_000_000), LIMITS, Retention(**retention))


async def do_push(engine: Engine, request: pb.PushRequest) -> PushOutcome:
    return await engine.push(wire.push_batch(request, LIMITS))


async def collect(engine: Engine, room: str, since: int, **kw: int) -> list[object]:
    return [
        item.head if isinstance(item, PullHead) else item
        async for item in engine.pull(
            room, since, 0, kw.get("page_size", 0), bool(kw.get("changes_only"))
        )
    ]


def seqs(items: list[object]) -> list[int]:
    return [
        c.seq
        for page in items
        if isinstance(page, list)
        for c in page
        if isinstance(c, LoggedChange)
    ]


async def test_the_log_keeps_a_bounded_tail_and_older_since_gets_a_snapshot(store: Store) -> None:
    engine = engine_with(store, log_changes=4)
    for i in range(1, 13):
        await do_push(engine, push("r", set_change(i, f"k{i % 3}", n=i)))
    tail = await collect(engine, "r", since=8)
    assert tail[0] == 12 and seqs(tail) == [9, 10, 11, 12]
    old = await collect(engine, "r", since=2)
    assert old[0] == 12
    assert all(isinstance(p, SnapshotPage) and p.seq == 12 for p in old[1:])
    records = {r.key: json.loads(r.value_json) for p in old[1:] for r in p.records}  # type: ignore[attr-defined]
    assert records == {"k0": {"n": 12}, "k1": {"n": 10}, "k2": {"n": 11}}
    with pytest.raises(OutOfRange):
        await collect(engine, "r", since=2, changes_only=1)
    assert len(await engine.changes("r", 0, 12, 100)) <= 4 + 1


async def test_a_retry_of_a_compacted_change_is_still_a_duplicate(store: Store) -> None:
    engine = engine_with(store, log_changes=2)
    for i in range(1, 7):
        await do_push(engine, push("r", set_change(i, "a", n=i)))
    again = await do_push(engine, push("r", set_change(1, "a", n=99), set_change(6, "a", n=99)))
    assert [(r.seq, r.duplicate) for r in again.results] == [(0, True), (6, True)]
    assert again.head == 6


async def test_a_snapshot_streams_in_pages_and_ignores_later_pushes(store: Store) -> None:
    engine = engine_with(store)
    await do_push(engine, push("r", *(set_change(i, f"k{i:02}", n=i) for i in range(1, 8))))
    pull = engine.pull("r", 0, 0, 2, False)
    assert await anext(pull) == PullHead(7, (await store.room_heads(["r"]))["r"].epoch.current)
    first = await anext(pull)
    assert isinstance(first, SnapshotPage) and [r.key for r in first.records] == ["k01", "k02"]
    # Pushed mid-stream: not in this snapshot, which is exactly the state at seq 7.
    await do_push(engine, push("r", set_change(8, "k03", n=0), set_change(9, "k99", n=0)))
    rest = [page async for page in pull]
    assert all(isinstance(p, SnapshotPage) and p.seq == 7 for p in rest)
    assert [p.last for p in rest] == [False, False, True]  # type: ignore[attr-defined]
    values = {r.key: json.loads(r.value_json)["n"] for p in rest for r in p.records}  # type: ignore[attr-defined]
    assert values == {"k03": 3, "k04": 4, "k05": 5, "k06": 6, "k07": 7}


async def test_conflicts_are_recorded_listed_newest_first_and_pruned(store: Store) -> None:
    engine = engine_with(store, log_changes=1, conflicts=2)
    await do_push(engine, push("r", set_change(1, "a", ts=100, title="new", done=True)))
    for i in range(1, 4):
        await do_push(
            engine, push("r", set_change(i, "a", ts=10 + i, title=f"old{i}"), client_id="c2")
        )
    listed = await engine.conflicts("r", 0, 10)
    assert [(c.seq, c.field, c.client_id, c.client_seq) for c in listed] == [
        (4, "title", "c2", 3),
        (3, "title", "c2", 2),
    ]
    assert listed[0].winner == (100, "c1", "u1", 1)
    assert listed[0].ts == 13 and (listed[0].collection, listed[0].key) == ("todos", "a")
    assert [c.seq for c in await engine.conflicts("r", 4, 10)] == [3]
    assert await engine.conflicts("other", 0, 10) == []

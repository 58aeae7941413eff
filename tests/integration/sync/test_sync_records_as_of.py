"""Records read page by page as of one seq while writes go on — one contract for every store."""

from __future__ import annotations

import json
import random
import sqlite3

import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.sync import wire
from accord.sync.engine import Engine, PullHead, SnapshotPage
from accord.sync.errors import OutOfRange
from accord.sync.hlc import HybridClock
from accord.sync.merge import RecordState, dump_state
from accord.sync.model import Limits, Retention
from accord.sync.records import rebuild
from accord.sync.schema import MIGRATIONS, statements
from accord.sync.store import Store

from tests.integration.sync.sync_helpers import (
    OpenStore,
    add_change,
    delete_change,
    incr_change,
    insert_change,
    op_change,
    push,
    set_change,
)

LIMITS = Limits()
KEYS = [f"k{i}" for i in range(12)]


def random_change(rng: random.Random, client_seq: int) -> pb.Change:
    key = rng.choice(KEYS)
    kind = rng.randrange(6)
    if kind == 0:
        return set_change(client_seq, key, title=rng.choice("abc"), n=rng.randrange(3))
    if kind == 1:
        return delete_change(client_seq, key)
    if kind == 2:
        return incr_change(client_seq, key, "votes", rng.randrange(-3, 4))
    if kind == 3:
        return add_change(client_seq, key, "tags", rng.choice("xyz"))
    if kind == 4:
        values = json.dumps([rng.choice("xyz")])
        return op_change(
            client_seq, key, pb.Op(remove=pb.RemoveOp(field="tags", values_json=values))
        )
    return insert_change(client_seq, key, "items", "", rng.randrange(100))


async def write(engine: Engine, rng: random.Random, room: str, start: int, count: int) -> int:
    """Push ``count`` random changes from two clients; returns the next client_seq."""
    for client_seq in range(start, start + count):
        client = rng.choice(["c1", "c2"])
        request = push(room, random_change(rng, client_seq), client_id=client)
        await engine.push(wire.push_batch(request, LIMITS))
    return start + count


async def snapshot(engine: Engine, room: str) -> tuple[int, list[tuple[str, str, str]]]:
    head = 0
    records: list[tuple[str, str, str]] = []
    async for item in engine.pull(room, 0, 0, 0, False):
        if isinstance(item, PullHead):
            head = item.head
        elif isinstance(item, SnapshotPage):
            records.extend((r.collection, r.key, r.value_json) for r in item.records)
    return head, records


async def read_all(
    engine: Engine, room: str, as_of: int, limit: int, between: object = None
) -> tuple[int, list[tuple[str, str, str]]]:
    records: list[tuple[str, str, str]] = []
    after = None
    seq = as_of
    while True:
        page = await engine.records_page(room, seq, None, after, limit)
        seq = page.seq
        records.extend((r.collection, r.key, r.value_json) for r in page.records)
        if callable(between):
            await between()
        if not page.more:
            return seq, records
        after = (page.records[-1].collection, page.records[-1].key)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("retention", "before", "between", "limits"),
    [
        # The whole log kept: every record changed meanwhile is rebuilt from its history.
        (0, 60, 7, [1, 2, 5]),
        # The log keeps 60 changes (compaction every 6): the listing starts with the floor
        # near 90 and ends with it still below the listing's seq, so every record changed
        # meanwhile is rebuilt from its base at the floor (captured by a push or folded by
        # a compaction).
        (60, 150, 3, [1, 2]),
    ],
    ids=["whole-log", "compacted"],
)
async def test_pages_read_while_writes_go_on_equal_the_snapshot_at_their_seq(
    store: Store, seed: int, retention: int, before: int, between: int, limits: list[int]
) -> None:
    engine = Engine(store, HybridClock(60_000_000), LIMITS, Retention(log_changes=retention))
    # Seeds 100-103 in the compacted case: each listing there meets a folded base.
    rng = random.Random(seed + (100 if retention else 0))
    room = f"r-{retention}-{seed}"
    next_seq = await write(engine, rng, room, 1, before)
    head, expected = await snapshot(engine, room)

    async def more_writes() -> None:
        nonlocal next_seq
        next_seq = await write(engine, rng, room, next_seq, between)

    seq, paged = await read_all(engine, room, 0, rng.choice(limits), more_writes)
    assert seq == head
    assert paged == expected
    # The state now, rebuilt from the log (and bases), is what the records table holds.
    now_head, now = await snapshot(engine, room)
    assert now_head > head
    if retention:
        assert now_head - retention > 90  # compacted on the way
    assert (await read_all(engine, room, now_head, 1000))[1] == now


async def test_rebuilt_history_equals_the_stored_record(store: Store) -> None:
    engine = Engine(store, HybridClock(60_000_000), LIMITS, Retention(log_changes=0))
    rng = random.Random(99)
    await write(engine, rng, "r", 1, 120)
    head, records = await snapshot(engine, "r")
    changes = await engine.changes("r", 0, head, 10_000)
    for collection, key, value in records:
        mine = [c for c in changes if (c.collection, c.key) == (collection, key)]
        assert rebuild(mine) == value


async def test_a_record_created_after_the_seq_is_left_out_and_a_deleted_one_kept(
    store: Store,
) -> None:
    engine = Engine(store, HybridClock(60_000_000), LIMITS)
    for request in [
        push("r", set_change(1, "a", title="a"), set_change(2, "b", title="b")),
        push("r", delete_change(3, "a"), set_change(4, "c", title="c")),
    ]:
        await engine.push(wire.push_batch(request, LIMITS))
    page = await engine.records_page("r", 2, None, None, 10)
    assert [(r.key, json.loads(r.value_json)) for r in page.records] == [
        ("a", {"title": "a"}),
        ("b", {"title": "b"}),
    ]
    assert not page.more
    only = await engine.records_page("r", 0, "todos", ("todos", "a"), 1)
    assert (only.seq, [r.key for r in only.records], only.more) == (4, ["b"], True)


async def test_a_record_untouched_since_before_the_floor_reads_as_of_a_listing(
    store: Store,
) -> None:
    engine = Engine(store, HybridClock(60_000_000), LIMITS, Retention(log_changes=10))
    await engine.push(wire.push_batch(push("r", set_change(1, "z-old", n=0)), LIMITS))
    for client_seq in range(2, 40):
        request = push("r", set_change(client_seq, "a-hot", n=client_seq))
        await engine.push(wire.push_batch(request, LIMITS))
    first = await engine.records_page("r", 0, None, None, 1)
    assert (first.seq, [r.key for r in first.records], first.more) == (39, ["a-hot"], True)
    # The old record changes (its state at the floor is kept as it goes), then the
    # compactions pass over those changes too.
    await engine.push(wire.push_batch(push("r", set_change(40, "z-old", n=40)), LIMITS))
    await engine.push(wire.push_batch(push("r", incr_change(41, "z-old", "votes", 2)), LIMITS))
    for client_seq in range(42, 46):
        request = push("r", set_change(client_seq, "a-hot", n=client_seq))
        await engine.push(wire.push_batch(request, LIMITS))
    rest = await engine.records_page("r", 39, None, ("todos", "a-hot"), 10)
    assert [(r.key, json.loads(r.value_json)) for r in rest.records] == [("z-old", {"n": 0})]
    again = await engine.records_page("r", 39, None, None, 10)
    assert [(r.key, json.loads(r.value_json)) for r in again.records] == [
        ("a-hot", {"n": 39}),
        ("z-old", {"n": 0}),
    ]
    now = await engine.records_page("r", 0, None, None, 10)
    assert [(r.key, json.loads(r.value_json)) for r in now.records] == [
        ("a-hot", {"n": 45}),
        ("z-old", {"n": 40, "votes": 2}),
    ]


async def test_a_listing_overtaken_by_compaction_restarts(store: Store) -> None:
    engine = Engine(store, HybridClock(60_000_000), LIMITS, Retention(log_changes=2))
    for client_seq in range(1, 5):
        request = push("r", set_change(client_seq, "a", n=client_seq))
        await engine.push(wire.push_batch(request, LIMITS))
    first = await engine.records_page("r", 0, None, None, 10)
    assert first.seq == 4
    for client_seq in range(5, 30):
        request = push("r", set_change(client_seq, "a", n=client_seq))
        await engine.push(wire.push_batch(request, LIMITS))
    with pytest.raises(OutOfRange, match="restart paging"):
        await engine.records_page("r", 4, None, None, 10)
    with pytest.raises(OutOfRange):
        await engine.records_page("r", 10_000, None, None, 10)


async def test_one_record_with_its_seq(store: Store) -> None:
    engine = Engine(store, HybridClock(60_000_000), LIMITS)
    await engine.push(wire.push_batch(push("r", set_change(1, "a", n=1)), LIMITS))
    await engine.push(wire.push_batch(push("r", delete_change(2, "a")), LIMITS))
    await engine.push(wire.push_batch(push("r", set_change(3, "b", n=2)), LIMITS))
    deleted, found, missing = (
        await engine.record("r", "todos", "a"),
        await engine.record("r", "todos", "b"),
        await engine.record("r", "todos", "zz"),
    )
    assert deleted is not None and deleted.value_json is None and deleted.seq == 2
    assert found is not None and json.loads(found.value_json or "") == {"n": 2}
    assert found.seq == 3
    assert missing is None


async def _schema_before_bases(url: str) -> None:
    """A database at schema version 5 (before record bases) with a room compacted then
    ("old", floor 40) and one never compacted ("young")."""
    rows = [
        "INSERT INTO rooms (room, head, floor, epoch) VALUES ('old', 50, 40, 'e1'), "
        "('young', 5, 0, 'e2')",
        "INSERT INTO records (room, collection, key, state, value, seq) VALUES "
        f"('old', 'todos', 'a', '{dump_state(RecordState())}', '{{\"n\":1}}', 45)",
    ]
    earlier = [(version, sql) for version, sql in MIGRATIONS if version <= 5]
    if url.startswith("sqlite"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        for _, sql in earlier:
            for statement in statements(sql):
                db.execute(statement)
        for statement in rows:
            db.execute(statement)
        db.execute("PRAGMA user_version = 5")
        db.commit()
        db.close()
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for version, sql in earlier:
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
        for statement in rows:
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_a_room_compacted_before_bases_were_kept_still_refuses_a_rebuild(
    sync_database_url: str, reopen: OpenStore
) -> None:
    await _schema_before_bases(sync_database_url)
    async with reopen() as store:
        engine = Engine(store, HybridClock(60_000_000), LIMITS, Retention(log_changes=10))
        with pytest.raises(OutOfRange, match="restart paging"):
            await engine.records_page("old", 44, None, None, 10)
        page = await engine.records_page("old", 0, None, None, 10)
        assert (page.seq, [json.loads(r.value_json) for r in page.records]) == (50, [{"n": 1}])
        # The room never compacted keeps bases from the start: its listings rebuild.
        for client_seq in range(1, 30):
            request = push("young", set_change(client_seq, "a", n=client_seq))
            await engine.push(wire.push_batch(request, LIMITS))
        first = await engine.records_page("young", 0, None, None, 10)
        await engine.push(wire.push_batch(push("young", set_change(30, "a", n=30)), LIMITS))
        again = await engine.records_page("young", first.seq, None, None, 10)
        assert [json.loads(r.value_json) for r in again.records] == [{"n": 29}]


async def test_a_replica_that_did_not_see_the_compaction_keeps_the_base_too(
    reopen: OpenStore,
) -> None:
    """The first replica compacts; later ones, started afresh, know nothing of it when they
    change a record untouched since before the floor (PostgreSQL: an optimistic save finds
    the floor and is saved again keeping the base; a locked one reads it with its lock)."""
    async with reopen() as first:
        engine = Engine(first, HybridClock(60_000_000), LIMITS, Retention(log_changes=10))
        request = push("r", set_change(1, "y-old", n=0), set_change(2, "z-old", n=0))
        await engine.push(wire.push_batch(request, LIMITS))
        for client_seq in range(3, 40):
            request = push("r", set_change(client_seq, "a-hot", n=client_seq))
            await engine.push(wire.push_batch(request, LIMITS))
        listing = await engine.records_page("r", 0, None, None, 1)
    for client_seq, key, optimistic in [(40, "y-old", True), (41, "z-old", False)]:
        async with reopen() as later:
            other = Engine(later, HybridClock(60_000_000), LIMITS, Retention(log_changes=10))
            other._locked_until = 0.0 if optimistic else float("inf")
            request = push("r", set_change(client_seq, key, n=client_seq))
            await other.push(wire.push_batch(request, LIMITS))
            if optimistic:  # saved again at once, not counted as contended
                assert other._locked_until == 0.0
            rest = await other.records_page("r", listing.seq, None, ("todos", "a-hot"), 10)
            assert [(r.key, json.loads(r.value_json)) for r in rest.records] == [
                ("y-old", {"n": 0}),
                ("z-old", {"n": 0}),
            ]


async def _bases_of(url: str, room: str) -> list[str]:
    sql = "SELECT key FROM record_bases WHERE room = {} ORDER BY key"
    if url.startswith("sqlite"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return [str(r[0]) for r in db.execute(sql.format("?"), (room,))]
        finally:
            db.close()
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [str(r[0]) for r in await conn.fetch(sql.format("$1"), room)]
    finally:
        await conn.close()


async def test_a_base_is_dropped_once_the_floor_passes_its_record_s_last_change(
    sync_database_url: str, reopen: OpenStore
) -> None:
    async with reopen() as store:
        engine = Engine(store, HybridClock(60_000_000), LIMITS, Retention(log_changes=10))
        for client_seq in range(1, 25):  # "quiet" changes once more at 20, then stops
            key = "quiet" if client_seq in (1, 20) else "hot"
            request = push("r", set_change(client_seq, key, n=client_seq))
            await engine.push(wire.push_batch(request, LIMITS))
        # The floor is 14: both records changed after it, and existed at it.
        assert await _bases_of(sync_database_url, "r") == ["hot", "quiet"]
        for client_seq in range(25, 40):
            request = push("r", set_change(client_seq, "hot", n=client_seq))
            await engine.push(wire.push_batch(request, LIMITS))
        # The floor (29) passed "quiet"'s last change: its row is its state at the floor.
        assert await _bases_of(sync_database_url, "r") == ["hot"]

"""Optimistic commit on PostgreSQL: two statements per group, and a room written by
another replica in between is detected, leaves nothing behind and is run again locked; the
save statements' plans look rooms up by key."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from accord.sync import metrics, room_memory, wire
from accord.sync.app import open_store
from accord.sync.engine import Engine
from accord.sync.hlc import HybridClock
from accord.sync.model import (
    Limits,
    LoggedChange,
    PushBatch,
    PushOutcome,
    RecordRow,
    RoomWrite,
    SnapshotPage,
)
from accord.sync.settings import Settings, parse_database_url
from accord.sync.store import Contended, Store
from accord.sync.store_postgres_sql import _LOAD_WITH_HEADS, _SAVE

from tests.integration.sync.sync_helpers import incr_change, push, set_change

pytestmark = pytest.mark.integration

LIMITS = Limits()


@pytest.fixture
async def pg_store(database_url: str) -> AsyncIterator[Store]:
    async with open_store(Settings(database=parse_database_url(database_url))) as store:
        yield store


def engine_on(store: Store) -> Engine:
    return Engine(store, HybridClock(max_skew_us=60_000_000), LIMITS)


async def table_counts(database_url: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return (
            await conn.fetchval("SELECT count(*) FROM changes"),
            await conn.fetchval("SELECT count(*) FROM records"),
            await conn.fetchval("SELECT count(*) FROM clients"),
        )
    finally:
        await conn.close()


async def test_a_moved_room_is_contended_and_nothing_is_written(
    pg_store: Store, database_url: str
) -> None:
    engine = engine_on(pg_store)
    await engine.push(wire.push_batch(push("r", set_change(1, "a", x=1)), LIMITS))
    before = await table_counts(database_url)
    async with pg_store.transaction(["r", "new-room"], optimistic=True) as tx:
        await tx.load([("r", "u", "c9")], [("r", "todos", "a")])
        assert (tx.head("r"), tx.head("new-room")) == (1, 0)
        # Another replica commits to the room between this group's load and save.
        await engine.push(wire.push_batch(push("r", set_change(2, "a", x=2)), LIMITS))
        assert await pg_store.head("r") == 2
        with pytest.raises(Contended):
            await tx.save([_one_change_write("r", seq=2), _one_change_write("new-room", seq=1)])
    after = await table_counts(database_url)
    assert after[0] == before[0] + 1  # only the other replica's change
    assert await pg_store.head("r") == 2
    assert await pg_store.head("new-room") == 0


async def test_a_room_created_meanwhile_is_contended(pg_store: Store) -> None:
    engine = engine_on(pg_store)
    async with pg_store.transaction(["fresh"], optimistic=True) as tx:
        await tx.load([], [])
        await engine.push(wire.push_batch(push("fresh", set_change(1, "a", x=1)), LIMITS))
        with pytest.raises(Contended):
            await tx.save([_one_change_write("fresh", seq=1)])
    assert await pg_store.head("fresh") == 1


async def test_replicas_pushing_to_the_same_rooms_lose_and_repeat_nothing(
    pg_store: Store, database_url: str
) -> None:
    # Two engines on one database (two sync replicas), each pushing groups to the same
    # rooms at once: some optimistic groups are contended and rerun locked; every change
    # is logged exactly once, with gapless seqs per room.
    async with open_store(Settings(database=parse_database_url(database_url))) as other:
        engines = [engine_on(pg_store), engine_on(other)]
        contended = metrics.CONTENDED._value.get()

        async def replica(index: int) -> list[PushOutcome]:
            done: list[PushOutcome] = []
            for n in range(1, 41):
                group = [
                    wire.push_batch(
                        push(room, set_change(n, f"k{n % 3}", v=n), client_id=f"c{index}"),
                        LIMITS,
                    )
                    for room in ("hot", f"own-{index}", "warm")
                ]
                outcomes = await engines[index].push_group(group)
                done.extend(o for o in outcomes if isinstance(o, PushOutcome))
            return done

        results = await asyncio.gather(replica(0), replica(1))
    assert all(len(r) == 120 for r in results)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT room, seq, client_id, client_seq FROM changes")
        heads = dict(await conn.fetch("SELECT room, head FROM rooms"))
    finally:
        await conn.close()
    by_room: dict[str, list[int]] = {}
    for row in rows:
        by_room.setdefault(row["room"], []).append(row["seq"])
    assert {room: sorted(seqs) for room, seqs in by_room.items()} == {
        "hot": list(range(1, 81)),
        "warm": list(range(1, 81)),
        "own-0": list(range(1, 41)),
        "own-1": list(range(1, 41)),
    }
    assert heads == {"hot": 80, "warm": 80, "own-0": 40, "own-1": 40}
    assert len({(r["room"], r["client_id"], r["client_seq"]) for r in rows}) == len(rows)
    # Acks match the log: each acked seq is the one stored for that client_seq.
    stored = {(r["room"], r["client_id"], r["client_seq"]): r["seq"] for r in rows}
    for index, outcomes in enumerate(results):
        for outcome in outcomes:
            (result,) = outcome.results
            assert stored[(outcome.room, f"c{index}", result.client_seq)] == result.seq
    # Both replicas' first groups read the rooms before either saved: one was contended.
    assert metrics.CONTENDED._value.get() > contended


def _one_change_write(room: str, seq: int) -> RoomWrite:
    change = LoggedChange(
        seq=seq,
        user_id="u",
        client_id="c9",
        client_seq=seq,
        collection="todos",
        key="a",
        ts=1,
        op_json='{"set":{"x":9}}',
        patch_json='{"set":{"x":9}}',
    )
    return RoomWrite(
        room=room,
        changes=[change],
        records=[RecordRow("todos", "a", "{}", '{"x":9}', seq)],
        marks=[("u", "c9", seq)],
        conflicts=[],
    )


async def test_a_push_the_database_refuses_fails_alone_and_the_rest_of_its_group_commits(
    pg_store: Store, database_url: str
) -> None:
    engine = engine_on(pg_store)
    good = wire.push_batch(push("r", set_change(1, "a", x=1)), LIMITS)
    other = wire.push_batch(push("q", set_change(1, "a", x=2)), LIMITS)
    # What validation should have caught but did not: PostgreSQL refuses U+0000 in text.
    refused = wire.push_batch(push("p", set_change(1, "a", x=3)), LIMITS)
    refused = dataclasses.replace(
        refused, changes=(dataclasses.replace(refused.changes[0], collection="to\x00dos"),)
    )
    outcomes = await engine.push_group([good, refused, other])
    first, failed, last = outcomes
    assert isinstance(first, PushOutcome) and isinstance(last, PushOutcome)
    assert (first.results[0].seq, last.results[0].seq) == (1, 1)
    assert isinstance(failed, asyncpg.PostgresError)
    assert (await pg_store.head("r"), await pg_store.head("q"), await pg_store.head("p")) == (
        1,
        1,
        0,
    )
    assert await table_counts(database_url) == (2, 2, 2)


@pytest.mark.parametrize("optimistic", [True, False], ids=["optimistic", "locked"])
async def test_conflicts_are_recorded_by_both_save_statements(
    pg_store: Store, optimistic: bool
) -> None:
    engine = engine_on(pg_store)
    if not optimistic:
        engine._locked_until = float("inf")  # as after a contended group
    newer = int(time.time() * 1e6) + 10_000_000  # ahead, but within the allowed skew
    await engine.push(wire.push_batch(push("r", set_change(1, "k", ts=newer, x=1)), LIMITS))
    # An older write to the same field loses: stored, with its conflict noted.
    older = wire.push_batch(
        push("r", set_change(1, "k", ts=newer - 10, x=2), client_id="c2"), LIMITS
    )
    plain = wire.push_batch(push("q", set_change(1, "k", x=3)), LIMITS)  # no conflict
    lost, other = await engine.push_group([older, plain])
    assert isinstance(lost, PushOutcome) and isinstance(other, PushOutcome)
    assert [c.field for c in lost.results[0].conflicts] == ["x"]
    rows = await engine.conflicts("r", 0, 10)
    assert [(r.seq, r.field, r.client_id) for r in rows] == [(2, "x", "c2")]
    assert await engine.conflicts("q", 0, 10) == []


async def record(engine: Engine, room: str, key: str) -> object:
    items = [i async for i in engine.pull(room, 0, 0, 0, False)]
    pages = [i for i in items if isinstance(i, SnapshotPage)]
    values = {r.key: json.loads(r.value_json) for p in pages for r in p.records}
    return values.get(key)


def incr(room: str, client_seq: int, by: int, client_id: str) -> PushBatch:
    return wire.push_batch(
        push(room, incr_change(client_seq, "k", "n", by), client_id=client_id), LIMITS
    )


async def test_a_replica_skips_reading_what_it_wrote_last(pg_store: Store) -> None:
    engine = engine_on(pg_store)
    skipped = metrics.READS_SKIPPED._value.get()
    first = await engine.push(incr("r", 1, 1, "c1"))
    assert metrics.READS_SKIPPED._value.get() == skipped  # nothing known yet: read
    second = await engine.push(incr("r", 2, 2, "c1"))
    assert metrics.READS_SKIPPED._value.get() == skipped + 1
    assert (first.results[0].seq, second.results[0].seq) == (1, 2)
    # A retry is recognised from what is known too, with its original seq.
    again = await engine.push(incr("r", 2, 2, "c1"))
    assert (again.results[0].duplicate, again.results[0].seq) == (True, 2)
    assert await record(engine, "r", "k") == {"n": 3}


async def test_what_a_replica_remembers_never_hides_another_replicas_write(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = engine_on(pg_store), engine_on(pg_store)
    contended, stale = metrics.CONTENDED._value.get(), metrics.STALE._value.get()
    await a.push(incr("r", 1, 1, "ca"))
    await b.push(incr("r", 1, 10, "cb"))  # what A remembers of the room is now out of date
    third = await a.push(incr("r", 2, 100, "ca"))
    # A started from what it remembered, its save found the head moved and wrote
    # nothing, and the group ran again reading the room: nothing lost, doubled or skipped.
    assert metrics.STALE._value.get() == stale + 1
    assert metrics.CONTENDED._value.get() == contended  # no race: not run locked
    assert a._locked_until == 0.0
    assert third.results[0].seq == 3
    assert await record(a, "r", "k") == {"n": 111}
    # Another replica writes to the room: A reads it each time for a while.
    skipped = metrics.READS_SKIPPED._value.get()
    fourth = await a.push(incr("r", 3, 1000, "ca"))
    assert metrics.READS_SKIPPED._value.get() == skipped
    assert fourth.results[0].seq == 4
    # ... and once that while is over, remembers it again.
    monkeypatch.setattr(room_memory, "SHARED_SECONDS", 0.0)
    a._memory.forget(["r"], shared=True)
    await a.push(incr("r", 4, 10_000, "ca"))
    fifth = await a.push(incr("r", 5, 100_000, "ca"))
    assert metrics.READS_SKIPPED._value.get() == skipped + 1
    assert fifth.results[0].seq == 6
    # B remembers the room as of seq 2: stale too, and still exact.
    sixth = await b.push(incr("r", 2, 1_000_000, "cb"))
    assert sixth.results[0].seq == 7
    assert metrics.STALE._value.get() == stale + 2
    assert await record(b, "r", "k") == {"n": 1_111_111}


async def test_counters_written_through_three_replicas_at_once_lose_no_increment(
    pg_store: Store, database_url: str
) -> None:
    # Each replica remembers the room as it last wrote it, which the others keep
    # making stale: every increment must still count exactly once.
    async with (
        open_store(Settings(database=parse_database_url(database_url))) as second,
        open_store(Settings(database=parse_database_url(database_url))) as third,
    ):
        engines = [engine_on(pg_store), engine_on(second), engine_on(third)]

        async def replica(index: int) -> None:
            for n in range(1, 31):
                outcome = await engines[index].push(incr("hot", n, 1, f"c{index}"))
                assert not outcome.results[0].duplicate

        await asyncio.gather(*(replica(i) for i in range(3)))
        assert await record(engines[0], "hot", "k") == {"n": 90}
        assert await pg_store.head("hot") == 90


async def backend_of(store: Store, room: str) -> int:
    async with store.transaction([room], optimistic=True) as tx:
        return int(await tx._conn.fetchval("SELECT pg_backend_pid()"))  # type: ignore[attr-defined]


async def test_optimistic_groups_keep_one_connection_and_replace_it_once_lost(
    pg_store: Store, database_url: str
) -> None:
    # One connection from group to group (no pool acquire and release each time)...
    kept = {await backend_of(pg_store, f"k{i}") for i in range(3)}
    assert len(kept) == 1
    # ... a second group at the same time takes another from the pool ...
    async with pg_store.transaction(["k0"], optimistic=True):
        assert await backend_of(pg_store, "k1") not in kept
    # ... and once its server process is gone, the next group commits on a new one.
    admin = await asyncpg.connect(database_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", next(iter(kept)))
    finally:
        await admin.close()
    await asyncio.sleep(0.3)
    engine = engine_on(pg_store)
    outcome = await engine.push(wire.push_batch(push("k9", set_change(1, "a", x=1)), LIMITS))
    assert outcome.results[0].seq == 1
    assert await backend_of(pg_store, "k9") not in kept


async def test_a_group_that_fails_gives_its_connection_back(pg_store: Store) -> None:
    before = await backend_of(pg_store, "f")
    with pytest.raises(asyncpg.PostgresError):
        async with pg_store.transaction(["f"], optimistic=True) as tx:
            await tx._conn.execute("SELECT 1/0")  # type: ignore[attr-defined]
    # Whatever state it was left in, it went back to the pool (which resets or replaces
    # it) rather than on to the next group.
    assert pg_store._kept is None  # type: ignore[attr-defined]
    assert before > 0
    async with pg_store.transaction(["f"], optimistic=True) as tx:
        assert not tx._conn.is_in_transaction()  # type: ignore[attr-defined]


async def test_every_save_statement_reaches_the_rows_it_writes_by_their_index(
    pg_store: Store, database_url: str
) -> None:
    """The plan PostgreSQL keeps for a prepared save or load (the generic one, where an
    unnest is 10 rows to it) looks rows up by key: a hash join over every room cost each
    commit group O(rooms) (0.1 of the statement's 0.18 ms with 1,000 rooms)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO rooms (room, head, epoch) SELECT 'r' || n, 0, '' "
            "FROM generate_series(1, 2000) AS n;"
            "INSERT INTO clients (room, user_id, client_id, high_water) "
            "SELECT 'r' || n, 'u', 'c', 0 FROM generate_series(1, 2000) AS n;"
            "INSERT INTO records (room, collection, key, state, value, seq) "
            "SELECT 'r' || n, 'c', 'k', '{}', '{}', 1 FROM generate_series(1, 2000) AS n;"
            "ANALYZE rooms, clients, records"
        )
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        statements = {**_SAVE, "load": _LOAD_WITH_HEADS}
        for name, sql in statements.items():
            count = max(int(n) for n in re.findall(r"\$(\d+)", sql))
            await conn.execute(f"PREPARE save AS {sql}")
            nulls = ", ".join(["NULL"] * count)
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE save({nulls})"))
            await conn.execute("DEALLOCATE save")
            assert "Seq Scan" not in plan, (name, plan)
    finally:
        await conn.close()

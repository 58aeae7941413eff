"""The webhook outbox, one contract for every store (SQLite file, fresh PostgreSQL):
written in the commit's transaction, claimed per (endpoint, room) in seq order, one
lease at a time, batches frozen across retries, parked and resumed, and independent
of log compaction."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import asyncpg
from accord.sync import wire
from accord.sync.app import open_store
from accord.sync.engine import Engine
from accord.sync.hlc import HybridClock
from accord.sync.model import Limits, PushOutcome, Retention
from accord.sync.outbox import Outbox
from accord.sync.outbox_postgres import _HEADS
from accord.sync.outbox_sqlite import _HEADS as SQLITE_HEADS
from accord.sync.schema import MIGRATIONS, statements
from accord.sync.settings import Settings, parse_database_url
from accord.sync.store import Store

from tests.integration.sync.sync_helpers import OpenStore, delete_change, push, set_change

LIMITS = Limits()
LEASE = {"a": 10_000, "b": 10_000}


class Routes:
    """Endpoints by room (exact names), and how often a commit woke the deliverer."""

    def __init__(self, table: dict[str, tuple[str, ...]]) -> None:
        self.table = table
        self.woken = 0

    def endpoints(self, room: str) -> tuple[str, ...]:
        return self.table.get(room, ())

    def written(self) -> None:
        self.woken += 1


def hooked(store: Store, routes: Routes, retention: Retention | None = None) -> Engine:
    return Engine(store, HybridClock(60_000_000), LIMITS, retention, webhooks=routes)


async def send(engine: Engine, room: str, *seqs: int, client_id: str = "c1") -> PushOutcome:
    changes = [set_change(s, f"k{s}", n=s) for s in seqs]
    return await engine.push(wire.push_batch(push(room, *changes, client_id=client_id), LIMITS))


def now() -> int:
    return int(time.time() * 1000)


async def test_a_commit_owes_each_matching_endpoint_its_changes_as_delivered(store: Store) -> None:
    routes = Routes({"hooked": ("a", "b")})
    engine = hooked(store, routes)
    await send(engine, "hooked", 1, 2)
    await send(engine, "quiet", 1)
    await engine.push(wire.push_batch(push("hooked", delete_change(3, "k1")), LIMITS))
    assert routes.woken == 2  # the commit to "quiet" owed nobody anything
    outbox = Outbox(store.outbox())
    backlog = {b.endpoint: b for b in await outbox.backlog()}
    assert sorted(backlog) == ["a", "b"]
    assert (backlog["a"].rows, backlog["a"].changes, backlog["a"].rooms) == (2, 3, 1)
    (batch,) = await outbox.claim({"a": 10_000}, now(), 10)
    logged = await engine.changes("hooked", 0, 3, 10)
    assert json.loads(batch.body()) == {
        "type": "changes",
        "room": "hooked",
        "changes": [
            {
                "seq": c.seq,
                "collection": "todos",
                "key": c.key,
                "client_id": "c1",
                "client_seq": c.client_seq,
                "ts": c.ts,
                "patch": json.loads(c.patch_json),
            }
            for c in logged
        ],
    }
    assert (batch.first_seq, batch.last_seq, batch.attempts) == (1, 3, 1)
    assert batch.message_id.startswith("msg_")


async def test_a_group_of_pushes_owes_one_row_per_room_and_endpoint(store: Store) -> None:
    engine = hooked(store, Routes({"x": ("a",), "y": ("a",)}))
    batches = [
        wire.push_batch(push(room, set_change(seq, "k", n=seq), client_id=f"c{seq}"), LIMITS)
        for room, seq in (("x", 1), ("y", 2), ("x", 3))
    ]
    await engine.push_group(batches)
    backlog = (await Outbox(store.outbox()).backlog())[0]
    assert (backlog.rows, backlog.changes, backlog.rooms) == (2, 3, 2)


async def test_a_locked_commit_writes_its_outbox_rows_too(store: Store) -> None:
    engine = hooked(store, Routes({"r": ("a",)}))
    engine._locked_until = float("inf")  # every group runs locked (as after contention)
    await send(engine, "r", 1)
    await send(engine, "r", 2)
    (backlog,) = await Outbox(store.outbox()).backlog()
    assert (backlog.rows, backlog.changes) == (2, 2)


async def test_one_batch_at_a_time_per_room_frozen_across_retries(store: Store) -> None:
    engine = hooked(store, Routes({"r": ("a",)}))
    outbox = Outbox(store.outbox())
    for seq in (1, 2, 3):
        await send(engine, "r", seq)
    (first,) = await outbox.claim(LEASE, now(), 10)
    assert (first.first_seq, first.last_seq, first.count) == (1, 3, 3)
    await send(engine, "r", 4)
    assert await outbox.claim(LEASE, now(), 10) == []  # the room's head is leased
    due = now() + 60_000
    await outbox.failed(first, due, "HTTP 500")
    assert await outbox.claim(LEASE, now(), 10) == []  # not due yet
    (again,) = await outbox.claim(LEASE, due, 10)
    assert (again.message_id, again.first_seq, again.last_seq) == (first.message_id, 1, 3)
    assert (again.attempts, again.body()) == (2, first.body())
    assert (await outbox.backlog())[0].last_error == "HTTP 500"
    await outbox.delivered(again)
    (fourth,) = await outbox.claim(LEASE, due, 10)
    assert (fourth.first_seq, fourth.last_seq, fourth.attempts) == (4, 4, 1)
    assert fourth.message_id != first.message_id
    await outbox.delivered(fourth)
    assert await outbox.backlog() == []


async def test_an_expired_lease_is_taken_over_with_the_same_webhook_id(store: Store) -> None:
    engine = hooked(store, Routes({"r": ("a",)}))
    outbox = Outbox(store.outbox())
    await send(engine, "r", 1)
    (leased,) = await outbox.claim({"a": 1000}, now(), 10)
    (taken,) = await outbox.claim({"a": 1000}, now() + 1001, 10)
    assert (taken.message_id, taken.attempts) == (leased.message_id, 2)
    await outbox.failed(leased, now() + 60_000, "late")  # the first holder's lease is gone
    assert await outbox.claim({"a": 1000}, now() + 1500, 10) == []


async def test_replicas_claiming_together_never_take_the_same_head(
    store: Store, reopen: OpenStore
) -> None:
    engine = hooked(store, Routes({f"r{i}": ("a", "b") for i in range(12)}))
    for i in range(12):
        await send(engine, f"r{i}", 1)
        await send(engine, f"r{i}", 2)
    async with reopen() as other:
        mine, theirs = Outbox(store.outbox()), Outbox(other.outbox())
        claimed = await asyncio.gather(
            *(o.claim(LEASE, now(), 5) for o in (mine, theirs, mine, theirs, mine, theirs))
        )
    heads = [(b.endpoint, b.room) for batches in claimed for b in batches]
    assert len(heads) == len(set(heads)) == 24


async def test_a_parked_endpoint_keeps_its_backlog_until_resumed(store: Store) -> None:
    engine = hooked(store, Routes({"r": ("a", "b")}))
    outbox = Outbox(store.outbox())
    await send(engine, "r", 1)
    batches = {b.endpoint: b for b in await outbox.claim(LEASE, now(), 10)}
    await outbox.park(batches["a"], now(), "HTTP 410")
    await outbox.delivered(batches["b"])
    await send(engine, "r", 2)
    assert [b.endpoint for b in await outbox.claim(LEASE, now(), 10)] == ["b"]
    (parked,) = [b for b in await outbox.backlog() if b.endpoint == "a"]
    assert (parked.parked_at > 0, parked.reason, parked.changes) == (True, "HTTP 410", 2)
    assert await outbox.resume("a") is True
    assert await outbox.resume("a") is False
    (resumed,) = await outbox.claim(LEASE, now(), 10)
    assert (resumed.endpoint, resumed.message_id) == ("a", batches["a"].message_id)
    assert (resumed.attempts, resumed.last_seq) == (1, 1)


async def test_compaction_never_takes_changes_an_endpoint_is_owed(store: Store) -> None:
    engine = hooked(store, Routes({"r": ("a",)}), Retention(log_changes=5))
    for seq in range(1, 41):
        await send(engine, "r", seq)
    assert len(await engine.changes("r", 0, 40, 100)) < 40  # the log was compacted
    (batch,) = await Outbox(store.outbox()).claim(LEASE, now(), 10)
    assert [c["seq"] for c in json.loads(batch.body())["changes"]] == list(range(1, 41))


async def test_a_large_backlog_is_leased_head_by_head_without_reading_every_row(
    database_url: str,
) -> None:
    """PostgreSQL: the heads are found one index probe per room. Testing every queued row
    against its room's minimum took 2.4 s per poll with 200,000 rows (a receiver down)."""
    async with open_store(Settings(database=parse_database_url(database_url))) as store:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "INSERT INTO webhook_outbox (endpoint, room, first_seq, last_seq, changes, "
                "created) SELECT 'a', 'r' || (n % 50), n, n, '[]', 0 "
                "FROM generate_series(1, 20000) AS n; ANALYZE webhook_outbox"
            )
            args = (["a"], [10_000], now(), 100, "lease-1")
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {_HEADS}", *args))
        finally:
            await conn.close()
        assert "Seq Scan on webhook_outbox" not in plan, plan
        heads = await store.outbox().lease({"a": 10_000}, now(), 100, "lease-1")
        assert sorted((h.room, h.first_seq) for h in heads) == sorted(
            (f"r{n % 50}", n) for n in range(1, 51)
        )


def test_sqlite_leases_a_large_backlog_without_reading_every_row() -> None:
    """SQLite: the same walk from room to room, counted in the engine's own instructions (the
    lease holds the store's one writer while it runs; testing every row took 300 ms per poll
    with 200,000 rows, and 541,000 instructions for the 20,000 rows here)."""
    db = sqlite3.connect(":memory:")
    for _, sql in MIGRATIONS:
        for statement in statements(sql):
            db.execute(statement)
    db.executemany(
        "INSERT INTO webhook_outbox (endpoint, room, first_seq, last_seq, changes, created) "
        "VALUES ('a', ?, ?, ?, '[]', 0)",
        [(f"r{n % 50}", n, n) for n in range(1, 20_001)],
    )
    ticks = 0

    def tick() -> int:
        nonlocal ticks
        ticks += 1
        return 0

    db.set_progress_handler(tick, 1000)
    rows = db.execute(SQLITE_HEADS.format(wanted="(?)"), ("a", now(), now(), 100)).fetchall()
    db.set_progress_handler(None, 0)
    assert sorted((r[1], r[2]) for r in rows) == sorted((f"r{n % 50}", n) for n in range(1, 51))
    assert ticks * 1000 < 50_000


async def test_sqlite_counts_the_backlog_without_the_writer(tmp_path: object) -> None:
    """The backlog (every 10 s for the gauges, and `accord webhooks list`) reads on the SQLite
    store's reader connection: it answers while a commit holds the one writer, and so never
    makes pushes wait behind a count of a large backlog."""
    settings = Settings(database=parse_database_url(f"sqlite:///{tmp_path}/sync.db"))
    async with open_store(settings) as store:
        routes = Routes({"hooked": ("a",)})
        engine = hooked(store, routes)
        await send(engine, "hooked", 1, 2)
        outbox = Outbox(store.outbox())
        async with store._write_lock:  # type: ignore[attr-defined]  # a commit under way
            (backlog,) = await asyncio.wait_for(outbox.backlog(), 5)
        assert (backlog.endpoint, backlog.rows, backlog.changes) == ("a", 1, 2)

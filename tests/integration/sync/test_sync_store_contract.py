"""One contract, every store: SQLite (a file) and PostgreSQL (a fresh database)."""

from __future__ import annotations

import asyncio
import json

import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.sync import wire
from accord.sync.engine import Engine, PullHead, SnapshotPage
from accord.sync.errors import OutOfRange, TooLarge
from accord.sync.hlc import HybridClock
from accord.sync.lattice import Json
from accord.sync.migrations import migrate
from accord.sync.model import Limits, LoggedChange, PushOutcome
from accord.sync.patch import apply_patch
from accord.sync.schema import MIGRATIONS
from accord.sync.store import Store

from tests.integration.sync.sync_helpers import (
    OpenStore,
    delete_change,
    incr_change,
    push,
    set_change,
)

LIMITS = Limits()


def engine_with(store: Store) -> Engine:
    return Engine(store, HybridClock(60_000_000), LIMITS)


async def do_push(engine: Engine, request: pb.PushRequest) -> PushOutcome:
    return await engine.push(wire.push_batch(request, LIMITS))


async def collect(engine: Engine, room: str, since: int = 0, **kw: int) -> list[object]:
    return [
        item.head if isinstance(item, PullHead) else item
        async for item in engine.pull(
            room, since, kw.get("until", 0), kw.get("page_size", 0), bool(kw.get("changes_only"))
        )
    ]


async def test_push_assigns_gapless_seqs_and_acks_each_change(engine: Engine) -> None:
    first = await do_push(engine, push("r", set_change(1, "a", x=1), set_change(2, "b", x=2)))
    second = await do_push(engine, push("r", delete_change(3, "a")))
    assert [r.seq for r in first.results + second.results] == [1, 2, 3]
    assert [r.duplicate for r in first.results + second.results] == [False] * 3
    assert (first.head, second.head) == (2, 3)
    assert [c.seq for c in first.committed] == [1, 2]
    assert json.loads(first.committed[0].patch_json) == {"set": {"x": 1}}
    assert json.loads(second.committed[0].patch_json) == {"deleted": True}
    assert await engine.head("r") == 3


async def test_a_retried_push_is_acked_as_duplicate_with_the_original_seqs(engine: Engine) -> None:
    request = push("r", set_change(1, "a", x=1), set_change(2, "a", y=2))
    await do_push(engine, push("r", set_change(1, "other", z=0), client_id="c2"))
    first = await do_push(engine, request)
    again = await do_push(engine, request)
    assert [(r.seq, r.duplicate) for r in again.results] == [(2, True), (3, True)]
    assert again.committed == ()
    assert again.head == first.head == 3
    overlap = await do_push(engine, push("r", set_change(2, "a", y=9), set_change(3, "a", y=3)))
    assert [(r.seq, r.duplicate) for r in overlap.results] == [(3, True), (4, False)]
    assert await engine.head("r") == 4


async def test_a_client_seq_below_the_high_water_mark_is_a_duplicate_without_seq(
    engine: Engine,
) -> None:
    await do_push(engine, push("r", set_change(5, "a", x=1)))
    late = await do_push(engine, push("r", set_change(3, "a", x=2)))
    assert [(r.seq, r.duplicate) for r in late.results] == [(0, True)]
    assert await engine.head("r") == 1


async def test_dedupe_is_scoped_by_user_client_and_room(engine: Engine) -> None:
    await do_push(engine, push("r", set_change(1, "a", x=1)))
    other_user = await do_push(engine, push("r", set_change(1, "a", x=2), user_id="u2"))
    other_client = await do_push(engine, push("r", set_change(1, "a", x=3), client_id="c2"))
    other_room = await do_push(engine, push("q", set_change(1, "a", x=4)))
    assert [o.results[0].duplicate for o in (other_user, other_client, other_room)] == [False] * 3
    assert (await engine.head("r"), await engine.head("q")) == (3, 1)


async def test_a_batch_that_fails_midway_stores_nothing(store: Store) -> None:
    engine = Engine(store, HybridClock(60_000_000), Limits(max_record_bytes=64))
    await do_push(engine, push("r", set_change(1, "a", x=1)))
    bad = push("r", set_change(2, "b", y=2), set_change(3, "a", big="x" * 60))
    with pytest.raises(TooLarge):
        await engine.push(wire.push_batch(bad, engine_limits(engine)))
    assert await engine.head("r") == 1
    retried = await do_push(engine, push("r", set_change(2, "b", y=2)))
    assert [(r.seq, r.duplicate) for r in retried.results] == [(2, False)]
    snapshot = await collect(engine, "r")
    assert [r.key for r in snapshot[1].records] == ["a", "b"]  # type: ignore[attr-defined]


def engine_limits(engine: Engine) -> Limits:
    return engine._limits


async def test_concurrent_pushes_to_one_room_get_gapless_unique_seqs(engine: Engine) -> None:
    requests = [
        push("r", set_change(1, f"k{i}", n=i), set_change(2, f"k{i}", m=i), client_id=f"c{i}")
        for i in range(20)
    ]
    outcomes = await asyncio.gather(*(do_push(engine, r) for r in requests))
    seqs = sorted(r.seq for o in outcomes for r in o.results)
    assert seqs == list(range(1, 41))
    for outcome in outcomes:
        assert outcome.results[1].seq > outcome.results[0].seq
    assert await engine.head("r") == 40


async def test_pull_pages_changes_since_a_seq(engine: Engine) -> None:
    for i in range(1, 6):
        await do_push(engine, push("r", incr_change(i, "votes", "n", i)))
    items = await collect(engine, "r", since=1, page_size=2)
    assert items[0] == 5
    pages = [[c.seq for c in page] for page in items[1:]]  # type: ignore[attr-defined]
    assert pages == [[2, 3], [4, 5]]
    patches = [json.loads(c.patch_json) for page in items[1:] for c in page]  # type: ignore[attr-defined]
    assert patches == [
        {"incr": {"n": 2}},
        {"incr": {"n": 3}},
        {"incr": {"n": 4}},
        {"incr": {"n": 5}},
    ]
    limited = await collect(engine, "r", since=1, until=3)
    assert limited[0] == 3
    assert [c.seq for page in limited[1:] for c in page] == [2, 3]  # type: ignore[attr-defined]
    assert await collect(engine, "r", since=5) == [5]


async def test_pull_changes_only_from_zero_and_beyond_head(engine: Engine) -> None:
    await do_push(engine, push("r", set_change(1, "a", x=1), set_change(2, "b", x=2)))
    items = await collect(engine, "r", since=0, changes_only=1)
    assert items[0] == 2
    assert [c.seq for c in items[1]] == [1, 2]  # type: ignore[attr-defined]
    with pytest.raises(OutOfRange):
        await collect(engine, "r", since=9, changes_only=1)


async def test_snapshot_holds_visible_records_in_chunks(engine: Engine) -> None:
    await do_push(
        engine,
        push(
            "r",
            set_change(1, "a", title="milk", done=False),
            set_change(2, "b", title="eggs"),
            set_change(3, "c", title="gone"),
            delete_change(4, "c"),
            incr_change(5, "d", "votes", 3),
        ),
    )
    items = await collect(engine, "r", since=0, page_size=2)
    assert items[0] == 5
    chunks = items[1:]
    assert all(isinstance(c, SnapshotPage) and c.seq == 5 for c in chunks)
    assert [c.last for c in chunks] == [False, True]  # type: ignore[attr-defined]
    records = {(r.collection, r.key): json.loads(r.value_json) for c in chunks for r in c.records}  # type: ignore[attr-defined]
    assert records == {
        ("todos", "a"): {"done": False, "title": "milk"},
        ("todos", "b"): {"title": "eggs"},
        ("todos", "d"): {"votes": 3},
    }
    ahead = await collect(engine, "r", since=99)
    assert ahead[0] == 5 and isinstance(ahead[1], SnapshotPage)


async def test_empty_room_pull_is_head_zero_and_nothing_else(engine: Engine) -> None:
    assert await collect(engine, "nobody-here") == [0]
    assert await engine.head("nobody-here") == 0
    ahead = await collect(engine, "nobody-here", since=4)
    assert ahead == [0, SnapshotPage(0, [], True)]


async def test_patches_from_the_log_rebuild_the_snapshot(engine: Engine) -> None:
    await do_push(engine, push("r", set_change(1, "a", x=1, y=1), incr_change(2, "a", "n", 2)))
    await do_push(engine, push("r", delete_change(1, "a", ts=1), client_id="c2"))
    await do_push(engine, push("r", set_change(3, "a", ts=2**60, y=5)))
    state: dict[str, dict[str, Json] | None] = {}
    items = await collect(engine, "r", since=0, changes_only=1)
    for page in items[1:]:
        for change in page:  # type: ignore[attr-defined]
            assert isinstance(change, LoggedChange)
            state[change.key] = apply_patch(state.get(change.key), json.loads(change.patch_json))
    snapshot = await collect(engine, "r")
    expected = {r.key: json.loads(r.value_json) for r in snapshot[1].records}  # type: ignore[attr-defined]
    assert {k: v for k, v in state.items() if v is not None} == expected


async def test_server_stamps_missing_ts_and_clamps_future_ts(engine: Engine) -> None:
    outcome = await do_push(
        engine, push("r", set_change(1, "a", x=1), set_change(2, "b", ts=2**62))
    )
    stamped, clamped = outcome.results
    assert stamped.ts_adjusted and stamped.ts > 0
    assert clamped.ts_adjusted and 0 < clamped.ts < 2**62
    assert [c.ts for c in outcome.committed] == [stamped.ts, clamped.ts]


async def test_conflicts_are_reported_and_the_change_still_gets_a_seq(engine: Engine) -> None:
    await do_push(engine, push("r", set_change(1, "a", ts=100, title="new")))
    late = await do_push(engine, push("r", set_change(1, "a", ts=50, title="old"), client_id="c2"))
    result = late.results[0]
    assert (result.seq, result.duplicate) == (2, False)
    assert [(c.field, c.winner[0], c.winner[1]) for c in result.conflicts] == [("title", 100, "c1")]
    assert json.loads(late.committed[0].patch_json) == {}


async def test_data_survives_reopening_the_store(reopen: OpenStore) -> None:
    async with reopen() as first:
        engine = Engine(first, HybridClock(60_000_000), LIMITS)
        await do_push(engine, push("r", set_change(1, "a", x=1), incr_change(2, "a", "n", 4)))
    async with reopen() as second:
        engine = Engine(second, HybridClock(60_000_000), LIMITS)
        assert await engine.head("r") == 2
        again = await do_push(
            engine, push("r", set_change(2, "a", x=2), incr_change(3, "a", "n", 1))
        )
        assert [(r.seq, r.duplicate) for r in again.results] == [(2, True), (3, False)]
        snapshot = await collect(engine, "r")
        assert json.loads(snapshot[1].records[0].value_json) == {"n": 5, "x": 1}  # type: ignore[attr-defined]


async def test_migrations_run_twice_and_concurrently(sync_database_url: str) -> None:
    first = await asyncio.gather(*(migrate(sync_database_url) for _ in range(3)))
    again = await migrate(sync_database_url)
    if sync_database_url.startswith("postgresql"):
        assert sorted(v for applied in first for v in applied) == [v for v, _ in MIGRATIONS]
    assert again == []


@pytest.mark.integration
async def test_postgres_pushes_to_other_rooms_do_not_wait_for_a_locked_room(
    database_url: str,
) -> None:
    from accord.sync.store_postgres import PostgresStore

    async with PostgresStore.open(database_url) as store:
        engine = Engine(store, HybridClock(60_000_000), LIMITS)
        async with store.transaction(["busy"]):
            other = await asyncio.wait_for(do_push(engine, push("free", set_change(1, "a"))), 10)
            blocked = asyncio.ensure_future(do_push(engine, push("busy", set_change(1, "a"))))
            await asyncio.sleep(0.2)
            assert not blocked.done()
        assert other.head == 1
        assert (await blocked).head == 1


async def test_a_room_has_an_epoch_before_its_first_change_and_keeps_it_after(
    store: Store,
) -> None:
    engine = engine_with(store)
    before = (await store.room_heads(["r"]))["r"]
    assert before.head == 0 and before.epoch.current == before.epoch.initial != ""
    async with store.snapshot("r") as snapshot:
        assert snapshot.epoch == before.epoch
    await do_push(engine, push("r", set_change(1, "a", x=1)))
    created = (await store.room_heads(["r"]))["r"].epoch
    # The row's random part names the room's history from now on; the epoch a client
    # saw while the room was empty is still accepted (it followed the first changes).
    assert created.current != before.epoch.current
    assert created.initial == before.epoch.initial
    assert created.accepts(before.epoch.current) and created.accepts("")
    for seq in range(2, 6):
        await do_push(engine, push("r", set_change(seq, "a", x=seq)))
    after = await store.room_heads(["r", "q"])
    assert after["r"].head == 5 and after["r"].epoch == created
    assert after["q"].epoch.current == before.epoch.initial  # empty rooms share the initial
    async with store.snapshot("r") as snapshot:
        assert (snapshot.head, snapshot.epoch) == (5, created)


async def test_rooms_of_one_database_have_their_own_epochs(store: Store) -> None:
    engine = engine_with(store)
    await do_push(engine, push("r", set_change(1, "a", x=1)))
    await do_push(engine, push("q", set_change(1, "a", x=1)))
    heads = await store.room_heads(["r", "q"])
    assert heads["r"].epoch.current != heads["q"].epoch.current
    assert not heads["r"].epoch.accepts(heads["q"].epoch.current)


async def test_renewing_the_incarnation_changes_every_epoch_and_survives_a_reopen(
    reopen: OpenStore,
) -> None:
    async with reopen() as store:
        engine = engine_with(store)
        await do_push(engine, push("r", set_change(1, "a", x=1)))
        old = await store.room_heads(["r", "empty"])
        basis = await store.basis()
        renewed = await store.renew()
        assert renewed.incarnation != basis.incarnation and renewed == await store.basis()
        new = await store.room_heads(["r", "empty"])
        for room in ("r", "empty"):
            assert new[room].head == old[room].head
            assert not new[room].epoch.accepts(old[room].epoch.current)
            assert not new[room].epoch.accepts(old[room].epoch.initial)
        # Commits go on under the new basis, and the room keeps its (new) epoch.
        await do_push(engine, push("r", set_change(2, "a", x=2)))
        assert (await store.room_heads(["r"]))["r"].epoch == new["r"].epoch
    async with reopen() as again:
        assert (await again.room_heads(["r"]))["r"].epoch == new["r"].epoch
        assert await again.basis() == renewed


async def test_pull_with_a_foreign_epoch_gets_a_snapshot(store: Store) -> None:
    engine = engine_with(store)
    for seq in range(1, 6):
        await do_push(engine, push("r", set_change(seq, f"k{seq}", n=seq)))
    current = (await store.room_heads(["r"]))["r"].epoch.current
    first = [i async for i in engine.pull("r", 3, 0, 0, False, current)]
    assert first[0] == PullHead(5, current)
    assert [c.seq for page in first[1:] for c in page] == [4, 5]  # type: ignore[attr-defined]
    unchecked = await collect(engine, "r", since=3)
    assert [c.seq for page in unchecked[1:] for c in page] == [4, 5]  # type: ignore[attr-defined]
    foreign = [i async for i in engine.pull("r", 3, 0, 0, False, "0123456789abcdef")]
    assert foreign[0] == PullHead(5, current)
    assert all(isinstance(p, SnapshotPage) and p.seq == 5 for p in foreign[1:])
    assert len([r for p in foreign[1:] for r in p.records]) == 5  # type: ignore[attr-defined]
    with pytest.raises(OutOfRange):
        _ = [i async for i in engine.pull("r", 3, 0, 0, True, "0123456789abcdef")]
    # An empty room and a foreign since: an empty snapshot (the client drops its records).
    empty = [i async for i in engine.pull("void", 7, 0, 0, False, "0123456789abcdef")]
    assert empty[1:] == [SnapshotPage(0, [], True)]


async def test_extension_cursors_advance_only_from_where_they_are(store: Store) -> None:
    engine = engine_with(store)
    for room in ("a", "b", "c"):
        await do_push(engine, push(room, set_change(1, "k"), set_change(2, "j")))
    assert await store.cursor("ext", "a") == 0
    assert await store.behind("ext", "", 10) == [("a", 0), ("b", 0), ("c", 0)]
    assert not await store.advance("ext", "a", 1, 2)  # it is at 0, not 1
    assert await store.advance("ext", "a", 0, 1)
    assert not await store.advance("ext", "a", 0, 2)  # another replica moved it first
    assert await store.advance("ext", "a", 1, 2)
    assert await store.advance("ext", "b", 0, 1)
    assert await store.cursor("ext", "a") == 2
    assert await store.cursor("other", "a") == 0
    assert await store.behind("ext", "", 10) == [("b", 1), ("c", 0)]
    assert await store.behind("ext", "b", 10) == [("c", 0)]
    assert await store.behind("ext", "", 1) == [("b", 1)]
    async with store.transaction(["a"]) as tx:
        assert await tx.cursor_floor("a", ["ext"]) == 2
        assert await tx.cursor_floor("a", ["ext", "other"]) == 0
        assert await tx.cursor_floor("b", ["ext"]) == 1

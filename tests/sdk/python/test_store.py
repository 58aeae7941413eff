"""The offline store: the queue, the client_seq counter and confirmed state survive a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest
from accord.client.replica import PendingChange
from accord.client.store import MemoryStore, OfflineStore, SqliteStore


@pytest.fixture(params=["sqlite", "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "nested" / "offline.db")
    memory = MemoryStore()
    return lambda: memory


async def reopen(make: object, store: OfflineStore) -> OfflineStore:
    await store.close()
    fresh: OfflineStore = make()  # type: ignore[operator]
    await fresh.open()
    return fresh


async def test_identity_is_kept_and_guarded(make_store: object) -> None:
    store: OfflineStore = make_store()  # type: ignore[operator]
    await store.open()
    client_id, first = await store.identity(None, "generated")
    assert client_id == "generated"
    assert first > 1_000_000_000_000_000, (
        "a new store starts client_seq at the time in microseconds"
    )
    await store.add_pending("room", PendingChange(first, "c", "k", {"kind": "delete"}, ts=5))
    store = await reopen(make_store, store)
    assert await store.identity(None, "other") == ("generated", first + 1)
    assert await store.identity("generated", "other") == ("generated", first + 1)
    with pytest.raises(ValueError, match="belongs to client_id"):
        await store.identity("someone-else", "other")
    await store.close()


async def test_pending_records_and_seq_survive(make_store: object) -> None:
    store: OfflineStore = make_store()  # type: ignore[operator]
    await store.open()
    _, first = await store.identity("me", "x")
    s7, s8, s9, s10 = (first + n for n in range(4))
    for n in (s7, s8, s9):
        await store.add_pending(
            "room", PendingChange(n, "todos", f"t{n}", {"kind": "set", "fields": {"n": n}}, ts=n)
        )
    await store.add_pending("other", PendingChange(s10, "todos", "t", {"kind": "delete"}, ts=10))
    await store.save("room", 4, {("todos", "a"): {"x": 1}, ("todos", "b"): {"y": 2}}, dropped=[s8])
    await store.save("room", 5, {("todos", "b"): None}, dropped=[])
    store = await reopen(make_store, store)
    state = await store.load_room("room")
    assert state.seq == 5
    assert state.records == {("todos", "a"): {"x": 1}}
    assert [(c.client_seq, c.key, c.op["fields"]) for c in state.pending] == [
        (s7, f"t{s7}", {"n": s7}),
        (s9, f"t{s9}", {"n": s9}),
    ]
    assert [c.client_seq for c in (await store.load_room("other")).pending] == [s10]
    assert await store.identity(None, "x") == ("me", s10 + 1)

    await store.save("room", 20, {("todos", "z"): {"z": 0}}, dropped=[s7, s9], replace=True)
    state = await store.load_room("room")
    assert (state.seq, state.records, state.pending) == (20, {("todos", "z"): {"z": 0}}, [])
    assert (await store.load_room("never")).seq == 0
    await store.close()

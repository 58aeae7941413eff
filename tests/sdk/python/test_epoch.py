"""The Python SDK and the room's epoch: stored with ``since`` in the offline store,
sent on resume, and a snapshot after a restore and ``accord epoch renew`` replaces
what the client held (a resume with the same ``since`` in another history)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from accord.client import Client, SqliteStore

from tests.sdk.python.conftest import FAST, room_view, within
from tests.support.epochs import EpochSuite
from tests.support.suite import Suite
from tests.support.wsclient import make_token

pytestmark = pytest.mark.e2e

ROOM = "epoch-sdk"


@pytest.fixture
async def epochs(tmp_path: Path) -> AsyncIterator[EpochSuite]:
    epochs = EpochSuite(f"sqlite:///{tmp_path}/accord.db")
    async with epochs:
        yield epochs


@contextlib.asynccontextmanager
async def started(suite: Suite, client_id: str, path: Path) -> AsyncIterator[Client]:
    client = Client(
        suite.ws_url,
        token=make_token(f"u-{client_id}"),
        client_id=client_id,
        offline_path=path,
        backoff=FAST,
    )
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def stored(path: Path) -> tuple[int, str, set[str]]:
    store = SqliteStore(path)
    await store.open()
    try:
        state = await store.load_room(ROOM)
    finally:
        await store.close()
    return state.seq, state.epoch, {key for _, key in state.records}


def copy_database(source: Path, target: Path) -> None:
    for suffix in ("-wal", "-shm"):  # the stopped store left none; never reuse them
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{target}{suffix}")
    shutil.copyfile(source, target)


async def test_a_resume_after_restore_and_renew_gets_the_new_history(
    epochs: EpochSuite, tmp_path: Path
) -> None:
    assert epochs.suite is not None
    suite, database = epochs.suite, Path(epochs.database_url.removeprefix("sqlite:///"))
    path = tmp_path / "alice.db"
    async with started(suite, "alice", path) as alice:
        room = await alice.join(ROOM)
        await room.set("todos", "a", n=1)
        await room.set("todos", "b", n=2)
        await within(room.wait_until(lambda: room.seq == 2 and room.pending == 0))
        async with epochs.stopped():
            copy_database(database, tmp_path / "backup.db")
        await room.set("todos", "lost", n=3)  # after the backup: gone with the restore
        await within(room.wait_until(lambda: room.seq == 3 and room.pending == 0))
    seq, old, keys = await stored(path)
    assert (seq, keys) == (3, {"a", "b", "lost"}) and old

    async with epochs.stopped():
        copy_database(tmp_path / "backup.db", database)
        await epochs.run_renew()
    async with started(suite, "bob", tmp_path / "bob.db") as bob:
        other = await bob.join(ROOM)
        await other.set("todos", "new", n=4)  # seq 3 again, another change
        await within(other.wait_until(lambda: other.seq == 3 and other.pending == 0))

    async with started(suite, "alice", path) as alice:
        room = await alice.join(ROOM)
        # Same since (3) as the new head: only the epoch tells the histories apart.
        await within(room.wait_until(lambda: "lost" not in room.records("todos")))
        await within(room.wait_synced())
        assert room.seq == 3
        assert room_view(room) == {"todos/a": {"n": 1}, "todos/b": {"n": 2}, "todos/new": {"n": 4}}
    seq, new, keys = await stored(path)
    assert (seq, keys) == (3, {"a", "b", "new"})
    assert new and new != old, "the new epoch is kept with the new state"


async def test_a_store_from_before_epochs_opens_and_learns_the_epoch(
    epochs: EpochSuite, tmp_path: Path
) -> None:
    assert epochs.suite is not None
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as db:  # the schema before epochs
        db.executescript(
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE rooms (room TEXT PRIMARY KEY, seq INTEGER NOT NULL);"
            "INSERT INTO meta VALUES ('client_id', 'old'), ('next_client_seq', '1');"
        )
    async with started(epochs.suite, "old", path) as client:
        room = await client.join(ROOM)
        await room.set("todos", "k", n=1)
        await within(room.wait_until(lambda: room.seq == 1 and room.pending == 0))
    seq, epoch, keys = await stored(path)
    assert (seq, keys) == (1, {"k"}) and len(epoch) == 16

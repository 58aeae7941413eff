"""Restoring a backup, then the documented step (``accord epoch renew``), on both stores.

Write 1..100, back up (pg_dump / a copy of the SQLite file), write 101..120, restore,
renew, start sync again and write 101..110 anew: a client resuming with its old epoch
and ``since`` 120 or 105 must get a snapshot of the new history, never a suffix of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from accord.sync import wire
from accord.sync.app import open_store
from accord.sync.engine import Engine, PullHead, SnapshotPage
from accord.sync.hlc import HybridClock
from accord.sync.model import Limits
from accord.sync.settings import PostgresTarget, Settings, SqliteTarget, parse_database_url
from accord.sync.store import Store

from tests.integration.sync.sync_helpers import OpenStore, incr_change, push, set_change

LIMITS = Limits()
DEADLINE = 30.0
ACCORD = str(Path(sys.executable).parent / "accord")


def engine_of(store: Store) -> Engine:
    return Engine(store, HybridClock(60_000_000), LIMITS)


async def write(engine: Engine, seqs: range, client: str = "c1", tag: str = "old") -> None:
    for seq in seqs:
        request = push("r", set_change(seq, f"k{seq}", era=tag), client_id=client)
        await engine.push(wire.push_batch(request, LIMITS))


async def run(*argv: str, url: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = url
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def backup(url: str, into: Path) -> None:
    target = parse_database_url(url)
    if isinstance(target, SqliteTarget):
        shutil.copyfile(target.path, into)  # the store is closed: the file is complete
        return
    code, out = await run("pg_dump", "-Fc", f"--file={into}", f"--dbname={url}", url=url)
    assert code == 0, out


async def restore(url: str, source: Path) -> None:
    target = parse_database_url(url)
    if isinstance(target, SqliteTarget):
        for suffix in ("-wal", "-shm"):  # the closed store left none; never reuse them
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target.path + suffix)
        shutil.copyfile(source, target.path)
        return
    assert isinstance(target, PostgresTarget)
    code, out = await run(
        "pg_restore", "--clean", "--if-exists", f"--dbname={url}", str(source), url=url
    )
    assert code == 0, out


async def resume(engine: Engine, since: int, epoch: str) -> list[object]:
    return [item async for item in engine.pull("r", since, 0, 0, False, epoch)]


async def test_accord_epoch_renew_changes_every_epoch(
    sync_database_url: str, reopen: OpenStore
) -> None:
    async with reopen() as store:
        await write(engine_of(store), range(1, 4))
        before = (await store.room_heads(["r"]))["r"].epoch
        basis = await store.basis()
    code, shown = await run(ACCORD, "epoch", "show", url=sync_database_url)
    assert code == 0 and basis.incarnation in shown
    code, out = await run(ACCORD, "epoch", "renew", url=sync_database_url)
    assert code == 0 and "epoch renewed" in out, out
    async with reopen() as store:
        after = await store.basis()
        assert after.incarnation != basis.incarnation and after.incarnation in out
        now = (await store.room_heads(["r"]))["r"]
        assert now.head == 3 and not now.epoch.accepts(before.current)


async def test_accord_epoch_refuses_an_unknown_action_and_reports_an_unreachable_database(
    tmp_path: Path,
) -> None:
    code, out = await run(ACCORD, "epoch", "forget", url=f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "invalid choice" in out
    code, out = await run(ACCORD, "epoch", "renew", url="postgresql://127.0.0.1:1/none")
    assert code == 1 and "accord epoch:" in out


async def test_a_client_from_before_a_restore_gets_a_snapshot_of_the_new_history(
    sync_database_url: str, reopen: OpenStore, tmp_path: Path
) -> None:
    copy = tmp_path / "backup"
    async with reopen() as store:
        engine = engine_of(store)
        await write(engine, range(1, 101))
    await backup(sync_database_url, copy)
    async with reopen() as store:
        engine = engine_of(store)
        await write(engine, range(101, 121))
        old = (await store.room_heads(["r"]))["r"].epoch.current
        tail = await resume(engine, 100, old)
        assert [c.seq for page in tail[1:] for c in page] == list(range(101, 121))  # type: ignore[attr-defined]
    # The operator: sync stopped, the backup restored, the epoch renewed, sync started.
    await restore(sync_database_url, copy)
    code, out = await run(ACCORD, "epoch", "renew", url=sync_database_url)
    assert code == 0, out
    async with reopen() as store:
        engine = engine_of(store)
        assert await store.head("r") == 100
        await write(engine, range(101, 111), client="c2", tag="new")
        new = (await store.room_heads(["r"]))["r"].epoch.current
        assert new != old
        for since in (120, 105):
            items = await resume(engine, since, old)
            assert items[0] == PullHead(110, new)
            pages = items[1:]
            assert pages and all(isinstance(p, SnapshotPage) and p.seq == 110 for p in pages)
            values = {r.key: json.loads(r.value_json) for p in pages for r in p.records}  # type: ignore[attr-defined]
            assert len(values) == 110
            assert values["k105"] == {"era": "new"} and values["k100"] == {"era": "old"}
        # With the new epoch (or none, as before epochs), the suffix as always.
        for epoch in (new, ""):
            items = await resume(engine, 105, epoch)
            assert [c.seq for page in items[1:] for c in page] == list(range(106, 111))  # type: ignore[attr-defined]


@pytest.mark.integration
async def test_a_running_replica_does_not_commit_from_what_it_remembered_before_a_renewal(
    database_url: str, tmp_path: Path
) -> None:
    """A replica that is not restarted: what it remembers of a room (head 120, n as of
    then) must not be used once the database is restored and renewed, even when another
    replica has brought the room back to head 120 meanwhile."""
    copy = tmp_path / "backup"
    url = database_url
    settings = Settings(database=parse_database_url(url))
    async with open_store(settings) as store_a, open_store(settings) as store_b:
        a, b = engine_of(store_a), engine_of(store_b)

        async def bump(engine: Engine, client: str, seqs: range, by: int) -> None:
            for seq in seqs:
                change = incr_change(seq, "counter", "n", by)
                await engine.push(wire.push_batch(push("r", change, client_id=client), LIMITS))

        await bump(a, "a", range(1, 101), 1)
        await backup(url, copy)
        await bump(a, "a", range(101, 121), 1)  # a remembers the room at head 120, n = 120
        await restore(url, copy)  # head 100, n = 100
        await store_b.renew()
        await bump(b, "b", range(1, 21), 10)  # head 120 again, n = 300
        await bump(a, "a", range(121, 122), 1)
        items = [i async for i in a.pull("r", 0, 0, 0, False)]
        records = [r for p in items if isinstance(p, SnapshotPage) for r in p.records]
        assert items[0] == PullHead(121, (await store_a.room_heads(["r"]))["r"].epoch.current)
        assert [json.loads(r.value_json) for r in records] == [{"n": 301}]

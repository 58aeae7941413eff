"""The SQLite store's SQL helpers: connecting, migrating, reading rows (moved from
``store_sqlite``, unchanged)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import aiosqlite
from accord.sync.epoch import Basis, RoomEpoch, RoomHead
from accord.sync.errors import Unavailable
from accord.sync.schema import MIGRATIONS, statements
from accord.sync.settings import MEMORY

log = logging.getLogger(__name__)

_IN_LIMIT = 500
_WAL_ATTEMPTS = 100


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as error:
        raise Unavailable(f"database error: {error}") from error


async def _use_wal(db: aiosqlite.Connection) -> None:
    # Switching a new file to WAL needs an exclusive lock and ignores busy_timeout,
    # so processes opening the same database together retry here.
    for attempt in range(_WAL_ATTEMPTS):
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == _WAL_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.05)


async def _connect(path: str) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await db.execute("PRAGMA busy_timeout = 5000")
        if path != MEMORY:
            await _use_wal(db)
            await db.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        await db.close()
        raise
    return db


async def _migrate(db: aiosqlite.Connection) -> None:
    await db.execute("BEGIN IMMEDIATE")
    try:
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        for version, sql in MIGRATIONS:
            if version > current:
                for statement in statements(sql):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {version}")
                log.info("sqlite schema migrated to version %d", version)
        await db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            await db.execute("ROLLBACK")
        raise


async def _basis(db: aiosqlite.Connection) -> Basis:
    async with db.execute("SELECT value FROM incarnation WHERE id = 1") as cursor:
        row = await cursor.fetchone()
    return Basis("", str(row[0]) if row else "")


async def _room_row(db: aiosqlite.Connection, room: str) -> tuple[int, int, RoomEpoch]:
    """(head, floor, epoch) of ``room``; (0, 0, its initial epoch) when it has no row."""
    async with db.execute(
        "SELECT i.value, r.head, r.floor, r.epoch FROM (SELECT (SELECT value FROM incarnation "
        "WHERE id = 1) AS value) AS i LEFT JOIN rooms r ON r.room = ?",
        (room,),
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None  # the derived table has one row
    epoch = Basis("", str(row[0] or "")).room(None if row[3] is None else str(row[3]))
    return (int(row[1]), int(row[2]), epoch) if row[1] is not None else (0, 0, epoch)


async def _rows(db: aiosqlite.Connection, rooms: Sequence[str]) -> dict[str, tuple[int, str]]:
    """(head, epoch part) of those of ``rooms`` that have a row."""
    names = sorted(set(rooms))
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(names), _IN_LIMIT):
        part = names[start : start + _IN_LIMIT]
        marks = ",".join("?" * len(part))
        async with db.execute(
            f"SELECT room, head, epoch FROM rooms WHERE room IN ({marks})", part
        ) as cursor:
            found.update({str(r[0]): (int(r[1]), str(r[2])) for r in await cursor.fetchall()})
    return found


async def _heads(db: aiosqlite.Connection, rooms: Sequence[str]) -> dict[str, int]:
    """The head of each of ``rooms`` (0 for a room with no changes)."""
    heads = dict.fromkeys(sorted(set(rooms)), 0)
    heads.update({room: head for room, (head, _) in (await _rows(db, rooms)).items()})
    return heads


async def _room_heads(db: aiosqlite.Connection, rooms: Sequence[str]) -> dict[str, RoomHead]:
    basis = await _basis(db)
    found = await _rows(db, rooms)
    heads = {room: RoomHead(0, basis.room(None)) for room in rooms}
    heads.update({room: RoomHead(h, basis.room(part)) for room, (h, part) in found.items()})
    return heads

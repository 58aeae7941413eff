"""The embedded store: one SQLite file (or memory), no server to run.

Writes go through one connection, one ``BEGIN IMMEDIATE`` transaction per push,
serialized by a lock (SQLite has one writer anyway). Reads use a second
connection so they see only committed data (WAL mode); an in-memory database
has a single connection for both.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from accord.sync.errors import Unavailable
from accord.sync.model import LoggedChange, RecordKey, RecordRow, RecordValue
from accord.sync.schema import MIGRATIONS, statements
from accord.sync.settings import MEMORY

log = logging.getLogger(__name__)

_IN_LIMIT = 500
_WAL_ATTEMPTS = 100
_CHANGE_COLUMNS = "seq, user_id, client_id, client_seq, collection, key, ts, op, patch"


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


def _logged(row: Sequence[Any]) -> LoggedChange:
    seq, user_id, client_id, client_seq, collection, key, ts, op, patch = row
    return LoggedChange(
        seq=int(seq),
        user_id=str(user_id),
        client_id=str(client_id),
        client_seq=int(client_seq),
        collection=str(collection),
        key=str(key),
        ts=int(ts),
        op_json=str(op),
        patch_json=str(patch),
    )


class _Transaction:
    def __init__(self, db: aiosqlite.Connection, room: str) -> None:
        self._db = db
        self._room = room

    async def head(self) -> int:
        async with self._db.execute("SELECT head FROM rooms WHERE room = ?", (self._room,)) as c:
            row = await c.fetchone()
        return int(row[0]) if row else 0

    async def high_water(self, user_id: str, client_id: str) -> int:
        async with self._db.execute(
            "SELECT high_water FROM clients WHERE room = ? AND user_id = ? AND client_id = ?",
            (self._room, user_id, client_id),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def logged_seqs(
        self, user_id: str, client_id: str, client_seqs: Sequence[int]
    ) -> dict[int, int]:
        found: dict[int, int] = {}
        for start in range(0, len(client_seqs), _IN_LIMIT):
            part = list(client_seqs[start : start + _IN_LIMIT])
            marks = ",".join("?" * len(part))
            async with self._db.execute(
                "SELECT client_seq, seq FROM changes WHERE room = ? AND user_id = ? "
                f"AND client_id = ? AND client_seq IN ({marks})",
                (self._room, user_id, client_id, *part),
            ) as cursor:
                found.update({int(r[0]): int(r[1]) for r in await cursor.fetchall()})
        return found

    async def load_states(self, keys: Sequence[RecordKey]) -> dict[RecordKey, str]:
        states: dict[RecordKey, str] = {}
        for collection, key in keys:
            async with self._db.execute(
                "SELECT state FROM records WHERE room = ? AND collection = ? AND key = ?",
                (self._room, collection, key),
            ) as cursor:
                row = await cursor.fetchone()
            if row:
                states[(collection, key)] = str(row[0])
        return states

    async def save(
        self,
        changes: Sequence[LoggedChange],
        records: Sequence[RecordRow],
        high_water: tuple[str, str, int],
    ) -> None:
        room = self._room
        await self._db.executemany(
            f"INSERT INTO changes (room, {_CHANGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    room,
                    c.seq,
                    c.user_id,
                    c.client_id,
                    c.client_seq,
                    c.collection,
                    c.key,
                    c.ts,
                    c.op_json,
                    c.patch_json,
                )
                for c in changes
            ],
        )
        await self._db.executemany(
            "INSERT INTO records (room, collection, key, state, value, seq) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (room, collection, key) DO UPDATE SET state = excluded.state, "
            "value = excluded.value, seq = excluded.seq",
            [(room, r.collection, r.key, r.state_json, r.value_json, r.seq) for r in records],
        )
        if changes:
            await self._db.execute(
                "INSERT INTO rooms (room, head) VALUES (?, ?) "
                "ON CONFLICT (room) DO UPDATE SET head = excluded.head",
                (room, changes[-1].seq),
            )
        user_id, client_id, client_seq = high_water
        await self._db.execute(
            "INSERT INTO clients (room, user_id, client_id, high_water) VALUES (?,?,?,?) "
            "ON CONFLICT (room, user_id, client_id) DO UPDATE SET "
            "high_water = max(high_water, excluded.high_water)",
            (room, user_id, client_id, client_seq),
        )


class _Snapshot:
    def __init__(self, head: int, records: list[RecordValue]) -> None:
        self._head = head
        self._records = records

    @property
    def head(self) -> int:
        return self._head

    async def records(self, page_size: int) -> AsyncIterator[list[RecordValue]]:
        for start in range(0, len(self._records), page_size):
            yield self._records[start : start + page_size]


class SqliteStore:
    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._read_lock = self._write_lock if reader is writer else asyncio.Lock()

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str) -> AsyncIterator[SqliteStore]:
        if path != MEMORY:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        with _unavailable():
            writer = await _connect(path)
        try:
            with _unavailable():
                await _migrate(writer)
                reader = writer if path == MEMORY else await _connect(path)
            try:
                yield cls(writer, reader)
            finally:
                if reader is not writer:
                    await reader.close()
        finally:
            await writer.close()

    @asynccontextmanager
    async def transaction(self, room: str) -> AsyncIterator[_Transaction]:
        async with self._write_lock:
            with _unavailable():
                await self._writer.execute("BEGIN IMMEDIATE")
            try:
                with _unavailable():
                    yield _Transaction(self._writer, room)
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            with _unavailable():
                await self._writer.execute("COMMIT")

    @asynccontextmanager
    async def snapshot(self, room: str) -> AsyncIterator[_Snapshot]:
        async with self._read_lock:
            with _unavailable():
                await self._reader.execute("BEGIN")
                try:
                    head = await _Transaction(self._reader, room).head()
                    async with self._reader.execute(
                        "SELECT collection, key, value FROM records "
                        "WHERE room = ? AND value IS NOT NULL ORDER BY collection, key",
                        (room,),
                    ) as cursor:
                        rows = await cursor.fetchall()
                finally:
                    await self._reader.execute("COMMIT")
        yield _Snapshot(head, [RecordValue(str(r[0]), str(r[1]), str(r[2])) for r in rows])

    async def head(self, room: str) -> int:
        async with self._read_lock:
            with _unavailable():
                return await _Transaction(self._reader, room).head()

    async def changes(self, room: str, after: int, until: int, limit: int) -> list[LoggedChange]:
        async with self._read_lock:
            with _unavailable():
                async with self._reader.execute(
                    f"SELECT {_CHANGE_COLUMNS} FROM changes "
                    "WHERE room = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    (room, after, until, limit),
                ) as cursor:
                    rows = await cursor.fetchall()
        return [_logged(r) for r in rows]

"""The embedded store: one SQLite file (or memory), no server to run.

Writes go through one connection, one ``BEGIN IMMEDIATE`` transaction per
group of pushes, serialized by a lock (SQLite has one writer anyway). Reads use a second
connection so they see only committed data (WAL mode); an in-memory database
has a single connection for both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
from accord.sync.epoch import Basis, RoomHead, new_incarnation
from accord.sync.model import (
    ConflictRow,
    LoggedChange,
    RecordValue,
    RoomClient,
    RoomRecord,
    RoomWrite,
)
from accord.sync.outbox_sqlite import SqliteOutbox, save_outbox
from accord.sync.records import advance_bases
from accord.sync.records_sql import FOLD_COLUMNS, SqliteReader, sqlite_bases
from accord.sync.settings import MEMORY
from accord.sync.snapshot_sqlite import LoadedSnapshot, SqliteSnapshot
from accord.sync.store_rows import (
    CHANGE_COLUMNS,
    CONFLICT_COLUMNS,
    LockedTransaction,
    change_of,
    change_values,
    conflict_of,
    conflict_values,
    record_values,
)
from accord.sync.store_sqlite_sql import (
    _IN_LIMIT,
    _basis,
    _connect,
    _heads,
    _migrate,
    _room_heads,
    _room_row,
    _unavailable,
)

log = logging.getLogger(__name__)


class _Transaction(LockedTransaction):
    def __init__(self, db: aiosqlite.Connection, heads: dict[str, int], basis: Basis) -> None:
        super().__init__(heads, basis)
        self._db = db

    async def load(
        self, clients: Sequence[RoomClient], keys: Sequence[RoomRecord]
    ) -> tuple[dict[RoomClient, int], dict[RoomRecord, str]]:
        return await self._high_waters(clients), await self._load_states(keys)

    async def _high_waters(self, clients: Sequence[RoomClient]) -> dict[RoomClient, int]:
        marks: dict[RoomClient, int] = {}
        for client in clients:
            async with self._db.execute(
                "SELECT high_water FROM clients WHERE room = ? AND user_id = ? AND client_id = ?",
                client,
            ) as cursor:
                row = await cursor.fetchone()
            if row:
                marks[client] = int(row[0])
        return marks

    async def logged_seqs(self, client: RoomClient, client_seqs: Sequence[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        for start in range(0, len(client_seqs), _IN_LIMIT):
            part = list(client_seqs[start : start + _IN_LIMIT])
            marks = ",".join("?" * len(part))
            async with self._db.execute(
                "SELECT client_seq, seq FROM changes WHERE room = ? AND user_id = ? "
                f"AND client_id = ? AND client_seq IN ({marks})",
                (*client, *part),
            ) as cursor:
                found.update({int(r[0]): int(r[1]) for r in await cursor.fetchall()})
        return found

    async def _load_states(self, keys: Sequence[RoomRecord]) -> dict[RoomRecord, str]:
        states: dict[RoomRecord, str] = {}
        for key in keys:
            async with self._db.execute(
                "SELECT state FROM records WHERE room = ? AND collection = ? AND key = ?", key
            ) as cursor:
                row = await cursor.fetchone()
            if row:
                states[key] = str(row[0])
        return states

    async def save(self, writes: Sequence[RoomWrite]) -> None:
        db = self._db
        await db.executemany(
            f"INSERT INTO changes (room, {CHANGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [change_values(w.room, c) for w in writes for c in w.changes],
        )
        # A record changed for the first time since its room's floor passed it keeps its
        # state as of the floor (accord.sync.records): the row before it is replaced.
        await db.executemany(
            "INSERT OR REPLACE INTO record_bases (room, collection, key, state) "
            "SELECT r.room, r.collection, r.key, r.state FROM records r "
            "JOIN rooms m ON m.room = r.room WHERE r.room = ? AND r.collection = ? "
            "AND r.key = ? AND m.bases = 1 AND r.seq <= m.floor",
            [(w.room, r.collection, r.key) for w in writes for r in w.records],
        )
        await db.executemany(
            "INSERT INTO records (room, collection, key, state, value, seq) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (room, collection, key) DO UPDATE SET state = excluded.state, "
            "value = excluded.value, seq = excluded.seq",
            [record_values(w.room, r) for w in writes for r in w.records],
        )
        heads = [(w.room, w.changes[-1].seq) for w in writes if w.changes]
        await db.executemany(
            # A new row gets the room's random epoch part, kept from then on.
            "INSERT INTO rooms (room, head, epoch) VALUES (?, ?, CAST(random() AS TEXT)) "
            "ON CONFLICT (room) DO UPDATE SET head = excluded.head",
            heads,
        )
        await db.executemany(
            "INSERT INTO clients (room, user_id, client_id, high_water) VALUES (?,?,?,?) "
            "ON CONFLICT (room, user_id, client_id) DO UPDATE SET "
            "high_water = max(high_water, excluded.high_water)",
            [(w.room, *mark) for w in writes for mark in w.marks],
        )
        await db.executemany(
            f"INSERT OR IGNORE INTO conflicts (room, {CONFLICT_COLUMNS}) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [conflict_values(w.room, c) for w in writes for c in w.conflicts],
        )
        await save_outbox(db, writes)
        self._heads.update(heads)

    async def compact(self, room: str, floor: int, keep_conflicts: int) -> None:
        db = self._db
        async with db.execute("SELECT floor, bases FROM rooms WHERE room = ?", (room,)) as cursor:
            row = await cursor.fetchone()
        if row is not None and int(row[0]) < floor:
            await db.execute("UPDATE rooms SET floor = ? WHERE room = ?", (floor, room))
            if row[1]:
                await self._advance_bases(room, int(row[0]), floor)
            await db.execute("DELETE FROM changes WHERE room = ? AND seq <= ?", (room, floor))
        await self._db.execute(
            "DELETE FROM conflicts WHERE room = ? AND seq < (SELECT min(seq) FROM "
            "(SELECT seq FROM conflicts WHERE room = ? ORDER BY seq DESC LIMIT ?))",
            (room, room, keep_conflicts),
        )

    async def _advance_bases(self, room: str, floor: int, new_floor: int) -> None:
        """The room's record bases from ``floor`` to ``new_floor`` (accord.sync.records)."""
        db = self._db
        async with db.execute(
            f"SELECT {FOLD_COLUMNS} FROM changes c JOIN records r ON r.room = c.room "
            "AND r.collection = c.collection AND r.key = c.key "
            "WHERE c.room = ? AND c.seq > ? AND c.seq <= ? AND r.seq > ? ORDER BY c.seq",
            (room, floor, new_floor, new_floor),
        ) as cursor:
            rows = list(await cursor.fetchall())
        keys = list(dict.fromkeys((str(r[0]), str(r[1])) for r in rows))
        bases = advance_bases(rows, await sqlite_bases(db, room, keys))
        await db.executemany(
            "INSERT OR REPLACE INTO record_bases (room, collection, key, state) VALUES (?,?,?,?)",
            [(room, *base) for base in bases],
        )
        # A base goes stale once the floor passes its record's seq, in the compaction whose
        # changes hold that seq: only those records are looked at.
        await db.execute(
            "DELETE FROM record_bases WHERE room = ? AND (collection, key) IN (SELECT "
            "r.collection, r.key FROM changes c JOIN records r ON r.room = c.room "
            "AND r.collection = c.collection AND r.key = c.key "
            "WHERE c.room = ? AND c.seq > ? AND c.seq <= ? AND r.seq <= ?)",
            (room, room, floor, new_floor, new_floor),
        )

    async def cursor_floor(self, room: str, extensions: Sequence[str]) -> int:
        marks = ", ".join("?" * len(extensions))
        async with self._db.execute(
            f"SELECT extension, seq FROM extension_cursors WHERE room = ? "
            f"AND extension IN ({marks})",
            (room, *extensions),
        ) as cursor:
            found = {str(r[0]): int(r[1]) for r in await cursor.fetchall()}
        return min((found.get(name, 0) for name in extensions), default=0)


class SqliteStore:
    def __init__(
        self, writer: aiosqlite.Connection, reader: aiosqlite.Connection, path: str = MEMORY
    ) -> None:
        self._path = path
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
                yield cls(writer, reader, path)
            finally:
                if reader is not writer:
                    await reader.close()
        finally:
            await writer.close()

    @asynccontextmanager
    async def transaction(
        self, rooms: Sequence[str], *, optimistic: bool = False
    ) -> AsyncIterator[_Transaction]:
        # One writer at a time: a transaction here never meets another one.
        async with self._write_lock:
            with _unavailable():
                await self._writer.execute("BEGIN IMMEDIATE")
            try:
                with _unavailable():
                    heads = await _heads(self._writer, rooms)
                    yield _Transaction(self._writer, heads, await _basis(self._writer))
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            with _unavailable():
                await self._writer.execute("COMMIT")

    @asynccontextmanager
    async def _written(self) -> AsyncIterator[aiosqlite.Connection]:
        """The writer, in a transaction of its own (for the outbox's statements)."""
        async with self._write_lock:
            with _unavailable():
                await self._writer.execute("BEGIN IMMEDIATE")
            try:
                with _unavailable():
                    yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            with _unavailable():
                await self._writer.execute("COMMIT")

    def outbox(self) -> SqliteOutbox:
        return SqliteOutbox(self._written, self._fetch)

    @asynccontextmanager
    async def snapshot(self, room: str) -> AsyncIterator[SqliteSnapshot | LoadedSnapshot]:
        if self._path == MEMORY:
            async with self._read_lock:
                with _unavailable():
                    head, floor, epoch = await _room_row(self._reader, room)
                    async with self._reader.execute(
                        "SELECT collection, key, value FROM records "
                        "WHERE room = ? AND value IS NOT NULL ORDER BY collection, key",
                        (room,),
                    ) as cursor:
                        rows = await cursor.fetchall()
            records = [RecordValue(str(r[0]), str(r[1]), str(r[2])) for r in rows]
            yield LoadedSnapshot(head, floor, epoch, records)
            return
        # Its own connection: a long snapshot read holds no lock other reads wait on,
        # and WAL keeps its view fixed while pushes go on.
        with _unavailable():
            db = await _connect(self._path)
        try:
            with _unavailable():
                await db.execute("BEGIN")
                head, floor, epoch = await _room_row(db, room)
            yield SqliteSnapshot(db, room, head, floor, epoch)
        finally:
            if db.in_transaction:
                await db.execute("COMMIT")
            await db.close()

    @asynccontextmanager
    async def reader(self, room: str) -> AsyncIterator[SqliteReader]:
        # On the shared reader connection: a page is a few short queries.
        async with self._read_lock:
            with _unavailable():
                await self._reader.execute("BEGIN")
                try:
                    async with self._reader.execute(
                        "SELECT head, floor, bases FROM rooms WHERE room = ?", (room,)
                    ) as cursor:
                        row = await cursor.fetchone()
                    if row is None:
                        yield SqliteReader(self._reader, room, 0, 0, True)
                    else:
                        head, floor, bases = int(row[0]), int(row[1]), bool(row[2])
                        yield SqliteReader(self._reader, room, head, floor, bases)
                finally:
                    await self._reader.execute("COMMIT")

    async def _fetch(self, sql: str, args: tuple[str | int, ...]) -> list[aiosqlite.Row]:
        """The rows of one query on the shared reader connection."""
        async with self._read_lock:
            with _unavailable():
                async with self._reader.execute(sql, args) as cursor:
                    return list(await cursor.fetchall())

    async def head(self, room: str) -> int:
        async with self._read_lock:
            with _unavailable():
                return (await _room_row(self._reader, room))[0]

    async def heads(self, rooms: Sequence[str]) -> dict[str, int]:
        async with self._read_lock:
            with _unavailable():
                return await _heads(self._reader, rooms)

    async def room_heads(self, rooms: Sequence[str]) -> dict[str, RoomHead]:
        async with self._read_lock:
            with _unavailable():
                return await _room_heads(self._reader, rooms)

    async def basis(self) -> Basis:
        async with self._read_lock:
            with _unavailable():
                return await _basis(self._reader)

    async def renew(self) -> Basis:
        value = new_incarnation()
        async with self._write_lock:
            with _unavailable():
                await self._writer.execute(
                    "INSERT INTO incarnation (id, value) VALUES (1, ?) "
                    "ON CONFLICT (id) DO UPDATE SET value = excluded.value",
                    (value,),
                )
        return Basis("", value)

    async def changes(self, room: str, after: int, until: int, limit: int) -> list[LoggedChange]:
        rows = await self._fetch(
            f"SELECT {CHANGE_COLUMNS} FROM changes "
            "WHERE room = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (room, after, until, limit),
        )
        return [change_of(r) for r in rows]

    async def conflicts(self, room: str, before: int, limit: int) -> list[ConflictRow]:
        rows = await self._fetch(
            f"SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE room = ? "
            "AND (? = 0 OR seq < ?) ORDER BY seq DESC, field LIMIT ?",
            (room, before, before, limit),
        )
        return [conflict_of(r) for r in rows]

    async def cursor(self, extension: str, room: str) -> int:
        rows = await self._fetch(
            "SELECT seq FROM extension_cursors WHERE extension = ? AND room = ?",
            (extension, room),
        )
        return int(rows[0][0]) if rows else 0

    async def advance(self, extension: str, room: str, seen: int, seq: int) -> bool:
        async with self._write_lock:
            with _unavailable():
                async with self._writer.execute(
                    "UPDATE extension_cursors SET seq = ? "
                    "WHERE extension = ? AND room = ? AND seq = ?",
                    (seq, extension, room, seen),
                ) as cursor:
                    if cursor.rowcount > 0:
                        return True
                if seen:
                    return False
                async with self._writer.execute(
                    "INSERT INTO extension_cursors (extension, room, seq) VALUES (?, ?, ?) "
                    "ON CONFLICT (extension, room) DO NOTHING",
                    (extension, room, seq),
                ) as cursor:
                    return cursor.rowcount > 0

    async def behind(self, extension: str, after: str, limit: int) -> list[tuple[str, int]]:
        rows = await self._fetch(
            "SELECT r.room, COALESCE(c.seq, 0) FROM rooms r "
            "LEFT JOIN extension_cursors c ON c.extension = ? AND c.room = r.room "
            "WHERE r.room > ? AND r.head > COALESCE(c.seq, 0) ORDER BY r.room LIMIT ?",
            (extension, after, limit),
        )
        return [(str(r[0]), int(r[1])) for r in rows]

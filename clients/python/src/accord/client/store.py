"""Where a client keeps what must survive a restart.

Per client: its ``client_id`` and the next ``client_seq``. Per room: the seq,
epoch and records of the confirmed state (so a restarted client resumes with
``since`` and ``epoch`` instead of a full snapshot) and the pending changes, in
``client_seq`` order, until the server confirms them.

``MemoryStore`` keeps all of it for the life of the process; ``SqliteStore``
keeps it in one SQLite file. A new store starts ``client_seq`` at the current
time in microseconds, not 1: if a ``client_id`` is ever reused with a fresh
store, its new changes still rank above the ones the server already holds and
are not mistaken for duplicates.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import aiosqlite
from accord.client.changes import PendingChange, RecordKey
from accord.client.errors import OfflineStoreError
from accord.client.patch import Record
from accord.client.paths import offline_file

__all__ = [
    "MemoryStore",
    "OfflineStore",
    "RoomState",
    "SqliteStore",
    "first_client_seq",
    "store_for",
]


def first_client_seq() -> int:
    return time.time_ns() // 1000


@dataclass
class RoomState:
    seq: int = 0
    epoch: str = ""  # the history ``seq`` belongs to ("": not known, resumes unchecked)
    records: dict[RecordKey, Record] = field(default_factory=dict)
    pending: list[PendingChange] = field(default_factory=list)


class OfflineStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def identity(self, client_id: str | None, default: str) -> tuple[str, int]:
        """The client_id (``client_id`` or ``default`` for a new store) and next ``client_seq``.

        Raises ``ValueError`` when the store belongs to another ``client_id``.
        """
        ...

    async def load_room(self, room: str) -> RoomState: ...

    async def add_pending(self, room: str, change: PendingChange) -> None:
        """Keep ``change`` and advance the next ``client_seq`` past it, atomically."""
        ...

    async def save(
        self,
        room: str,
        seq: int,
        records: Mapping[RecordKey, Record | None],
        dropped: Sequence[int],
        *,
        replace: bool = False,
        epoch: str | None = None,
    ) -> None:
        """Record the room's new seq, upsert (``None``: delete) records, forget ``dropped`` pending.

        ``replace``: ``records`` is the room's whole confirmed state (a snapshot).
        ``epoch``: the room's epoch the new seq belongs to (``None``: unchanged).
        """
        ...


def _copy(change: PendingChange) -> PendingChange:
    """A pending change the caller cannot alter afterwards (its op copied)."""
    return PendingChange(
        change.client_seq, change.collection, change.key, dict(change.op), change.ts
    )


class MemoryStore:
    def __init__(self) -> None:
        self.client_id: str | None = None
        self.next_seq = 0
        self.rooms: dict[str, RoomState] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def identity(self, client_id: str | None, default: str) -> tuple[str, int]:
        if self.client_id is None:
            self.client_id = client_id or default
            self.next_seq = first_client_seq()
        elif client_id is not None and client_id != self.client_id:
            raise ValueError(
                f"this store belongs to client_id {self.client_id!r}, not {client_id!r}"
            )
        return self.client_id, self.next_seq

    async def load_room(self, room: str) -> RoomState:
        state = self.rooms.get(room, RoomState())
        return RoomState(
            state.seq,
            state.epoch,
            {k: dict(v) for k, v in state.records.items()},
            [_copy(c) for c in state.pending],
        )

    async def add_pending(self, room: str, change: PendingChange) -> None:
        self.rooms.setdefault(room, RoomState()).pending.append(_copy(change))
        self.next_seq = max(self.next_seq, change.client_seq + 1)

    async def save(
        self,
        room: str,
        seq: int,
        records: Mapping[RecordKey, Record | None],
        dropped: Sequence[int],
        *,
        replace: bool = False,
        epoch: str | None = None,
    ) -> None:
        state = self.rooms.setdefault(room, RoomState())
        state.seq = seq
        if epoch is not None:
            state.epoch = epoch
        if replace:
            state.records = {}
        for key, value in records.items():
            if value is None:
                state.records.pop(key, None)
            else:
                state.records[key] = dict(value)
        gone = set(dropped)
        state.pending = [c for c in state.pending if c.client_seq not in gone]


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY, seq INTEGER NOT NULL, epoch TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS records (
    room TEXT NOT NULL, collection TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (room, collection, key)
);
CREATE TABLE IF NOT EXISTS pending (
    client_seq INTEGER PRIMARY KEY, room TEXT NOT NULL, collection TEXT NOT NULL,
    key TEXT NOT NULL, ts INTEGER NOT NULL, op TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_room ON pending (room, client_seq);
"""

MIGRATIONS = (
    # Stores from before epochs: their rooms resume unchecked until the next
    # subscribe tells the epoch.
    ("rooms", "epoch", "ALTER TABLE rooms ADD COLUMN epoch TEXT NOT NULL DEFAULT ''"),
)


class SqliteStore:
    """One SQLite file per client; every write is one transaction.

    ``path`` may start with ``~``; an unusable one raises ``OfflineStoreError`` here
    (or, for what only trying shows, from ``open``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = offline_file(path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OfflineStoreError(
                self.path, f"cannot create {self.path.parent}: {error.strerror or error}"
            ) from error
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as error:
            raise OfflineStoreError(self.path, f"SQLite cannot open it: {error}") from error
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.executescript(SCHEMA)
            for table, column, statement in MIGRATIONS:
                async with db.execute(f"PRAGMA table_info({table})") as cursor:
                    columns = {row[1] async for row in cursor}
                if column not in columns:
                    await db.execute(statement)
        except sqlite3.Error as error:
            await db.close()
            raise OfflineStoreError(self.path, f"not usable as an SQLite file: {error}") from error
        self._db = db

    async def close(self) -> None:
        async with self._lock:
            if self._db is not None:
                await self._db.close()
                self._db = None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction: committed, or rolled back on any error."""
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise
        await self.db.execute("COMMIT")

    async def _meta(self, name: str) -> str | None:
        async with self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def identity(self, client_id: str | None, default: str) -> tuple[str, int]:
        async with self._lock:
            stored = await self._meta("client_id")
            if stored is not None:
                if client_id is not None and client_id != stored:
                    raise ValueError(
                        f"offline store {self.path} belongs to client_id {stored!r}, "
                        f"not {client_id!r}"
                    )
                return stored, int(await self._meta("next_client_seq") or first_client_seq())
            chosen, next_seq = client_id or default, first_client_seq()
            await self.db.execute("BEGIN IMMEDIATE")
            await self.db.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?)",
                [("client_id", chosen), ("next_client_seq", str(next_seq))],
            )
            await self.db.execute("COMMIT")
            return chosen, next_seq

    async def load_room(self, room: str) -> RoomState:
        async with self._lock:
            state = RoomState()
            async with self.db.execute(
                "SELECT seq, epoch FROM rooms WHERE room = ?", (room,)
            ) as cursor:
                row = await cursor.fetchone()
            if row is not None:
                state.seq, state.epoch = int(row[0]), str(row[1])
            async with self.db.execute(
                "SELECT collection, key, value FROM records WHERE room = ?", (room,)
            ) as cursor:
                async for collection, key, value in cursor:
                    state.records[(collection, key)] = json.loads(value)
            async with self.db.execute(
                "SELECT client_seq, collection, key, ts, op FROM pending "
                "WHERE room = ? ORDER BY client_seq",
                (room,),
            ) as cursor:
                async for client_seq, collection, key, ts, op in cursor:
                    state.pending.append(
                        PendingChange(int(client_seq), collection, key, json.loads(op), int(ts))
                    )
            return state

    async def add_pending(self, room: str, change: PendingChange) -> None:
        async with self._lock, self._transaction():
            await self.db.execute(
                "INSERT INTO pending (client_seq, room, collection, key, ts, op) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    change.client_seq,
                    room,
                    change.collection,
                    change.key,
                    change.ts,
                    json.dumps(change.op),
                ),
            )
            await self.db.execute(
                "INSERT INTO meta (name, value) VALUES ('next_client_seq', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value "
                "WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                (str(change.client_seq + 1),),
            )

    async def save(
        self,
        room: str,
        seq: int,
        records: Mapping[RecordKey, Record | None],
        dropped: Sequence[int],
        *,
        replace: bool = False,
        epoch: str | None = None,
    ) -> None:
        async with self._lock:
            if self._db is None:
                # Closed while a save was in flight: the next start resumes from the last seq saved.
                return
            async with self._transaction():
                await self.db.execute(
                    "INSERT INTO rooms (room, seq, epoch) VALUES (?, ?, coalesce(?, '')) "
                    "ON CONFLICT (room) DO UPDATE SET seq = excluded.seq, "
                    "epoch = coalesce(?, rooms.epoch)",
                    (room, seq, epoch, epoch),
                )
                if replace:
                    await self.db.execute("DELETE FROM records WHERE room = ?", (room,))
                gone = [(room, c, k) for (c, k), v in records.items() if v is None]
                kept = [
                    (room, c, k, json.dumps(v)) for (c, k), v in records.items() if v is not None
                ]
                if gone:
                    await self.db.executemany(
                        "DELETE FROM records WHERE room = ? AND collection = ? AND key = ?", gone
                    )
                if kept:
                    await self.db.executemany(
                        "INSERT INTO records (room, collection, key, value) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (room, collection, key) DO UPDATE SET value = excluded.value",
                        kept,
                    )
                if dropped:
                    await self.db.executemany(
                        "DELETE FROM pending WHERE client_seq = ?", [(s,) for s in dropped]
                    )


def store_for(path: str | Path | None) -> OfflineStore:
    """The store for a client's ``offline_path``: memory when None, else that SQLite file."""
    return MemoryStore() if path is None else SqliteStore(path)

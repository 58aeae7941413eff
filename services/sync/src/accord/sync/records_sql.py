"""The ``RecordReader``s of the two stores (``accord.sync.records``): the same queries in
SQLite's and PostgreSQL's dialects. Each runs inside a read transaction its store opens
(and whose errors it maps); both use keyset paging on the records' primary key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite
import asyncpg
from accord.sync.model import LoggedChange, RecordKey
from accord.sync.records import StoredRecord
from accord.sync.store_rows import change_of

_HISTORY_COLUMNS = "seq, user_id, client_id, client_seq, collection, key, ts, op"
_IN_LIMIT = 200
FOLD_COLUMNS = "c.collection, c.key, c.seq, c.user_id, c.client_id, c.client_seq, c.ts, c.op"
"""A compaction's changes of the log ``c`` to fold into the record bases
(``accord.sync.records.advance_bases``)."""


def _stored(row: Sequence[Any]) -> StoredRecord:
    collection, key, value, seq = row
    return StoredRecord(str(collection), str(key), None if value is None else str(value), int(seq))


class _Reader:
    def __init__(self, room: str, head: int, floor: int, bases: bool) -> None:
        self._room = room
        self._head = head
        self._floor = floor
        self._bases = bases

    @property
    def head(self) -> int:
        return self._head

    @property
    def floor(self) -> int:
        return self._floor

    @property
    def bases(self) -> bool:
        return self._bases


class SqliteReader(_Reader):
    def __init__(
        self, db: aiosqlite.Connection, room: str, head: int, floor: int, bases: bool
    ) -> None:
        super().__init__(room, head, floor, bases)
        self._db = db

    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[Sequence[Any]]:
        async with self._db.execute(sql, args) as cursor:
            return list(await cursor.fetchall())

    async def rows(
        self, collection: str | None, after: RecordKey | None, limit: int
    ) -> list[StoredRecord]:
        where = ["room = ?"]
        args: list[Any] = [self._room]
        if collection is not None:
            where.append("collection = ?")
            args.append(collection)
        if after is not None:
            where.append("(collection, key) > (?, ?)")
            args.extend(after)
        sql = (
            f"SELECT collection, key, value, seq FROM records WHERE {' AND '.join(where)} "
            "ORDER BY collection, key LIMIT ?"
        )
        return [_stored(r) for r in await self._fetch(sql, [*args, limit])]

    async def row(self, collection: str, key: str) -> StoredRecord | None:
        rows = await self._fetch(
            "SELECT collection, key, value, seq FROM records "
            "WHERE room = ? AND collection = ? AND key = ?",
            (self._room, collection, key),
        )
        return _stored(rows[0]) if rows else None

    async def history(self, keys: Sequence[RecordKey], until: int) -> list[LoggedChange]:
        found: list[LoggedChange] = []
        for start in range(0, len(keys), _IN_LIMIT):
            part = keys[start : start + _IN_LIMIT]
            pairs = ",".join("(?, ?)" for _ in part)
            rows = await self._fetch(
                f"SELECT {_HISTORY_COLUMNS} FROM changes WHERE room = ? AND seq <= ? "
                f"AND (collection, key) IN (VALUES {pairs})",
                [self._room, until, *(name for pair in part for name in pair)],
            )
            found.extend(change_of(r) for r in rows)
        return sorted(found, key=lambda c: c.seq)

    async def base_states(self, keys: Sequence[RecordKey]) -> dict[RecordKey, str]:
        return await sqlite_bases(self._db, self._room, keys)


class PostgresReader(_Reader):
    def __init__(
        self, conn: asyncpg.Connection, room: str, head: int, floor: int, bases: bool
    ) -> None:
        super().__init__(room, head, floor, bases)
        self._conn = conn

    async def rows(
        self, collection: str | None, after: RecordKey | None, limit: int
    ) -> list[StoredRecord]:
        where = ["room = $1"]
        args: list[Any] = [self._room]
        if collection is not None:
            args.append(collection)
            where.append(f"collection = ${len(args)}")
        if after is not None:
            args.extend(after)
            where.append(f"(collection, key) > (${len(args) - 1}, ${len(args)})")
        args.append(limit)
        sql = (
            f"SELECT collection, key, value, seq FROM records WHERE {' AND '.join(where)} "
            f"ORDER BY collection, key LIMIT ${len(args)}"
        )
        return [_stored(tuple(r)) for r in await self._conn.fetch(sql, *args)]

    async def row(self, collection: str, key: str) -> StoredRecord | None:
        row = await self._conn.fetchrow(
            "SELECT collection, key, value, seq FROM records "
            "WHERE room = $1 AND collection = $2 AND key = $3",
            self._room,
            collection,
            key,
        )
        return None if row is None else _stored(tuple(row))

    async def history(self, keys: Sequence[RecordKey], until: int) -> list[LoggedChange]:
        rows = await self._conn.fetch(
            f"SELECT {_HISTORY_COLUMNS} FROM changes WHERE room = $1 AND seq <= $2 "
            "AND (collection, key) IN (SELECT * FROM unnest($3::text[], $4::text[])) "
            "ORDER BY seq",
            self._room,
            until,
            [c for c, _ in keys],
            [k for _, k in keys],
        )
        return [change_of(tuple(r)) for r in rows]

    async def base_states(self, keys: Sequence[RecordKey]) -> dict[RecordKey, str]:
        return await postgres_bases(self._conn, self._room, keys)


async def sqlite_bases(
    db: aiosqlite.Connection, room: str, keys: Sequence[RecordKey]
) -> dict[RecordKey, str]:
    """The record bases (``accord.sync.records``) of those of ``keys`` that have one."""
    found: dict[RecordKey, str] = {}
    for start in range(0, len(keys), _IN_LIMIT):
        part = keys[start : start + _IN_LIMIT]
        pairs = ",".join("(?, ?)" for _ in part)
        async with db.execute(
            "SELECT collection, key, state FROM record_bases WHERE room = ? "
            f"AND (collection, key) IN (VALUES {pairs})",
            [room, *(name for pair in part for name in pair)],
        ) as cursor:
            found.update({(str(r[0]), str(r[1])): str(r[2]) for r in await cursor.fetchall()})
    return found


async def postgres_bases(
    conn: asyncpg.Connection, room: str, keys: Sequence[RecordKey]
) -> dict[RecordKey, str]:
    """The record bases (``accord.sync.records``) of those of ``keys`` that have one."""
    rows = await conn.fetch(
        "SELECT collection, key, state FROM record_bases WHERE room = $1 "
        "AND (collection, key) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
        room,
        [c for c, _ in keys],
        [k for _, k in keys],
    )
    return {(str(r[0]), str(r[1])): str(r[2]) for r in rows}

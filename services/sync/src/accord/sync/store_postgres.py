"""The production store: PostgreSQL through an asyncpg pool.

A locked transaction takes its rooms' rows in ``rooms`` (``FOR UPDATE``, via
an upsert that also creates them, in name order), so pushes to one room
serialize and groups with no room in common do not block each other: BEGIN,
lock, load, save, COMMIT — five round trips.

An optimistic transaction takes two, each one statement (so each its own
transaction): ``load`` reads the rooms' heads with the marks and record
states, and ``save`` locks the rooms in name order, checks that every head is
still what ``load`` read (a room that was absent still absent) and only then
writes; it returns whether it did. Every write to a room's records and marks
raises its head, so an unchanged head means nothing the merge read went stale.
A room created meanwhile by another replica surfaces as a unique violation on
the log (same room, same seq) and counts as contended too.

Each of those reads also reads the database's incarnation (``accord.sync.epoch``),
and the optimistic save checks it is still the one read (or assumed): after
``accord epoch renew`` no group commits from what was known before. The cluster's
identity (system identifier and timeline) is read once per connection.

Writes are batched with ``unnest``. Lost connections and an unreachable server
surface as ``Unavailable``; the transaction then rolls back and nothing is
half-done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from accord.sync.epoch import Basis, RoomHead, new_incarnation
from accord.sync.migrations import CONNECT_TIMEOUT, connect_failure, migrate_connection
from accord.sync.model import (
    ConflictRow,
    LoggedChange,
    RoomClient,
    RoomRecord,
    RoomWrite,
)
from accord.sync.outbox_postgres import PostgresOutbox, outbox_args
from accord.sync.pg_cluster import Cluster
from accord.sync.records import advance_bases
from accord.sync.records_sql import FOLD_COLUMNS, PostgresReader, postgres_bases
from accord.sync.snapshot_postgres import PostgresSnapshot
from accord.sync.store import Contended
from accord.sync.store_postgres_sql import (
    _INCARNATION,
    _LOAD,
    _LOAD_WITH_HEADS,
    _LOST,
    _ROOM_HEADS,
    _SAVE,
    ACQUIRE_TIMEOUT,
    COMMAND_TIMEOUT,
    _columns,
    _cursor_floor,
    _keep_session,
    _load_rows,
    _save_args,
    _unavailable,
)
from accord.sync.store_rows import (
    CHANGE_COLUMNS,
    CONFLICT_COLUMNS,
    LockedTransaction,
    change_of,
    conflict_of,
)

log = logging.getLogger(__name__)


class _Transaction(LockedTransaction):
    """Locked: the rooms' rows are held from the start (their heads known then)."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        heads: dict[str, int],
        basis: Basis,
        floored: set[str],
    ) -> None:
        super().__init__(heads, basis)
        self._conn = conn
        self._floored = floored
        """Rooms known to keep record bases (compacted, ``rooms.bases``): their saves do.
        Locked, the rooms' rows told; checked, learnt from saves and compactions (a room's
        floor never falls), and shared by the store's transactions."""

    async def load(
        self, clients: Sequence[RoomClient], keys: Sequence[RoomRecord]
    ) -> tuple[dict[RoomClient, int], dict[RoomRecord, str]]:
        # One query, one round trip: the marks (kind 'm') and the record states ('s').
        return _load_rows(await self._conn.fetch(_LOAD, *_columns(clients, 3), *_columns(keys, 3)))

    async def logged_seqs(self, client: RoomClient, client_seqs: Sequence[int]) -> dict[int, int]:
        rows = await self._conn.fetch(
            "SELECT client_seq, seq FROM changes WHERE room = $1 AND user_id = $2 "
            "AND client_id = $3 AND client_seq = ANY($4::bigint[])",
            *client,
            list(client_seqs),
        )
        return {int(r["client_seq"]): int(r["seq"]) for r in rows}

    async def save(self, writes: Sequence[RoomWrite]) -> None:
        # One statement (data-modifying CTEs, each batched with unnest): a group
        # of pushes to any number of rooms costs the same few round trips.
        heads, conflicts, args = _save_args(writes)
        owed = outbox_args(writes, int(time.time() * 1000))
        based = any(w.room in self._floored for w in writes)
        await self._conn.execute(_SAVE[(False, conflicts, bool(owed), based)], *args, *owed)
        for room, head in heads:
            self._heads[room] = head

    async def compact(self, room: str, floor: int, keep_conflicts: int) -> None:
        # The room's row stays locked to the end of the transaction: a save to the room
        # commits before (its records are then folded) or after (it reads the new floor).
        conn = self._conn
        row = await conn.fetchrow("SELECT floor, bases FROM rooms WHERE room = $1 FOR UPDATE", room)
        if row is not None and int(row["floor"]) < floor:
            await conn.execute("UPDATE rooms SET floor = $2 WHERE room = $1", room, floor)
            if row["bases"]:
                self._floored.add(room)
                await self._advance_bases(room, int(row["floor"]), floor)
            await conn.execute("DELETE FROM changes WHERE room = $1 AND seq <= $2", room, floor)
        await conn.execute(
            "DELETE FROM conflicts WHERE room = $1 AND seq < (SELECT min(seq) FROM "
            "(SELECT seq FROM conflicts WHERE room = $1 ORDER BY seq DESC LIMIT $2) AS newest)",
            room,
            keep_conflicts,
        )

    async def _advance_bases(self, room: str, floor: int, new_floor: int) -> None:
        """The room's record bases from ``floor`` to ``new_floor`` (accord.sync.records)."""
        conn = self._conn
        rows = await conn.fetch(
            f"SELECT {FOLD_COLUMNS} FROM changes c JOIN records r ON r.room = c.room "
            "AND r.collection = c.collection AND r.key = c.key "
            "WHERE c.room = $1 AND c.seq > $2 AND c.seq <= $3 AND r.seq > $3 ORDER BY c.seq",
            room,
            floor,
            new_floor,
        )
        keys = list(dict.fromkeys((str(r[0]), str(r[1])) for r in rows))
        bases = advance_bases(rows, await postgres_bases(conn, room, keys) if keys else {})
        if bases:
            await conn.execute(
                "INSERT INTO record_bases (room, collection, key, state) SELECT $1, * FROM "
                "unnest($2::text[], $3::text[], $4::text[]) ON CONFLICT (room, collection, key) "
                "DO UPDATE SET state = EXCLUDED.state",
                room,
                *_columns(bases, 3),
            )
        # A base goes stale once the floor passes its record's seq, in the compaction whose
        # changes hold that seq: only those records are looked at.
        await conn.execute(
            "DELETE FROM record_bases b USING changes c, records r WHERE b.room = $1 "
            "AND c.room = $1 AND c.seq > $2 AND c.seq <= $3 AND r.room = $1 "
            "AND r.collection = c.collection AND r.key = c.key AND r.seq <= $3 "
            "AND b.collection = c.collection AND b.key = c.key",
            room,
            floor,
            new_floor,
        )

    async def cursor_floor(self, room: str, extensions: Sequence[str]) -> int:
        return await _cursor_floor(self._conn, room, extensions)


class _CheckedTransaction(_Transaction):
    """Optimistic: no transaction around the group; ``save`` checks the heads ``load``
    read and writes only if none moved (see the module's docstring)."""

    def __init__(
        self, conn: asyncpg.Connection, rooms: Sequence[str], cluster: Cluster, floored: set[str]
    ) -> None:
        super().__init__(conn, {}, Basis(cluster.value, ""), floored)
        self._cluster = cluster
        self._rooms = list(dict.fromkeys(rooms))
        self._read: dict[str, int] = {}
        """The heads as ``load`` read them; -1 for a room with no row."""
        self._checked: Basis | None = None
        """The basis ``save`` checks: as ``load`` read it, or as assumed."""

    def assume(self, heads: dict[str, int], basis: Basis | None = None) -> bool:
        self._read = dict(heads)
        self._heads = {room: max(head, 0) for room, head in heads.items()}
        if basis is not None:
            self._basis = self._checked = basis
        return True

    async def load(
        self, clients: Sequence[RoomClient], keys: Sequence[RoomRecord]
    ) -> tuple[dict[RoomClient, int], dict[RoomRecord, str]]:
        rows = await self._conn.fetch(
            _LOAD_WITH_HEADS, *_columns(clients, 3), *_columns(keys, 3), self._rooms
        )
        self._read = dict.fromkeys(self._rooms, -1)
        self._read.update({r["room"]: int(r["mark"]) for r in rows if r["kind"] == "h"})
        incarnation = next((r["state"] for r in rows if r["kind"] == "i"), "")
        self._basis = self._checked = Basis(self._cluster.value, incarnation)
        self._heads = {room: max(head, 0) for room, head in self._read.items()}
        return _load_rows(rows)

    async def save(self, writes: Sequence[RoomWrite]) -> None:
        heads, conflicts, args = _save_args(writes)
        owed = outbox_args(writes, int(time.time() * 1000))
        checked = self._checked
        if checked is not None and checked.cluster != self._cluster.value:
            raise Contended("the database's cluster changed since the group's rooms were read")
        based = any(w.room in self._floored for w in writes)
        was = [self._read[room] for room, _ in heads]
        incarnation = None if checked is None else checked.incarnation
        try:
            answer = await self._conn.fetchrow(
                _SAVE[(True, conflicts, bool(owed), based)], *args, was, incarnation, *owed
            )
            if answer is not None and not answer["ok"] and answer["floored"] and not based:
                # A room was compacted (by another replica, or before this one started):
                # nothing was written, and the group is saved again keeping record bases.
                self._floored.update(w.room for w in writes)
                answer = await self._conn.fetchrow(
                    _SAVE[(True, conflicts, bool(owed), True)], *args, was, incarnation, *owed
                )
        except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError) as error:
            raise Contended(str(error)) from error
        if answer is None or not answer["ok"]:
            raise Contended("a room moved on since the group read it")
        for room, head in heads:
            self._heads[room] = head


def _open(conn: asyncpg.Connection) -> bool:
    """Whether a connection taken from the pool is still open (and still taken)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # the pool took it back when it closed
        return False


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool, cluster: Cluster | None = None) -> None:
        self._pool = pool
        self._cluster = cluster or Cluster()
        self._floored: set[str] = set()
        """Rooms known to keep record bases (see ``_Transaction``)."""
        self._kept: asyncpg.Connection | None = None
        """A pooled connection kept out of the pool between optimistic groups."""
        self._kept_busy = False

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, max_size: int = 10) -> AsyncIterator[PostgresStore]:
        cluster = Cluster()
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=max_size,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                reset=_keep_session,
                init=cluster.read,
            )
        except (*_LOST, asyncpg.PostgresError) as error:
            raise connect_failure(url, error) from error
        try:
            with _unavailable():
                async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                    await migrate_connection(conn)
            store = cls(pool, cluster)
            try:
                yield store
            finally:
                await store._give_back()
        finally:
            await pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        with _unavailable():
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                yield conn

    @asynccontextmanager
    async def _group_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """The connection for an optimistic commit group: one kept out of the pool from one
        group to the next (the committer runs one group at a time), which saves the pool's
        acquire and release, with their timeouts, shield and bookkeeping: about a tenth of
        sync's CPU for a single-push group (docs/benchmarks.md, seventh session). While it
        is in use (a second group at once), from the pool. A group that raises gives it back
        to the pool, which resets or replaces it; so does a connection found closed."""
        if self._kept_busy:
            async with self._connection() as conn:
                yield conn
            return
        self._kept_busy = True
        try:
            conn = self._kept
            if conn is None or not _open(conn):
                await self._give_back()
                with _unavailable():
                    conn = self._kept = await self._pool.acquire(timeout=ACQUIRE_TIMEOUT)
            try:
                with _unavailable():
                    yield conn
            except BaseException:
                await self._give_back()
                raise
        finally:
            self._kept_busy = False

    async def _give_back(self) -> None:
        conn, self._kept = self._kept, None
        if conn is None:
            return
        try:
            await self._pool.release(conn, timeout=ACQUIRE_TIMEOUT)
        except asyncpg.InterfaceError:
            pass  # the pool took it back already: it does so with a connection that closes
        except (*_LOST, asyncpg.PostgresError) as error:
            log.warning("could not return a connection to the pool: %s", error)

    def outbox(self) -> PostgresOutbox:
        return PostgresOutbox(self._connection)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._connection() as conn:
            return list(await conn.fetch(sql, *args))

    @asynccontextmanager
    async def transaction(
        self, rooms: Sequence[str], *, optimistic: bool = False
    ) -> AsyncIterator[_Transaction]:
        if optimistic:
            async with self._group_connection() as conn:
                yield _CheckedTransaction(conn, rooms, self._cluster, self._floored)
            return
        async with self._connection() as conn, conn.transaction():
            # Rows are locked in name order, so two replicas' groups never deadlock; a new
            # row gets the room's random epoch part, kept from then on.
            rows = await conn.fetch(
                "INSERT INTO rooms (room, head, epoch) SELECT r, 0, random()::text "
                "FROM unnest($1::text[]) AS r ON CONFLICT (room) DO UPDATE SET head = rooms.head "
                f"RETURNING room, head, floor > 0 AND bases = 1 AS based, "
                f"{_INCARNATION} AS incarnation",
                sorted(set(rooms)),
            )
            basis = Basis(self._cluster.value, (rows[0]["incarnation"] or "") if rows else "")
            self._floored.update(r["room"] for r in rows if r["based"])
            heads = {r["room"]: int(r["head"]) for r in rows}
            yield _Transaction(conn, heads, basis, self._floored)

    @asynccontextmanager
    async def snapshot(self, room: str) -> AsyncIterator[PostgresSnapshot]:
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow(
                f"SELECT i.value, r.head, r.floor, r.epoch FROM (SELECT {_INCARNATION} AS value) "
                "AS i LEFT JOIN rooms r ON r.room = $1",
                room,
            )
            epoch = Basis(self._cluster.value, row["value"] or "").room(row["epoch"])
            if row["head"] is None:
                yield PostgresSnapshot(conn, room, 0, 0, epoch)
            else:
                yield PostgresSnapshot(conn, room, int(row["head"]), int(row["floor"]), epoch)

    @asynccontextmanager
    async def reader(self, room: str) -> AsyncIterator[PostgresReader]:
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow("SELECT head, floor, bases FROM rooms WHERE room = $1", room)
            if row is None:
                yield PostgresReader(conn, room, 0, 0, True)
            else:
                head, floor, bases = int(row["head"]), int(row["floor"]), bool(row["bases"])
                yield PostgresReader(conn, room, head, floor, bases)

    async def head(self, room: str) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval("SELECT head FROM rooms WHERE room = $1", room) or 0)

    async def heads(self, rooms: Sequence[str]) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT room, head FROM rooms WHERE room = ANY($1::text[])", list(rooms)
        )
        heads = dict.fromkeys(rooms, 0)
        heads.update({r["room"]: int(r["head"]) for r in rows})
        return heads

    async def room_heads(self, rooms: Sequence[str]) -> dict[str, RoomHead]:
        rows = await self._fetch(_ROOM_HEADS, list(rooms))
        incarnation = next((r["epoch"] for r in rows if r["room"] is None), None)
        basis = Basis(self._cluster.value, incarnation or "")
        heads = {room: RoomHead(0, basis.room(None)) for room in rooms}
        heads.update(
            {
                r["room"]: RoomHead(int(r["head"]), basis.room(r["epoch"]))
                for r in rows
                if r["room"] is not None
            }
        )
        return heads

    async def basis(self) -> Basis:
        async with self._connection() as conn:
            value = await conn.fetchval(f"SELECT {_INCARNATION}")
        return Basis(self._cluster.value, value or "")

    async def renew(self) -> Basis:
        value = new_incarnation()
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO incarnation (id, value) VALUES (1, $1) "
                "ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value",
                value,
            )
        return Basis(self._cluster.value, value)

    async def changes(self, room: str, after: int, until: int, limit: int) -> list[LoggedChange]:
        rows = await self._fetch(
            f"SELECT {CHANGE_COLUMNS} FROM changes WHERE room = $1 AND seq > $2 "
            "AND seq <= $3 ORDER BY seq LIMIT $4",
            room,
            after,
            until,
            limit,
        )
        return [change_of(tuple(r)) for r in rows]

    async def conflicts(self, room: str, before: int, limit: int) -> list[ConflictRow]:
        rows = await self._fetch(
            f"SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE room = $1 "
            "AND ($2 = 0 OR seq < $2) ORDER BY seq DESC, field LIMIT $3",
            room,
            before,
            limit,
        )
        return [conflict_of(tuple(r)) for r in rows]

    async def cursor(self, extension: str, room: str) -> int:
        async with self._connection() as conn:
            value = await conn.fetchval(
                "SELECT seq FROM extension_cursors WHERE extension = $1 AND room = $2",
                extension,
                room,
            )
        return int(value or 0)

    async def advance(self, extension: str, room: str, seen: int, seq: int) -> bool:
        async with self._connection() as conn:
            moved = await conn.fetchval(
                "INSERT INTO extension_cursors AS c (extension, room, seq) "
                "SELECT $1::text, $2::text, $4::bigint WHERE $3::bigint = 0 OR EXISTS "
                "(SELECT 1 FROM extension_cursors WHERE extension = $1 AND room = $2) "
                "ON CONFLICT (extension, room) DO UPDATE SET seq = EXCLUDED.seq "
                "WHERE c.seq = $3::bigint RETURNING seq",
                extension,
                room,
                seen,
                seq,
            )
        return moved is not None

    async def behind(self, extension: str, after: str, limit: int) -> list[tuple[str, int]]:
        rows = await self._fetch(
            "SELECT r.room, COALESCE(c.seq, 0) AS seq FROM rooms r "
            "LEFT JOIN extension_cursors c ON c.extension = $1 AND c.room = r.room "
            "WHERE r.room > $2 AND r.head > COALESCE(c.seq, 0) ORDER BY r.room LIMIT $3",
            extension,
            after,
            limit,
        )
        return [(r["room"], int(r["seq"])) for r in rows]

"""The production store: PostgreSQL through an asyncpg pool.

A push locks its room's row in ``rooms`` (``FOR UPDATE``, via an upsert that
also creates it), so pushes to one room serialize and pushes to different
rooms do not block each other. Writes are batched with ``unnest``. Lost
connections and an unreachable server surface as ``Unavailable``; the
transaction then rolls back and nothing is half-done.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
from accord.sync.errors import Unavailable
from accord.sync.migrations import CONNECT_TIMEOUT, migrate_connection
from accord.sync.model import (
    ClientKey,
    ConflictRow,
    LoggedChange,
    RecordKey,
    RecordRow,
    RecordValue,
)
from accord.sync.store import SnapshotBase

log = logging.getLogger(__name__)

ACQUIRE_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
_CHANGE_COLUMNS = "seq, user_id, client_id, client_seq, collection, key, ts, op, patch"
_CONFLICT_COLUMNS = (
    "seq, field, collection, key, user_id, client_id, client_seq, ts, "
    "winner_ts, winner_client_id, winner_user_id, winner_client_seq"
)
_LOST = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except _LOST as error:
        raise Unavailable(f"database unavailable: {error}") from error


def _logged(row: Any) -> LoggedChange:
    return LoggedChange(
        seq=row["seq"],
        user_id=row["user_id"],
        client_id=row["client_id"],
        client_seq=row["client_seq"],
        collection=row["collection"],
        key=row["key"],
        ts=row["ts"],
        op_json=row["op"],
        patch_json=row["patch"],
    )


_SAVE = f"""
WITH logged AS (
    INSERT INTO changes (room, {_CHANGE_COLUMNS}) SELECT $1, * FROM unnest(
        $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
        $8::bigint[], $9::text[], $10::text[])
), stored AS (
    INSERT INTO records (room, collection, key, state, value, seq)
    SELECT $1, * FROM unnest($11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[])
    ON CONFLICT (room, collection, key) DO UPDATE SET
        state = EXCLUDED.state, value = EXCLUDED.value, seq = EXCLUDED.seq
), headed AS (
    UPDATE rooms SET head = $16 WHERE room = $1 AND $16::bigint IS NOT NULL
), marked AS (
    INSERT INTO clients (room, user_id, client_id, high_water)
    SELECT $1, * FROM unnest($17::text[], $18::text[], $19::bigint[])
    ON CONFLICT (room, user_id, client_id) DO UPDATE SET
        high_water = GREATEST(clients.high_water, EXCLUDED.high_water)
)
INSERT INTO conflicts (room, {_CONFLICT_COLUMNS}) SELECT $1, * FROM unnest(
    $20::bigint[], $21::text[], $22::text[], $23::text[], $24::text[], $25::text[],
    $26::bigint[], $27::bigint[], $28::bigint[], $29::text[], $30::text[], $31::bigint[])
ON CONFLICT DO NOTHING
"""


def _conflict(row: Any) -> ConflictRow:
    return ConflictRow(
        seq=row["seq"],
        collection=row["collection"],
        key=row["key"],
        field=row["field"],
        user_id=row["user_id"],
        client_id=row["client_id"],
        client_seq=row["client_seq"],
        ts=row["ts"],
        winner=(
            row["winner_ts"],
            row["winner_client_id"],
            row["winner_user_id"],
            row["winner_client_seq"],
        ),
    )


class _Transaction:
    def __init__(self, conn: asyncpg.Connection, room: str, head: int) -> None:
        self._conn = conn
        self._room = room
        self._head = head

    async def head(self) -> int:
        return self._head

    async def high_waters(self, clients: Sequence[ClientKey]) -> dict[ClientKey, int]:
        rows = await self._conn.fetch(
            "SELECT c.user_id, c.client_id, c.high_water FROM clients c "
            "JOIN unnest($2::text[], $3::text[]) AS k(user_id, client_id) "
            "ON c.user_id = k.user_id AND c.client_id = k.client_id WHERE c.room = $1",
            self._room,
            [c[0] for c in clients],
            [c[1] for c in clients],
        )
        return {(r["user_id"], r["client_id"]): int(r["high_water"]) for r in rows}

    async def logged_seqs(
        self, user_id: str, client_id: str, client_seqs: Sequence[int]
    ) -> dict[int, int]:
        rows = await self._conn.fetch(
            "SELECT client_seq, seq FROM changes WHERE room = $1 AND user_id = $2 "
            "AND client_id = $3 AND client_seq = ANY($4::bigint[])",
            self._room,
            user_id,
            client_id,
            list(client_seqs),
        )
        return {int(r["client_seq"]): int(r["seq"]) for r in rows}

    async def load_states(self, keys: Sequence[RecordKey]) -> dict[RecordKey, str]:
        rows = await self._conn.fetch(
            "SELECT r.collection, r.key, r.state FROM records r "
            "JOIN unnest($2::text[], $3::text[]) AS k(collection, key) "
            "ON r.collection = k.collection AND r.key = k.key WHERE r.room = $1",
            self._room,
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {(r["collection"], r["key"]): r["state"] for r in rows}

    async def save(
        self,
        changes: Sequence[LoggedChange],
        records: Sequence[RecordRow],
        high_waters: Sequence[tuple[str, str, int]],
        conflicts: Sequence[ConflictRow] = (),
    ) -> None:
        # One statement (data-modifying CTEs, each batched with unnest): a push
        # costs the same few round trips whatever its size.
        head = changes[-1].seq if changes else None
        await self._conn.execute(
            _SAVE,
            self._room,
            [c.seq for c in changes],
            [c.user_id for c in changes],
            [c.client_id for c in changes],
            [c.client_seq for c in changes],
            [c.collection for c in changes],
            [c.key for c in changes],
            [c.ts for c in changes],
            [c.op_json for c in changes],
            [c.patch_json for c in changes],
            [r.collection for r in records],
            [r.key for r in records],
            [r.state_json for r in records],
            [r.value_json for r in records],
            [r.seq for r in records],
            head,
            [m[0] for m in high_waters],
            [m[1] for m in high_waters],
            [m[2] for m in high_waters],
            [c.seq for c in conflicts],
            [c.field for c in conflicts],
            [c.collection for c in conflicts],
            [c.key for c in conflicts],
            [c.user_id for c in conflicts],
            [c.client_id for c in conflicts],
            [c.client_seq for c in conflicts],
            [c.ts for c in conflicts],
            [c.winner[0] for c in conflicts],
            [c.winner[1] for c in conflicts],
            [c.winner[2] for c in conflicts],
            [c.winner[3] for c in conflicts],
        )

    async def compact(self, floor: int, keep_conflicts: int) -> None:
        conn, room = self._conn, self._room
        raised = await conn.fetchval(
            "UPDATE rooms SET floor = $2 WHERE room = $1 AND floor < $2 RETURNING floor",
            room,
            floor,
        )
        if raised is not None:
            await conn.execute("DELETE FROM changes WHERE room = $1 AND seq <= $2", room, floor)
        await conn.execute(
            "DELETE FROM conflicts WHERE room = $1 AND seq < (SELECT min(seq) FROM "
            "(SELECT seq FROM conflicts WHERE room = $1 ORDER BY seq DESC LIMIT $2) AS newest)",
            room,
            keep_conflicts,
        )


class _Snapshot(SnapshotBase):
    def __init__(self, conn: asyncpg.Connection, room: str, head: int, floor: int) -> None:
        super().__init__(head, floor)
        self._conn = conn
        self._room = room

    async def records(self, page_size: int) -> AsyncIterator[list[RecordValue]]:
        # Keyset paging on the primary key: each page is an index range scan.
        query = (
            "SELECT collection, key, value FROM records WHERE room = $1 "
            "AND value IS NOT NULL{after} ORDER BY collection, key LIMIT $2"
        )
        first, rest = (
            query.format(after=""),
            query.format(after=" AND (collection, key) > ($3, $4)"),
        )
        after: tuple[str, str] | None = None
        while True:
            with _unavailable():
                if after is None:
                    rows = await self._conn.fetch(first, self._room, page_size)
                else:
                    rows = await self._conn.fetch(rest, self._room, page_size, *after)
            if not rows:
                return
            yield [RecordValue(r["collection"], r["key"], r["value"]) for r in rows]
            after = (rows[-1]["collection"], rows[-1]["key"])


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, max_size: int = 10) -> AsyncIterator[PostgresStore]:
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=max_size,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
            )
        except (*_LOST, asyncpg.PostgresError) as error:
            raise Unavailable(f"cannot connect to PostgreSQL: {error}") from error
        try:
            with _unavailable():
                async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                    await migrate_connection(conn)
            yield cls(pool)
        finally:
            await pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        with _unavailable():
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                yield conn

    @asynccontextmanager
    async def transaction(self, room: str) -> AsyncIterator[_Transaction]:
        async with self._connection() as conn, conn.transaction():
            head = await conn.fetchval(
                "INSERT INTO rooms (room, head) VALUES ($1, 0) "
                "ON CONFLICT (room) DO UPDATE SET head = rooms.head RETURNING head",
                room,
            )
            yield _Transaction(conn, room, int(head))

    @asynccontextmanager
    async def snapshot(self, room: str) -> AsyncIterator[_Snapshot]:
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow("SELECT head, floor FROM rooms WHERE room = $1", room)
            head, floor = (int(row["head"]), int(row["floor"])) if row else (0, 0)
            yield _Snapshot(conn, room, head, floor)

    async def head(self, room: str) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval("SELECT head FROM rooms WHERE room = $1", room) or 0)

    async def changes(self, room: str, after: int, until: int, limit: int) -> list[LoggedChange]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE room = $1 AND seq > $2 "
                "AND seq <= $3 ORDER BY seq LIMIT $4",
                room,
                after,
                until,
                limit,
            )
        return [_logged(r) for r in rows]

    async def conflicts(self, room: str, before: int, limit: int) -> list[ConflictRow]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_CONFLICT_COLUMNS} FROM conflicts WHERE room = $1 "
                "AND ($2 = 0 OR seq < $2) ORDER BY seq DESC, field LIMIT $3",
                room,
                before,
                limit,
            )
        return [_conflict(r) for r in rows]

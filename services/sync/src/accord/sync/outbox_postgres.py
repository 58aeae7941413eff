"""The webhook outbox on PostgreSQL (see ``accord.sync.outbox``).

Rows are written by the save statement of ``store_postgres`` (``outbox_cte``, with
its arrays from ``outbox_args``); the rest are short statements of their own, off
the push path, on the store's pool (``PostgresStore.outbox``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
from accord.sync.model import RoomWrite
from accord.sync.outbox import Backlog, Batch, Head, Row, merge_backlog

Connect = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]


def outbox_cte(first: int, only: str) -> str:
    """The save statement's CTE appending outbox rows from parameters ``$first`` to
    ``$first+5``; ``only`` is its guard (the optimistic save's check)."""
    p = [f"${first + i}" for i in range(6)]
    return f"""outboxed AS (
    INSERT INTO webhook_outbox (endpoint, room, first_seq, last_seq, changes, created)
    SELECT e, r, f, l, c, {p[5]}::bigint FROM unnest(
        {p[0]}::text[], {p[1]}::text[], {p[2]}::bigint[], {p[3]}::bigint[], {p[4]}::text[]
    ) AS o(e, r, f, l, c){only}
)"""


def outbox_args(writes: Sequence[RoomWrite], now: int) -> list[Any]:
    """The arrays of ``outbox_cte``; empty when no write owes an endpoint anything."""
    rows = [(w.room, e) for w in writes for e in w.outbox]
    if not rows:
        return []
    return [
        [e.endpoint for _, e in rows],
        [room for room, _ in rows],
        [e.first_seq for _, e in rows],
        [e.last_seq for _, e in rows],
        [e.changes_json for _, e in rows],
        now,
    ]


# The head of each (endpoint, room) is found by walking the primary key from one room to the
# next (a loose index scan: one probe per room with a backlog), not by testing every row
# against its room's minimum: with a receiver down and 200,000 rows queued, that test took
# 2.4 s per poll, and every replica polls each WEBHOOK_POLL_INTERVAL.
_HEADS = """
WITH RECURSIVE wanted(endpoint, ms) AS (
    SELECT e, ms FROM unnest($1::text[], $2::bigint[]) AS u(e, ms)
    WHERE NOT EXISTS (SELECT 1 FROM webhook_parked p WHERE p.endpoint = u.e)
), heads(endpoint, room, first_seq) AS (
    SELECT f.endpoint, f.room, f.first_seq FROM wanted w CROSS JOIN LATERAL (
        SELECT o.endpoint, o.room, o.first_seq FROM webhook_outbox o
        WHERE o.endpoint = w.endpoint ORDER BY o.room, o.first_seq LIMIT 1
    ) AS f
    UNION ALL
    SELECT n.endpoint, n.room, n.first_seq FROM heads h CROSS JOIN LATERAL (
        SELECT o.endpoint, o.room, o.first_seq FROM webhook_outbox o
        WHERE o.endpoint = h.endpoint AND o.room > h.room ORDER BY o.room, o.first_seq LIMIT 1
    ) AS n
), ready AS (
    SELECT o.endpoint, o.room, o.first_seq, w.ms FROM heads h
    JOIN webhook_outbox o
      ON o.endpoint = h.endpoint AND o.room = h.room AND o.first_seq = h.first_seq
    JOIN wanted w ON w.endpoint = o.endpoint
    WHERE o.due <= $3 AND o.leased_until <= $3
    ORDER BY o.due LIMIT $4
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE webhook_outbox o
SET attempts = o.attempts + 1, lease = $5, leased_until = $3 + ready.ms
FROM ready
WHERE o.endpoint = ready.endpoint AND o.room = ready.room AND o.first_seq = ready.first_seq
RETURNING o.endpoint, o.room, o.first_seq, o.attempts, o.message_id, o.batch_until
"""


class PostgresOutbox:
    def __init__(self, connection: Connect) -> None:
        self._connection = connection
        """The store's: a pooled connection, its loss raised as ``Unavailable``."""

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._connection() as conn:
            return list(await conn.fetch(sql, *args))

    async def _execute(self, sql: str, *args: Any) -> None:
        async with self._connection() as conn:
            await conn.execute(sql, *args)

    async def lease(
        self, leases: Mapping[str, int], now: int, limit: int, token: str
    ) -> list[Head]:
        rows = await self._fetch(_HEADS, list(leases), list(leases.values()), now, limit, token)
        return [
            Head(
                r["endpoint"],
                r["room"],
                int(r["first_seq"]),
                int(r["attempts"]),
                r["message_id"],
                None if r["batch_until"] is None else int(r["batch_until"]),
            )
            for r in rows
        ]

    async def rows(
        self, endpoint: str, room: str, first_seq: int, until: int | None, limit: int
    ) -> list[Row]:
        rows = await self._fetch(
            "SELECT first_seq, last_seq, changes FROM webhook_outbox "
            "WHERE endpoint = $1 AND room = $2 AND first_seq >= $3 "
            "AND ($4::bigint IS NULL OR first_seq <= $4) ORDER BY first_seq LIMIT $5",
            endpoint,
            room,
            first_seq,
            until,
            limit,
        )
        return [Row(int(r["first_seq"]), int(r["last_seq"]), r["changes"]) for r in rows]

    async def freeze(self, head: Head, token: str, until: int, message_id: str) -> None:
        await self._execute(
            "UPDATE webhook_outbox SET batch_until = $5, message_id = $6 "
            "WHERE endpoint = $1 AND room = $2 AND first_seq = $3 AND lease = $4",
            head.endpoint,
            head.room,
            head.first_seq,
            token,
            until,
            message_id,
        )

    async def delete(self, batch: Batch) -> None:
        await self._execute(
            "DELETE FROM webhook_outbox WHERE endpoint = $1 AND room = $2 "
            "AND first_seq >= $3 AND first_seq <= $4",
            batch.endpoint,
            batch.room,
            batch.first_seq,
            batch.batch_until,
        )

    async def retry(self, batch: Batch, due: int, error: str) -> None:
        await self._execute(
            "UPDATE webhook_outbox SET due = $5, last_error = $6, lease = NULL, "
            "leased_until = 0 WHERE endpoint = $1 AND room = $2 AND first_seq = $3 "
            "AND lease = $4",
            batch.endpoint,
            batch.room,
            batch.first_seq,
            batch.lease,
            due,
            error,
        )

    async def park(self, endpoint: str, now: int, reason: str) -> None:
        await self._execute(
            "INSERT INTO webhook_parked (endpoint, parked_at, reason) VALUES ($1, $2, $3) "
            "ON CONFLICT (endpoint) DO NOTHING",
            endpoint,
            now,
            reason,
        )

    async def resume(self, endpoint: str) -> bool:
        async with self._connection() as conn, conn.transaction():
            parked = await conn.fetchval(
                "DELETE FROM webhook_parked WHERE endpoint = $1 RETURNING endpoint", endpoint
            )
            await conn.execute(
                "UPDATE webhook_outbox SET attempts = 0, due = 0 "
                "WHERE endpoint = $1 AND (attempts > 0 OR due > 0)",
                endpoint,
            )
        return parked is not None

    async def backlog(self) -> list[Backlog]:
        async with self._connection() as conn:
            counted = await conn.fetch(
                "SELECT endpoint, count(*) AS n, sum(last_seq - first_seq + 1) AS changes, "
                "count(DISTINCT room) AS rooms, min(created) AS oldest, "
                "max(attempts) AS attempts, max(last_error) AS last_error "
                "FROM webhook_outbox GROUP BY endpoint"
            )
            parked = await conn.fetch("SELECT endpoint, parked_at, reason FROM webhook_parked")
        return merge_backlog(
            [
                (
                    r["endpoint"],
                    int(r["n"]),
                    int(r["changes"]),
                    int(r["rooms"]),
                    int(r["oldest"]),
                    int(r["attempts"]),
                    r["last_error"] or "",
                )
                for r in counted
            ],
            [(r["endpoint"], int(r["parked_at"]), r["reason"]) for r in parked],
        )

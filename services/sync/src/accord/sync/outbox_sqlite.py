"""The webhook outbox on SQLite (see ``accord.sync.outbox``).

Rows are written by ``store_sqlite``'s save (``save_outbox``, in its transaction);
the rest run on the store's writer connection, each in a transaction of its own
under the store's write lock (``SqliteStore.outbox``): SQLite has one writer, so a
claim never meets another one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager

import aiosqlite
from accord.sync.model import RoomWrite
from accord.sync.outbox import Backlog, Batch, Head, Row, merge_backlog

Write = Callable[[], AbstractAsyncContextManager[aiosqlite.Connection]]
Read = Callable[[str, tuple[str | int, ...]], Awaitable[list[aiosqlite.Row]]]
_IN_LIMIT = 500

# Each (endpoint, room)'s head found by stepping through the primary key from one room to
# the next (one index probe per room with a backlog), not by testing every queued row against
# its room's minimum: with 200,000 rows queued that took 300 ms per poll, all of it holding
# the store's one writer (pushes waited). ``{wanted}``: one ``(?)`` per endpoint.
_HEADS = """
WITH RECURSIVE wanted(endpoint) AS (VALUES {wanted}),
heads(endpoint, room) AS (
    SELECT w.endpoint, (SELECT min(o.room) FROM webhook_outbox o WHERE o.endpoint = w.endpoint)
    FROM wanted w WHERE NOT EXISTS (SELECT 1 FROM webhook_parked p WHERE p.endpoint = w.endpoint)
    UNION ALL
    SELECT h.endpoint, (SELECT min(o.room) FROM webhook_outbox o
                        WHERE o.endpoint = h.endpoint AND o.room > h.room)
    FROM heads h WHERE h.room IS NOT NULL
)
SELECT o.endpoint, o.room, o.first_seq, o.attempts, o.message_id, o.batch_until
FROM heads h JOIN webhook_outbox o ON o.endpoint = h.endpoint AND o.room = h.room
    AND o.first_seq = (SELECT min(x.first_seq) FROM webhook_outbox x
                       WHERE x.endpoint = h.endpoint AND x.room = h.room)
WHERE o.due <= ? AND o.leased_until <= ?
ORDER BY o.due LIMIT ?
"""


async def save_outbox(db: aiosqlite.Connection, writes: Sequence[RoomWrite]) -> None:
    """Append the outbox rows of ``writes`` (no statement when there are none)."""
    rows = [
        (e.endpoint, w.room, e.first_seq, e.last_seq, e.changes_json)
        for w in writes
        for e in w.outbox
    ]
    if rows:
        now = int(time.time() * 1000)
        await db.executemany(
            "INSERT INTO webhook_outbox (endpoint, room, first_seq, last_seq, changes, created) "
            f"VALUES (?, ?, ?, ?, ?, {now})",
            rows,
        )


class SqliteOutbox:
    def __init__(self, write: Write, read: Read) -> None:
        self._write = write
        """The store's: its writer, locked, inside BEGIN IMMEDIATE ... COMMIT."""
        self._read = read
        """The store's: one query on its reader connection (committed data; no writer held)."""

    async def lease(
        self, leases: Mapping[str, int], now: int, limit: int, token: str
    ) -> list[Head]:
        names = list(leases)[:_IN_LIMIT]
        if not names:
            return []
        async with self._write() as db:
            async with db.execute(
                _HEADS.format(wanted=", ".join(["(?)"] * len(names))),
                (*names, now, now, limit),
            ) as cursor:
                found = list(await cursor.fetchall())
            await db.executemany(
                "UPDATE webhook_outbox SET attempts = attempts + 1, lease = ?, leased_until = ? "
                "WHERE endpoint = ? AND room = ? AND first_seq = ?",
                [(token, now + leases[str(r[0])], r[0], r[1], r[2]) for r in found],
            )
        return [
            Head(
                str(r[0]),
                str(r[1]),
                int(r[2]),
                int(r[3]) + 1,
                None if r[4] is None else str(r[4]),
                None if r[5] is None else int(r[5]),
            )
            for r in found
        ]

    async def rows(
        self, endpoint: str, room: str, first_seq: int, until: int | None, limit: int
    ) -> list[Row]:
        async with (
            self._write() as db,
            db.execute(
                "SELECT first_seq, last_seq, changes FROM webhook_outbox "
                "WHERE endpoint = ? AND room = ? AND first_seq >= ? "
                "AND (? IS NULL OR first_seq <= ?) ORDER BY first_seq LIMIT ?",
                (endpoint, room, first_seq, until, until, limit),
            ) as cursor,
        ):
            return [Row(int(r[0]), int(r[1]), str(r[2])) for r in await cursor.fetchall()]

    async def freeze(self, head: Head, token: str, until: int, message_id: str) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE webhook_outbox SET batch_until = ?, message_id = ? "
                "WHERE endpoint = ? AND room = ? AND first_seq = ? AND lease = ?",
                (until, message_id, head.endpoint, head.room, head.first_seq, token),
            )

    async def delete(self, batch: Batch) -> None:
        async with self._write() as db:
            await db.execute(
                "DELETE FROM webhook_outbox WHERE endpoint = ? AND room = ? "
                "AND first_seq >= ? AND first_seq <= ?",
                (batch.endpoint, batch.room, batch.first_seq, batch.batch_until),
            )

    async def retry(self, batch: Batch, due: int, error: str) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE webhook_outbox SET due = ?, last_error = ?, lease = NULL, "
                "leased_until = 0 WHERE endpoint = ? AND room = ? AND first_seq = ? AND lease = ?",
                (due, error, batch.endpoint, batch.room, batch.first_seq, batch.lease),
            )

    async def park(self, endpoint: str, now: int, reason: str) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT OR IGNORE INTO webhook_parked (endpoint, parked_at, reason) "
                "VALUES (?, ?, ?)",
                (endpoint, now, reason),
            )

    async def resume(self, endpoint: str) -> bool:
        async with self._write() as db:
            async with db.execute(
                "DELETE FROM webhook_parked WHERE endpoint = ?", (endpoint,)
            ) as cursor:
                parked = cursor.rowcount > 0
            await db.execute(
                "UPDATE webhook_outbox SET attempts = 0, due = 0 "
                "WHERE endpoint = ? AND (attempts > 0 OR due > 0)",
                (endpoint,),
            )
        return parked

    async def backlog(self) -> list[Backlog]:
        # On the reader: counting a large backlog (every 10 s, for the gauges) must not hold
        # the one writer that every push waits for.
        counted = await self._read(
            "SELECT endpoint, count(*), sum(last_seq - first_seq + 1), count(DISTINCT room), "
            "min(created), max(attempts), max(last_error) FROM webhook_outbox "
            "GROUP BY endpoint",
            (),
        )
        parked = await self._read("SELECT endpoint, parked_at, reason FROM webhook_parked", ())
        return merge_backlog(
            [
                (str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), str(r[6] or ""))
                for r in counted
            ],
            [(str(r[0]), int(r[1]), str(r[2])) for r in parked],
        )

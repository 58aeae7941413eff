"""The production store's snapshots: a room's records as of one repeatable-read transaction.

``PostgresStore.snapshot`` opens them (``accord.sync.store_postgres``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from accord.sync.epoch import RoomEpoch
from accord.sync.model import RecordValue
from accord.sync.store import SnapshotBase
from accord.sync.store_postgres_sql import _unavailable


class PostgresSnapshot(SnapshotBase):
    """Reads records page by page inside one repeatable-read transaction."""

    def __init__(
        self, conn: asyncpg.Connection, room: str, head: int, floor: int, epoch: RoomEpoch
    ) -> None:
        super().__init__(head, floor, epoch)
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

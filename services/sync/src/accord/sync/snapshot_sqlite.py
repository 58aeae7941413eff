"""The embedded store's snapshots: a room's records as of one read transaction.

``SqliteStore.snapshot`` opens them (``accord.sync.store_sqlite``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiosqlite
from accord.sync.epoch import RoomEpoch
from accord.sync.model import RecordValue
from accord.sync.store import SnapshotBase
from accord.sync.store_sqlite_sql import _unavailable


class SqliteSnapshot(SnapshotBase):
    """Reads records page by page on its own connection inside one read transaction."""

    def __init__(
        self, db: aiosqlite.Connection, room: str, head: int, floor: int, epoch: RoomEpoch
    ) -> None:
        super().__init__(head, floor, epoch)
        self._db = db
        self._room = room

    async def records(self, page_size: int) -> AsyncIterator[list[RecordValue]]:
        # Keyset paging on the primary key: each page is an index range scan.
        query = (
            "SELECT collection, key, value FROM records WHERE room = ? "
            "AND value IS NOT NULL{after} ORDER BY collection, key LIMIT ?"
        )
        after: tuple[str, str] | None = None
        args: tuple[str | int, ...]
        while True:
            if after is None:
                sql, args = query.format(after=""), (self._room, page_size)
            else:
                sql = query.format(after=" AND (collection, key) > (?, ?)")
                args = (self._room, *after, page_size)
            with _unavailable():
                async with self._db.execute(sql, args) as cursor:
                    rows = list(await cursor.fetchall())
            if not rows:
                return
            yield [RecordValue(str(r[0]), str(r[1]), str(r[2])) for r in rows]
            after = (str(rows[-1][0]), str(rows[-1][1]))


class LoadedSnapshot(SnapshotBase):
    """An in-memory database's snapshot, read at once (the data is in memory anyway)."""

    def __init__(self, head: int, floor: int, epoch: RoomEpoch, records: list[RecordValue]) -> None:
        super().__init__(head, floor, epoch)
        self._records = records

    async def records(self, page_size: int) -> AsyncIterator[list[RecordValue]]:
        for start in range(0, len(self._records), page_size):
            yield self._records[start : start + page_size]

"""The engine's reads (``Reads``, which ``Engine`` extends with the push path), and the
catch-up of one room (``Reads.pull``): a snapshot or the log's changes, in pages cut by
count and by bytes (``split_by_bytes``), to stay inside gRPC's message limit.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from accord.sync import records
from accord.sync.epoch import RoomHead
from accord.sync.errors import OutOfRange
from accord.sync.model import ConflictRow, LoggedChange, RecordKey, RecordValue, SnapshotPage
from accord.sync.store import Store

DEFAULT_PAGE = 500
MAX_PAGE = 10_000
PAGE_BYTES = 4 * 1024 * 1024
"""A page is also cut at this many bytes of JSON, to stay well inside gRPC's message limit."""

T = TypeVar("T")


def split_by_bytes(
    items: list[T], size: Callable[[T], int], budget: int = PAGE_BYTES
) -> list[list[T]]:
    """``items`` in order, cut into runs of at most ``budget`` bytes (at least one item each)."""
    pages: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item in items:
        cost = size(item)
        if current and used + cost > budget:
            pages.append(current)
            current, used = [], 0
        current.append(item)
        used += cost
    if current:
        pages.append(current)
    return pages


def change_bytes(change: LoggedChange) -> int:
    return len(change.patch_json) + len(change.collection) + len(change.key) + 64


def record_bytes(record: RecordValue) -> int:
    return len(record.value_json) + len(record.collection) + len(record.key) + 16


@dataclass(frozen=True)
class PullHead:
    """The first thing a pull yields: the head it runs up to and the room's epoch."""

    head: int
    epoch: str


PullItem = PullHead | SnapshotPage | list[LoggedChange]
"""What a pull yields: first the head, then snapshot pages or change pages."""


class Reads:
    """What ``Engine`` reads straight from its store: heads, records, changes, pulls."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def conflicts(self, room: str, before: int, limit: int) -> list[ConflictRow]:
        return await self._store.conflicts(room, before, limit)

    async def head(self, room: str) -> int:
        return await self._store.head(room)

    async def records_page(
        self,
        room: str,
        as_of: int,
        collection: str | None,
        after: RecordKey | None,
        limit: int,
    ) -> records.RecordsPage:
        """A page of the room's records as of seq ``as_of`` (0: its head); see
        ``accord.sync.records``."""
        async with self._store.reader(room) as reader:
            return await records.read_page(reader, as_of, collection, after, limit)

    async def record(self, room: str, collection: str, key: str) -> records.StoredRecord | None:
        """The record as it is now (None: never written); its value None when deleted."""
        async with self._store.reader(room) as reader:
            return await reader.row(collection, key)

    async def heads(self, rooms: Sequence[str]) -> dict[str, int]:
        return await self._store.heads(rooms)

    async def room_heads(self, rooms: Sequence[str]) -> dict[str, RoomHead]:
        """The head and epoch of each of ``rooms``."""
        return await self._store.room_heads(rooms)

    async def changes(self, room: str, after: int, until: int, limit: int) -> list[LoggedChange]:
        return await self._store.changes(room, after, until, limit)

    async def pull(
        self,
        room: str,
        since: int,
        until: int,
        page_size: int,
        changes_only: bool,
        epoch: str = "",
    ) -> AsyncGenerator[PullItem, None]:
        """Catch-up for one room; see docs/merge.md for when a snapshot is sent. A
        ``since`` read under another ``epoch`` than the room's (``RoomEpoch.accepts``)
        belongs to another history: it gets a snapshot, even an empty one."""
        page = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        async with self._store.snapshot(room) as snapshot:
            head, current = snapshot.head, snapshot.epoch.current
            foreign = since > 0 and not snapshot.epoch.accepts(epoch)
            if foreign and changes_only:
                raise OutOfRange(f"epoch {epoch!r} is not the epoch of room {room}")
            if not changes_only and (
                since == 0 or foreign or since > head or since < snapshot.floor
            ):
                yield PullHead(head, current)
                if head == 0 and since == 0:
                    return
                pending: list[RecordValue] | None = None
                async for records in snapshot.records(page):
                    for part in split_by_bytes(records, record_bytes):
                        if pending is not None:
                            yield SnapshotPage(head, pending, False)
                        pending = part
                yield SnapshotPage(head, pending or [], True)
                return
        if since > head:
            raise OutOfRange(f"since {since} is ahead of head {head}")
        target = until if 0 < until <= head else head
        yield PullHead(target, current)
        cursor = since
        while cursor < target:
            changes = await self._store.changes(room, cursor, target, page)
            if not changes or changes[0].seq != cursor + 1:
                raise OutOfRange(f"the log no longer holds seq {cursor + 1}")
            for run in split_by_bytes(changes, change_bytes):
                yield run
            cursor = changes[-1].seq

"""A room's records as of one seq, page by page (the server API's consistent listing).

A listing reads its first page at the room's head S and every later page at
that same S, however far the head has moved on meanwhile. Each page is read
in one read transaction (``RecordReader``), in (collection, key) order:

- a record whose row was last changed at a seq <= S is, as stored, exactly
  what it was at S (nothing has touched it since);
- a record changed after S (its row's seq > S, deleted ones included) is
  rebuilt by merging, from an empty state, the ops the log holds for it with
  seq <= S, in seq order, through the same ``merge`` functions a push uses:
  the state of a record is a function of the changes merged into it, so this
  is its state at S; one with no change up to S did not exist then and is left
  out;
- that needs the record's whole history in the log: once compaction has
  raised the room's floor above 0, such a record cannot be rebuilt and the
  page fails with ``OutOfRange`` (the caller restarts the listing at the new
  head).

Records are never removed from the records table (a delete leaves the row
with no value), so every record that existed at S has a row to be found by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from accord.common import jsontext
from accord.sync import merge
from accord.sync.errors import OutOfRange
from accord.sync.lattice import Json, compact_json
from accord.sync.model import LoggedChange, RecordKey, RecordValue

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
PAGE_BYTES = 4 * 1024 * 1024
"""A page is also cut after this many bytes of records (at least one record each)."""


@dataclass(frozen=True)
class StoredRecord:
    """A record's row: its visible value (None: deleted) and the seq that last changed it."""

    collection: str
    key: str
    value_json: str | None
    seq: int


class RecordReader(Protocol):
    """One read transaction over one room's records and log."""

    @property
    def head(self) -> int: ...

    @property
    def floor(self) -> int: ...

    async def rows(
        self, collection: str | None, after: RecordKey | None, limit: int
    ) -> list[StoredRecord]:
        """Up to ``limit`` rows (deleted records included) after ``after`` in
        (collection, key) order, only of ``collection`` when given."""
        ...

    async def row(self, collection: str, key: str) -> StoredRecord | None: ...

    async def history(self, keys: Sequence[RecordKey], until: int) -> list[LoggedChange]:
        """The log's changes to ``keys`` with ``seq <= until``, in seq order."""
        ...


@dataclass(frozen=True)
class RecordsPage:
    seq: int
    records: list[RecordValue]
    more: bool


def op_from_json(text: str) -> merge.Op:
    """A logged op (as ``wire`` stores it) back as the merge op."""
    raw: dict[str, Any] = jsontext.loads(text)
    kind = raw["kind"]
    values: tuple[Json, ...] = tuple(raw.get("values", ()))
    if kind == "set":
        return merge.SetOp(raw["fields"])
    if kind == "delete":
        return merge.DeleteOp()
    if kind == "incr":
        return merge.IncrOp(raw["field"], int(raw["by"]))
    if kind == "add":
        return merge.AddOp(raw["field"], values)
    if kind == "remove":
        seen = raw.get("seen")
        return merge.RemoveOp(raw["field"], values, None if seen is None else int(seen))
    if kind == "insert":
        return merge.InsertOp(raw["field"], raw.get("after"), values)
    if kind == "remove_items":
        return merge.RemoveItemsOp(raw["field"], tuple(raw["ids"]))
    raise ValueError(f"unknown logged op kind {kind!r}")


def rebuild(changes: Sequence[LoggedChange]) -> str | None:
    """The visible value (JSON) of a record made of ``changes`` (its whole history, in
    seq order); None when that leaves no record."""
    state = merge.RecordState()
    for change in changes:
        clock = (change.ts, change.client_id, change.user_id, change.client_seq)
        state, _ = merge.merge(state, clock, op_from_json(change.op_json), change.seq)
    shown = merge.visible(state)
    return None if shown is None else compact_json(shown)


async def _as_of(reader: RecordReader, rows: list[StoredRecord], seq: int) -> list[RecordValue]:
    """``rows`` as they were at ``seq`` (those that existed), in order."""
    changed = [(r.collection, r.key) for r in rows if r.seq > seq]
    rebuilt: dict[RecordKey, str | None] = {}
    if changed:
        if reader.floor > 0:
            raise OutOfRange(
                f"records changed after seq {seq} can no longer be read as of it "
                "(the log was compacted): restart paging"
            )
        history: dict[RecordKey, list[LoggedChange]] = {key: [] for key in changed}
        for change in await reader.history(changed, seq):
            history[(change.collection, change.key)].append(change)
        rebuilt = {key: rebuild(changes) for key, changes in history.items()}
    values = []
    for row in rows:
        value = row.value_json if row.seq <= seq else rebuilt[(row.collection, row.key)]
        if value is not None:
            values.append(RecordValue(row.collection, row.key, value))
    return values


async def read_page(
    reader: RecordReader,
    as_of: int,
    collection: str | None,
    after: RecordKey | None,
    limit: int,
) -> RecordsPage:
    """Up to ``limit`` records after ``after`` as of seq ``as_of`` (0: the head)."""
    head = reader.head
    seq = as_of or head
    if seq > head:
        raise OutOfRange(f"seq {seq} is ahead of the room's head {head}: restart paging")
    found: list[RecordValue] = []
    cursor = after
    used = 0
    # One more than asked for, to know whether another page follows.
    while len(found) <= limit and used <= PAGE_BYTES:
        rows = await reader.rows(collection, cursor, limit + 1)
        values = await _as_of(reader, rows, seq)
        found.extend(values)
        used += sum(_size(v) for v in values)
        if len(rows) <= limit:
            break
        cursor = (rows[-1].collection, rows[-1].key)
    page: list[RecordValue] = []
    used = 0
    for value in found[:limit]:
        used += _size(value)
        if page and used > PAGE_BYTES:
            break
        page.append(value)
    return RecordsPage(seq, page, len(found) > len(page))


def _size(record: RecordValue) -> int:
    return len(record.value_json) + len(record.collection) + len(record.key) + 16

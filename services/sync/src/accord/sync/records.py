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
- the log holds only the changes above the room's floor F (compaction deletes
  the rest), so the rebuild starts from the record's *base*, its state as of
  F, kept in ``record_bases`` for every record changed after F that existed at
  F (no base: it did not). A push that changes a record for the first time
  since F passed it (its row's seq <= F) stores the row as its base in the same
  statement; a compaction from F to F' folds each base, with the record's
  changes in (F, F'], forward to F' and drops the bases of records not changed
  after F' (their rows are their state at F'). So a page at any S >= F can be
  rebuilt, and only a listing overtaken by compaction (S < F) fails with
  ``OutOfRange`` (the caller restarts the listing at the new head); so does one
  in a room compacted before the stores kept bases (``bases`` false).

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

    @property
    def bases(self) -> bool:
        """Whether the room's record bases are complete (see the module's docstring)."""
        ...

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

    async def base_states(self, keys: Sequence[RecordKey]) -> dict[RecordKey, str]:
        """The stored states as of the floor (``record_bases``) of those of ``keys`` that
        have one."""
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


def _replay(base: str | None, changes: Sequence[LoggedChange]) -> merge.RecordState:
    state = merge.load_state(base)
    for change in changes:
        clock = (change.ts, change.client_id, change.user_id, change.client_seq)
        state, _ = merge.merge(state, clock, op_from_json(change.op_json), change.seq)
    return state


def rebuild(changes: Sequence[LoggedChange], base: str | None = None) -> str | None:
    """The visible value (JSON) of a record made of ``changes`` (in seq order) merged into
    ``base`` (its stored state before them; None: its whole history); None when that
    leaves no record."""
    shown = merge.visible(_replay(base, changes))
    return None if shown is None else compact_json(shown)


def advance_bases(
    changes: Sequence[Sequence[Any]], bases: dict[RecordKey, str]
) -> list[tuple[str, str, str]]:
    """A compaction's new bases: ``changes`` are the compacted changes (``FOLD_COLUMNS`` of
    ``accord.sync.records_sql``, in seq order) of the records changed after the new floor,
    ``bases`` those records' bases at the old floor (none: it did not exist then); the
    result is each record's (collection, key, state) at the new floor."""
    states: dict[RecordKey, merge.RecordState] = {}
    for collection, key, seq, user_id, client_id, client_seq, ts, op in changes:
        name = (str(collection), str(key))
        state = states.get(name)
        if state is None:
            state = merge.load_state(bases.get(name))
        clock = (int(ts), str(client_id), str(user_id), int(client_seq))
        states[name], _ = merge.merge(state, clock, op_from_json(str(op)), int(seq))
    return [(c, k, merge.dump_state(state)) for (c, k), state in states.items()]


async def _as_of(reader: RecordReader, rows: list[StoredRecord], seq: int) -> list[RecordValue]:
    """``rows`` as they were at ``seq`` (those that existed), in order."""
    changed = [(r.collection, r.key) for r in rows if r.seq > seq]
    rebuilt: dict[RecordKey, str | None] = {}
    if changed:
        floor = reader.floor
        if seq < floor or (floor > 0 and not reader.bases):
            raise OutOfRange(
                f"records changed after seq {seq} can no longer be read as of it "
                "(the log was compacted): restart paging"
            )
        history: dict[RecordKey, list[LoggedChange]] = {key: [] for key in changed}
        for change in await reader.history(changed, seq):
            history[(change.collection, change.key)].append(change)
        bases = await reader.base_states(changed) if floor > 0 else {}
        rebuilt = {key: rebuild(changes, bases.get(key)) for key, changes in history.items()}
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

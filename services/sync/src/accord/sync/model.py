"""The values the engine, the stores and the servicer pass between them.

They are values: nothing assigns to their fields once they are made. Those made for
every push (a change, its batch, its outcome, its rows) are plain dataclasses rather
than frozen ones only because a frozen dataclass's ``__init__`` sets each field through
``object.__setattr__``, which made building one, compiled, cost three times as much
(docs/benchmarks.md, seventh session).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from accord.common.rules import DEFAULT_MAX_BATCH, DEFAULT_MAX_JSON_DEPTH
from accord.sync.lattice import Clock
from accord.sync.merge import Conflict, Op

RecordKey = tuple[str, str]
"""(collection, key)"""
RoomRecord = tuple[str, str, str]
"""(room, collection, key)"""
RoomClient = tuple[str, str, str]
"""(room, user_id, client_id): whose client_seqs a high-water mark counts."""


@dataclass(frozen=True)
class Limits:
    max_batch_changes: int = DEFAULT_MAX_BATCH
    max_record_bytes: int = 262144
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH


@dataclass(frozen=True)
class Retention:
    log_changes: int = 10_000
    """Changes kept per room behind its head (0: all); older ones are served as a snapshot."""
    conflicts: int = 1000
    """Conflicts kept per room for operators (the newest)."""

    @property
    def every(self) -> int:
        """Compaction runs when a push takes the head across a multiple of this."""
        return max(1, min(1000, self.log_changes // 10)) if self.log_changes else 1000


@dataclass
class IncomingChange:
    client_seq: int
    collection: str
    key: str
    ts: int
    """0: the server stamps one."""
    op: Op
    op_json: str
    """The op as stored in the log."""


@dataclass
class PushBatch:
    room: str
    user_id: str
    client_id: str
    changes: tuple[IncomingChange, ...]


@dataclass
class LoggedChange:
    """One entry of a room's change log."""

    seq: int
    user_id: str
    client_id: str
    client_seq: int
    collection: str
    key: str
    ts: int
    op_json: str
    patch_json: str


@dataclass
class RecordRow:
    """A record's CRDT state and its visible value (None: the record does not exist)."""

    collection: str
    key: str
    state_json: str
    value_json: str | None
    seq: int


@dataclass(frozen=True)
class RecordValue:
    collection: str
    key: str
    value_json: str


@dataclass(frozen=True)
class ChangeError:
    """Why one change was refused (by an extension, a record schema or a failed hook)."""

    code: str
    message: str
    json_path: str | None = None


@dataclass
class ChangeOutcome:
    client_seq: int
    seq: int
    duplicate: bool
    ts: int
    ts_adjusted: bool
    conflicts: tuple[Conflict, ...] = ()
    error: ChangeError | None = None
    """Set for a refused change: nothing of it was stored (``seq`` 0)."""


@dataclass
class PushOutcome:
    room: str
    results: tuple[ChangeOutcome, ...]
    committed: tuple[LoggedChange, ...]
    head: int


@dataclass
class ConflictRow:
    """A pushed field that lost, as recorded for operators."""

    seq: int
    collection: str
    key: str
    field: str
    user_id: str
    client_id: str
    client_seq: int
    ts: int
    winner: Clock


@dataclass(frozen=True)
class OutboxEntry:
    """A commit group's changes to one room, owed to one webhook endpoint."""

    endpoint: str
    first_seq: int
    last_seq: int
    changes_json: str
    """The changes as delivered to clients: a JSON array."""


@dataclass
class RoomWrite:
    """What a transaction writes for one room: log entries (their seqs continue the
    room's head), records, raised high-water marks (user_id, client_id, client_seq),
    conflicts and what is owed to webhook endpoints (in the same transaction)."""

    room: str
    changes: Sequence[LoggedChange]
    records: Sequence[RecordRow]
    marks: Sequence[tuple[str, str, int]]
    conflicts: Sequence[ConflictRow] = ()
    outbox: Sequence[OutboxEntry] = ()


@dataclass(frozen=True)
class SnapshotPage:
    """One page of a room's snapshot, as ``Engine.pull`` yields it."""

    seq: int
    records: list[RecordValue]
    last: bool

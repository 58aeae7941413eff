"""What the two SQL stores share: the log's and the conflicts' column lists, the values
one change or conflict is written as, and the records read back from positional rows."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from accord.sync.epoch import Basis
from accord.sync.model import ConflictRow, LoggedChange, RecordRow

CHANGE_COLUMNS = "seq, user_id, client_id, client_seq, collection, key, ts, op, patch"
CONFLICT_COLUMNS = (
    "seq, field, collection, key, user_id, client_id, client_seq, ts, "
    "winner_ts, winner_client_id, winner_user_id, winner_client_seq"
)

_change_values = attrgetter(
    "seq", "user_id", "client_id", "client_seq", "collection", "key", "ts", "op_json", "patch_json"
)
_record_values = attrgetter("collection", "key", "state_json", "value_json", "seq")
_conflict_values = attrgetter(
    "seq", "field", "collection", "key", "user_id", "client_id", "client_seq", "ts"
)


def change_values(room: str, change: LoggedChange) -> tuple[Any, ...]:
    """``room`` and then ``change`` in ``CHANGE_COLUMNS`` order."""
    return (room, *_change_values(change))


def record_values(room: str, record: RecordRow) -> tuple[Any, ...]:
    """``room`` and then ``record``: collection, key, state, value, seq."""
    return (room, *_record_values(record))


def conflict_values(room: str, conflict: ConflictRow) -> tuple[Any, ...]:
    """``room`` and then ``conflict`` in ``CONFLICT_COLUMNS`` order."""
    return (room, *_conflict_values(conflict), *conflict.winner)


def change_of(row: Sequence[Any]) -> LoggedChange:
    """A change from its positional row: seq, user_id, client_id, client_seq, collection,
    key, ts, op and, when selected, patch (history reads leave it out: "")."""
    seq, user_id, client_id, client_seq, collection, key, ts, op, *patch = row
    return LoggedChange(
        seq=int(seq),
        user_id=str(user_id),
        client_id=str(client_id),
        client_seq=int(client_seq),
        collection=str(collection),
        key=str(key),
        ts=int(ts),
        op_json=str(op),
        patch_json=str(patch[0]) if patch else "",
    )


def conflict_of(row: Sequence[Any]) -> ConflictRow:
    """A conflict from its positional row, in ``CONFLICT_COLUMNS`` order."""
    seq, name, collection, key, user_id, client_id, client_seq, ts, *winner = row
    return ConflictRow(
        seq=int(seq),
        collection=str(collection),
        key=str(key),
        field=str(name),
        user_id=str(user_id),
        client_id=str(client_id),
        client_seq=int(client_seq),
        ts=int(ts),
        winner=(int(winner[0]), str(winner[1]), str(winner[2]), int(winner[3])),
    )


class LockedTransaction:
    """What both stores' locked transactions share: the rooms' heads, known from the
    start, and the basis they were read on; nothing to assume."""

    def __init__(self, heads: dict[str, int], basis: Basis) -> None:
        self._heads = heads
        self._basis = basis

    @property
    def basis(self) -> Basis:
        return self._basis

    def assume(self, heads: dict[str, int], basis: Basis | None = None) -> bool:
        return False  # locked for its whole length: what the rooms hold is read under the lock

    def head(self, room: str) -> int:
        return self._heads[room]

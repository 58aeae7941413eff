"""One batch's fresh changes merged, one after another, onto copies of its records.

The engine's group changes only once the whole batch has merged (``Engine._merge``
takes the result); a change the batch cannot hold (``BadRequest``, ``TooLarge``)
raises and leaves the group as it was. A change may be refused on its own
(``refuse``; a schema ``check`` that fails): it gets that error as its outcome,
takes no seq and changes nothing, and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from accord.sync import merge
from accord.sync.errors import BadRequest, TooLarge
from accord.sync.lattice import compact_json
from accord.sync.model import (
    ChangeError,
    ChangeOutcome,
    ConflictRow,
    IncomingChange,
    Limits,
    LoggedChange,
    PushBatch,
    RecordKey,
)
from accord.sync.patch import diff

Stamp = Callable[[int], tuple[int, bool]]
"""A pushed ts -> (the ts stored, whether it was stamped or clamped)."""
Check = Callable[[str, str, Mapping[str, Any] | None], ChangeError | None]
"""(collection, key, the record's visible value after a change) -> why it may not be."""


class BatchMerge:
    def __init__(
        self,
        states: Mapping[RecordKey, merge.RecordState],
        views: Mapping[RecordKey, merge.View | None],
        head: int,
        batch: PushBatch,
        stamp: Stamp,
        limits: Limits,
        outcomes: dict[int, ChangeOutcome],
    ) -> None:
        keys = list(dict.fromkeys((c.collection, c.key) for c in batch.changes))
        self.states = {k: states[k] for k in keys}
        self.views = {k: views[k] for k in keys}
        self.values: dict[RecordKey, str | None] = {}
        self.seqs: dict[RecordKey, int] = {}
        self.head = head
        self.committed: list[LoggedChange] = []
        self.lost: list[ConflictRow] = []
        self._batch = batch
        self._stamp = stamp
        self._limits = limits
        self._outcomes = outcomes

    def shown(self, record: RecordKey) -> dict[str, Any] | None:
        """The record's visible value as of the changes merged so far."""
        view = self.views[record]
        return None if view is None else {name: v for name, (_, v) in view.items()}

    def refuse(self, change: IncomingChange, error: ChangeError) -> None:
        self._outcomes[change.client_seq] = ChangeOutcome(
            change.client_seq, 0, False, 0, False, error=error
        )

    def add(self, change: IncomingChange, check: Check | None = None) -> None:
        batch = self._batch
        record = (change.collection, change.key)
        unknown = merge.unknown_ids(self.states[record], change.op)
        if unknown:
            raise BadRequest(
                f"change client_seq={change.client_seq}: {change.collection}/{change.key} "
                f"has no list element {unknown[0]!r}"
            )
        ts, adjusted = self._stamp(change.ts)
        clock = (ts, batch.client_id, batch.user_id, change.client_seq)
        head = self.head + 1
        before = self.views[record]
        state, conflicts = merge.merge(self.states[record], clock, change.op, head)
        after = merge.view(state)
        shown = None if after is None else {name: v for name, (_, v) in after.items()}
        if check is not None:
            error = check(change.collection, change.key, shown)
            if error is not None:
                self.refuse(change, error)
                return
        value_json = None if shown is None else compact_json(shown)
        if value_json is not None and len(value_json.encode()) > self._limits.max_record_bytes:
            raise TooLarge(
                f"record {change.collection}/{change.key} would exceed "
                f"{self._limits.max_record_bytes} bytes"
            )
        self.head = head
        self.states[record], self.views[record] = state, after
        self.values[record], self.seqs[record] = value_json, head
        self.lost.extend(
            ConflictRow(
                head,
                change.collection,
                change.key,
                c.field,
                batch.user_id,
                batch.client_id,
                change.client_seq,
                ts,
                c.winner,
            )
            for c in conflicts
        )
        self.committed.append(
            LoggedChange(
                seq=head,
                user_id=batch.user_id,
                client_id=batch.client_id,
                client_seq=change.client_seq,
                collection=change.collection,
                key=change.key,
                ts=ts,
                op_json=change.op_json,
                patch_json=compact_json(diff(before, after, change.op)),
            )
        )
        self._outcomes[change.client_seq] = ChangeOutcome(
            change.client_seq, head, False, ts, adjusted, tuple(conflicts)
        )

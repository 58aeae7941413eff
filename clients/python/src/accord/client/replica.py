"""A room's local replica: confirmed server state plus pending local changes.

Pure logic, no I/O. ``confirmed`` is exactly the server's records as of
``seq``, within the room's history named ``epoch``: the snapshot and then
every change's patch in seq order. The epoch a ``subscribed`` announces is
taken only with state the server sent under it (a snapshot, or the changes
that follow the resume) or when no state is at stake (the server took our
``since`` with no epoch to check, or the room is empty): when the server
answers a resume in another history with a snapshot, what is persisted never
pairs the old ``since`` with the new epoch. ``pending``
are local changes the server has not confirmed yet, in ``client_seq`` order;
the visible view re-applies them, as approximations, on top of ``confirmed``
after every server change (rebase). A pending change is dropped when the
server's change with the same ``(client_id, client_seq)`` arrives, or when it
was acknowledged with a seq the replica has reached (duplicates included), so
once nothing is pending the view *is* the server's state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from accord.client.changes import Origin, PendingChange, RecordChange, RecordKey
from accord.client.errors import SequenceGap
from accord.client.patch import Record, apply_local_op, apply_patch

__all__ = ["Applied", "PendingChange", "RecordChange", "RecordKey", "Replica"]


@dataclass
class Applied:
    """What a server message did: events to emit, and what to persist."""

    events: list[RecordChange] = field(default_factory=list)
    changed: set[RecordKey] = field(default_factory=set)
    dropped: list[int] = field(default_factory=list)
    replaced: bool = False
    epoch_changed: bool = False


class Replica:
    def __init__(
        self,
        room: str,
        client_id: str,
        *,
        seq: int = 0,
        epoch: str = "",
        records: Mapping[RecordKey, Record] | None = None,
        pending: Iterable[PendingChange] = (),
    ) -> None:
        self.room = room
        self.client_id = client_id
        self.seq = seq
        self.epoch = epoch
        self._announced = ""  # the epoch of the last ``subscribed``
        self.head = 0
        self.confirmed: dict[str, dict[str, Record]] = {}
        for (collection, key), value in (records or {}).items():
            self.confirmed.setdefault(collection, {})[key] = dict(value)
        self.pending: list[PendingChange] = []
        self._pending_by_key: dict[RecordKey, list[PendingChange]] = {}
        for change in sorted(pending, key=lambda c: c.client_seq):
            self._add_pending(change)
        self.expecting_snapshot = False
        self._snapshot: dict[RecordKey, Record] | None = None

    # Reading

    def confirmed_record(self, key: RecordKey) -> Record | None:
        return self.confirmed.get(key[0], {}).get(key[1])

    def visible(self, key: RecordKey) -> Record | None:
        record = self.confirmed_record(key)
        for change in self._pending_by_key.get(key, ()):
            record = apply_local_op(record, change.op, (self.client_id, change.client_seq))
        return record

    def records(self, collection: str) -> dict[str, Record]:
        """The visible records of ``collection``, by key (copies)."""
        keys = set(self.confirmed.get(collection, {}))
        keys.update(k for c, k in self._pending_by_key if c == collection)
        result: dict[str, Record] = {}
        for key in sorted(keys):
            value = self.visible((collection, key))
            if value is not None:
                result[key] = dict(value)
        return result

    def confirmed_items(self) -> Iterator[tuple[RecordKey, Record]]:
        for collection, records in self.confirmed.items():
            for key, value in records.items():
                yield (collection, key), value

    def collections(self) -> list[str]:
        names = set(self.confirmed) | {c for c, _ in self._pending_by_key}
        return sorted(names)

    @property
    def caught_up(self) -> bool:
        return not self.expecting_snapshot and self._snapshot is None and self.seq >= self.head

    def unsent(self) -> list[PendingChange]:
        return [change for change in self.pending if change.acked_seq is None]

    # Local changes

    def add_local(self, change: PendingChange) -> list[RecordChange]:
        if self.pending and change.client_seq <= self.pending[-1].client_seq:
            raise ValueError("client_seq must increase")
        with self._tracking([change.record_key], "local") as applied:
            self._add_pending(change)
        return applied.events

    def ack(self, results: Sequence[Mapping[str, Any]]) -> Applied:
        """Record an ``ack``: drop what the replica already holds, remember the seq of the rest."""
        by_seq = {change.client_seq: change for change in self.pending}
        done: list[PendingChange] = []
        for result in results:
            change = by_seq.get(int(result.get("client_seq", 0)))
            if change is None:
                continue
            seq = int(result.get("seq", 0))
            # seq 0: a duplicate the log no longer holds, long since in the snapshot.
            if seq == 0 or seq <= self.seq:
                done.append(change)
            else:
                change.acked_seq = seq
        return self._drop(done, "local")

    def reject(self, client_seqs: Iterable[int]) -> Applied:
        """Drop local changes the server refused for good."""
        refused = set(client_seqs)
        return self._drop([c for c in self.pending if c.client_seq in refused], "local")

    # Server messages

    def subscribed(self, since: int, head: int, epoch: str = "") -> Applied:
        """The subscribe reply; ``since`` is the seq the subscribe sent (with ``self.epoch``)."""
        self.head = head
        self._snapshot = None
        self._announced = epoch
        if since == 0:
            self.expecting_snapshot = head > 0
            return Applied() if head > 0 else self._adopt(epoch)
        if since <= head:
            # Another epoch than ours is either a later name of the same history
            # (changes follow) or another history (a snapshot follows): taken with them.
            self.expecting_snapshot = False
            return self._adopt(epoch) if not self.epoch else Applied()
        # The server is behind us: its data was reset or replaced.
        self._forget_acks()
        if head > 0:
            self.expecting_snapshot = True
            return Applied()
        self.expecting_snapshot = False
        applied = self._replace({}, 0)
        applied.epoch_changed = self._set_epoch(epoch)
        return applied

    def snapshot_chunk(
        self, records: Iterable[Mapping[str, Any]], seq: int, last: bool, epoch: str = ""
    ) -> Applied:
        """A chunk of a snapshot of the room at ``seq`` in ``epoch`` (the last one replaces
        the confirmed state); also one the server sends unasked, when the room's
        history changed."""
        if self._snapshot is None:
            self._snapshot = {}
        for item in records:
            self._snapshot[(str(item["collection"]), str(item["key"]))] = dict(item["value"])
        if not last:
            return Applied()
        snapshot, self._snapshot = self._snapshot, None
        self.expecting_snapshot = False
        epoch = self._announced = epoch or self._announced
        if epoch and self.epoch and epoch != self.epoch:
            self._forget_acks()
        applied = self._replace(snapshot, seq)
        applied.epoch_changed = self._set_epoch(epoch)
        return applied

    def apply_changes(self, changes: Sequence[Mapping[str, Any]]) -> Applied:
        """Apply server changes in seq order; a seq already applied is skipped."""
        if self._snapshot is not None:
            raise SequenceGap(f"changes inside a snapshot of room {self.room}")
        fresh = [c for c in changes if int(c["seq"]) > self.seq]
        if not fresh:
            return Applied()
        for offset, change in enumerate(fresh):
            if int(change["seq"]) != self.seq + 1 + offset:
                raise SequenceGap(f"room {self.room}: at seq {self.seq}, got {change['seq']}")
        mine = {int(c["client_seq"]) for c in fresh if c.get("client_id") == self.client_id}
        last_seq = int(fresh[-1]["seq"])
        keys: list[RecordKey] = [(str(c["collection"]), str(c["key"])) for c in fresh]
        keys.extend(
            p.record_key
            for p in self.pending
            if p.client_seq in mine or (p.acked_seq is not None and p.acked_seq <= last_seq)
        )
        with self._tracking(keys, "remote") as applied:
            for change in fresh:
                key = (str(change["collection"]), str(change["key"]))
                self._set_confirmed(key, apply_patch(self.confirmed_record(key), change["patch"]))
                self.seq = int(change["seq"])
                applied.changed.add(key)
            done = [
                p
                for p in self.pending
                if p.client_seq in mine or (p.acked_seq is not None and p.acked_seq <= self.seq)
            ]
            applied.dropped = self._remove_pending(done)
        applied.epoch_changed = self._set_epoch(self._announced)
        return applied

    # Internals

    def _forget_acks(self) -> None:
        """The seqs of earlier acks no longer name these changes: send them again
        (the server answers ``duplicate`` for those it holds)."""
        for change in self.pending:
            change.acked_seq = None

    def _set_epoch(self, epoch: str) -> bool:
        if not epoch or epoch == self.epoch:
            return False
        self.epoch = epoch
        return True

    def _adopt(self, epoch: str) -> Applied:
        """``epoch`` names the confirmed state as it is (no snapshot needed)."""
        return Applied(epoch_changed=self._set_epoch(epoch))

    def _replace(self, records: dict[RecordKey, Record], seq: int) -> Applied:
        keys = [k for k, _ in self.confirmed_items()] + list(records)
        keys.extend(self._pending_by_key)
        with self._tracking(keys, "remote") as applied:
            self.confirmed = {}
            for key, value in records.items():
                self._set_confirmed(key, value)
            self.seq = seq
            self.head = max(self.head, seq)
            done = [p for p in self.pending if p.acked_seq is not None and p.acked_seq <= seq]
            applied.dropped = self._remove_pending(done)
            applied.replaced = True
        return applied

    def _drop(self, done: list[PendingChange], origin: Origin) -> Applied:
        with self._tracking([c.record_key for c in done], origin) as applied:
            applied.dropped = self._remove_pending(done)
        return applied

    def _set_confirmed(self, key: RecordKey, value: Record | None) -> None:
        collection, name = key
        if value is None:
            records = self.confirmed.get(collection)
            if records is not None:
                records.pop(name, None)
                if not records:
                    del self.confirmed[collection]
        else:
            self.confirmed.setdefault(collection, {})[name] = value

    def _add_pending(self, change: PendingChange) -> None:
        self.pending.append(change)
        self._pending_by_key.setdefault(change.record_key, []).append(change)

    def _remove_pending(self, done: list[PendingChange]) -> list[int]:
        if not done:
            return []
        gone = {c.client_seq for c in done}
        self.pending = [c for c in self.pending if c.client_seq not in gone]
        for change in done:
            bucket = self._pending_by_key.get(change.record_key, [])
            bucket[:] = [c for c in bucket if c.client_seq not in gone]
            if not bucket:
                self._pending_by_key.pop(change.record_key, None)
        return sorted(gone)

    def _tracking(self, keys: Iterable[RecordKey], origin: Origin) -> _Tracker:
        return _Tracker(self, keys, origin)


class _Tracker:
    """Diffs the visible value of ``keys`` around a mutation into ``RecordChange`` events."""

    def __init__(self, replica: Replica, keys: Iterable[RecordKey], origin: Origin) -> None:
        self.replica = replica
        self.origin: Origin = origin
        self.keys = list(dict.fromkeys(keys))
        self.applied = Applied()
        self.before: dict[RecordKey, Record | None] = {}

    def __enter__(self) -> Applied:
        self.before = {key: _copy(self.replica.visible(key)) for key in self.keys}
        return self.applied

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            return
        for key in self.keys:
            after = self.replica.visible(key)
            previous = self.before[key]
            if after != previous:
                self.applied.events.append(
                    RecordChange(
                        self.replica.room, key[0], key[1], _copy(after), previous, self.origin
                    )
                )


def _copy(record: Record | None) -> Record | None:
    return None if record is None else dict(record)

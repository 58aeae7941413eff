"""What a sync replica remembers of the rooms it wrote last (``_RoomMemory``), and the
group of pushes being merged (``_Group``) it learns from.

``accord.sync.engine`` recalls a room from here to skip reading its records and marks
in an optimistic group, and remembers each room as a committed group left it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from accord.sync import merge
from accord.sync.epoch import Basis
from accord.sync.model import ConflictRow, LoggedChange, RecordKey, RecordRow, RoomWrite

ClientKey = tuple[str, str]
"""(user_id, client_id) within one room."""


@dataclass
class _Group:
    """The pushes of a group to one room, as merged so far, not yet saved."""

    head: int
    states: dict[RecordKey, merge.RecordState] = field(default_factory=dict)
    views: dict[RecordKey, merge.View | None] = field(default_factory=dict)
    marks: dict[ClientKey, int] = field(default_factory=dict)
    """Each client's high-water mark, as raised by the group's batches so far."""
    raised: dict[ClientKey, None] = field(default_factory=dict)
    """The clients whose mark the group raised (ordered, to save)."""
    values: dict[RecordKey, str | None] = field(default_factory=dict)
    """The records the group changed and their visible values."""
    seqs: dict[RecordKey, int] = field(default_factory=dict)
    logged: dict[tuple[str, str, int], int] = field(default_factory=dict)
    """(user_id, client_id, client_seq) -> seq of the changes the group committed."""
    committed: list[LoggedChange] = field(default_factory=list)
    conflicts: list[ConflictRow] = field(default_factory=list)
    duplicates: int = 0
    sizes: dict[RecordKey, int] = field(default_factory=dict)
    """Each record's stored state in bytes of JSON (what remembering it costs, roughly)."""

    def write(self, room: str) -> RoomWrite:
        records = []
        for k, value in self.values.items():
            state = merge.dump_state(self.states[k])
            self.sizes[k] = len(state)
            records.append(RecordRow(k[0], k[1], state, value, self.seqs[k]))
        return RoomWrite(
            room=room,
            changes=self.committed,
            records=records,
            marks=[(u, c, self.marks[(u, c)]) for u, c in self.raised],
            conflicts=self.conflicts,
        )


@dataclass
class _Known:
    """A room as this replica last committed it: its head, and as of that head the marks
    of the clients and the states of the records its recent groups touched."""

    head: int
    marks: dict[ClientKey, int] = field(default_factory=dict)
    states: dict[RecordKey, merge.RecordState] = field(default_factory=dict)
    views: dict[RecordKey, merge.View | None] = field(default_factory=dict)
    sizes: dict[RecordKey, int] = field(default_factory=dict)
    size: int = 0


KNOWN_BYTES = 8 * 1024 * 1024
"""Record state (bytes of its JSON) a sync replica remembers in all, least recently used
rooms first out: a few times this in memory (``ROOM_MEMORY_BYTES``; 0 turns it off)."""
KNOWN_RECORD_BYTES = 16 * 1024
"""A record whose state is larger is read each time instead."""
SHARED_SECONDS = 5.0
"""A room found written by another replica is read each time for this long."""
KNOWN_SHARED_ROOMS = 100_000
"""Beyond this many rooms marked shared, the expired marks are dropped."""


class _RoomMemory:
    """What this replica wrote last, so that an optimistic group whose every record and
    client is known skips reading them. It cannot go stale unnoticed: the optimistic save
    writes only if each room's head is still the one the group started from, and every
    write to a room's records or marks raises its head; a group that finds a room moved
    on writes nothing and runs again reading it (``Engine._attempt``), and what it read
    is remembered then. All of it was read under one ``basis`` (the database's epoch
    basis), which the save checks too: after ``accord epoch renew`` (or a restore into
    another cluster) nothing remembered is used, and the first read forgets it all.
    Bounded by the size of the records' state (``KNOWN_BYTES``),
    least recently used rooms first out."""

    def __init__(self, budget: int = KNOWN_BYTES) -> None:
        self._rooms: OrderedDict[str, _Known] = OrderedDict()
        self._budget = budget
        self._size = 0
        self._shared: dict[str, float] = {}
        """Rooms another replica wrote to lately -> until when they are read each time."""
        self.basis: Basis | None = None
        """The database's basis what is remembered was read under."""

    def rebase(self, basis: Basis) -> None:
        """A read saw the database under ``basis``: what was read under another one goes."""
        if basis != self.basis:
            self.clear()
            self.basis = basis

    def recall(
        self, clients: Sequence[tuple[str, str, str]], keys: Sequence[tuple[str, str, str]]
    ) -> dict[str, _Known] | None:
        """The rooms' known state when it covers every client and key, else None."""
        known: dict[str, _Known] = {}
        for room, user_id, client_id in clients:
            entry = known.get(room) or self._rooms.get(room)
            if entry is None or (user_id, client_id) not in entry.marks:
                return None
            if room not in known and room in self._shared:
                if self._shared[room] > time.monotonic():
                    return None
                del self._shared[room]
            known[room] = entry
        for room, collection, key in keys:
            if (collection, key) not in known[room].states:
                return None
        for room in known:
            self._rooms.move_to_end(room)
        return known

    def remember(self, groups: dict[str, _Group], started: dict[str, int]) -> None:
        """After a committed group: each room as it left it. What was known of a room
        stays only if it was current when the group started."""
        for room, group in groups.items():
            entry = self._drop(room)
            if not group.head:  # nothing committed yet: the room may have no row at all
                continue
            if entry is None or entry.head != started[room]:
                entry = _Known(group.head)
            entry.head = group.head
            entry.marks.update(group.marks)
            for key, state in group.states.items():
                size = group.sizes.get(key, 0)
                if size > KNOWN_RECORD_BYTES:
                    entry.states.pop(key, None)
                    entry.views.pop(key, None)
                    entry.sizes.pop(key, None)
                    continue
                entry.states[key] = state
                entry.views[key] = group.views[key]
                entry.sizes[key] = size
            entry.size = sum(entry.sizes.values()) + 64 * len(entry.marks)
            if entry.size > self._budget // 2:
                continue  # one room would crowd out the rest: it is read each time
            self._rooms[room] = entry
            self._size += entry.size
        while self._size > self._budget and self._rooms:
            self._size -= self._rooms.popitem(last=False)[1].size

    def _drop(self, room: str) -> _Known | None:
        entry = self._rooms.pop(room, None)
        if entry is not None:
            self._size -= entry.size
        return entry

    def forget(self, rooms: Sequence[str], shared: bool = False) -> None:
        """Drop what is known of ``rooms``; ``shared``: another replica writes to them too,
        so read them each time for ``SHARED_SECONDS``."""
        for room in rooms:
            self._drop(room)
        if shared:
            now = time.monotonic()
            if len(self._shared) > KNOWN_SHARED_ROOMS:
                self._shared = {r: t for r, t in self._shared.items() if t > now}
            until = now + SHARED_SECONDS
            self._shared.update(dict.fromkeys(rooms, until))

    def clear(self) -> None:
        self._rooms.clear()
        self._size = 0

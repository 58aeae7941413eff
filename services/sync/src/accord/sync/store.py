"""The storage interface the engine runs over; SQLite and PostgreSQL implement it.

Pushes commit in a ``RoomTransaction`` over one or more rooms: those rooms are
locked for its duration (groups with no room in common proceed), everything
it writes commits together when the block ends normally and nothing is kept
when it raises.

A store may offer an optimistic transaction instead (``optimistic=True``):
nothing is locked while the group is read and merged, and its ``save`` writes
only if none of its rooms moved on since ``load``, else raises ``Contended``
having written nothing (the caller runs the group again, locked). PostgreSQL
does this in two round trips instead of five; SQLite's transactions are
exclusive anyway and ignore the flag.

A room's log holds the changes with ``floor < seq <= head``; compaction raises
the floor. The records always hold the full materialized state. Each read of a
room's head also tells its epoch (``accord.sync.epoch``), read with it: a room's
random part is written once, with its row, and the database's basis is read in
the same statement, so no commit pays a round trip for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from accord.sync.epoch import Basis, RoomEpoch, RoomHead
from accord.sync.model import (
    ConflictRow,
    LoggedChange,
    RecordValue,
    RoomClient,
    RoomRecord,
    RoomWrite,
)
from accord.sync.outbox import OutboxStore
from accord.sync.records import RecordReader


class Contended(Exception):
    """An optimistic transaction's room moved on between its load and its save;
    nothing was written."""


class RoomTransaction(Protocol):
    def head(self, room: str) -> int:
        """The head of one of the transaction's rooms, once ``load`` ran (as raised
        by its ``save``)."""
        ...

    @property
    def basis(self) -> Basis:
        """The database's basis as of the transaction's read (its start when locked,
        ``load`` when optimistic)."""
        ...

    def assume(self, heads: dict[str, int], basis: Basis | None = None) -> bool:
        """Instead of ``load``: take the rooms as of ``heads`` (every room of the
        transaction), the caller knowing their records and marks as of those heads,
        read under ``basis``. Only an optimistic transaction can (its ``save`` then
        checks the heads and the basis are still these, raising ``Contended``
        otherwise); the others answer False and need ``load``."""
        ...

    async def load(
        self, clients: Sequence[RoomClient], keys: Sequence[RoomRecord]
    ) -> tuple[dict[RoomClient, int], dict[RoomRecord, str]]:
        """The highest client_seq stored for each of ``clients`` = (room, user_id,
        client_id), and the stored CRDT state of each of ``keys`` = (room, collection,
        key); what is not stored is left out."""
        ...

    async def logged_seqs(self, client: RoomClient, client_seqs: Sequence[int]) -> dict[int, int]:
        """client_seq -> seq for those of ``client_seqs`` the room's log holds."""
        ...

    async def save(self, writes: Sequence[RoomWrite]) -> None:
        """For each room: append its changes (seqs continue its head), upsert its
        records, raise its clients' high-water marks, record its conflicts."""
        ...

    async def compact(self, room: str, floor: int, keep_conflicts: int) -> None:
        """Drop the room's log entries with ``seq <= floor`` (raising its floor to it)
        and all but its newest ``keep_conflicts`` conflicts."""
        ...

    async def cursor_floor(self, room: str, extensions: Sequence[str]) -> int:
        """The lowest after_commit cursor of ``extensions`` in the room (0 for one that
        has none there): compaction may not pass it."""
        ...


class Snapshot(Protocol):
    """A consistent read of one room: its head, its floor, its epoch and the records as
    of that head."""

    @property
    def head(self) -> int: ...

    @property
    def epoch(self) -> RoomEpoch: ...

    @property
    def floor(self) -> int:
        """The log holds the changes after this seq (and up to the head)."""
        ...

    def records(self, page_size: int) -> AsyncIterator[list[RecordValue]]:
        """The visible records in (collection, key) order, ``page_size`` at a time,
        read page by page (never the whole room at once)."""
        ...


class SnapshotBase:
    """The head, floor and epoch every snapshot reports; implementations add ``records``."""

    def __init__(self, head: int, floor: int, epoch: RoomEpoch) -> None:
        self._head = head
        self._floor = floor
        self._epoch = epoch

    @property
    def head(self) -> int:
        return self._head

    @property
    def epoch(self) -> RoomEpoch:
        return self._epoch

    @property
    def floor(self) -> int:
        return self._floor


class Store(Protocol):
    def transaction(
        self, rooms: Sequence[str], *, optimistic: bool = False
    ) -> AbstractAsyncContextManager[RoomTransaction]:
        """Lock ``rooms`` (created when new) for a transaction; with ``optimistic``,
        possibly lock nothing and check at ``save`` instead (see above)."""
        ...

    def snapshot(self, room: str) -> AbstractAsyncContextManager[Snapshot]: ...

    def reader(self, room: str) -> AbstractAsyncContextManager[RecordReader]:
        """One read transaction over the room's records and log (``accord.sync.records``)."""
        ...

    async def head(self, room: str) -> int: ...

    async def heads(self, rooms: Sequence[str]) -> dict[str, int]:
        """The head of each of ``rooms`` (0 for a room with no changes)."""
        ...

    async def room_heads(self, rooms: Sequence[str]) -> dict[str, RoomHead]:
        """The head and epoch of each of ``rooms``, as of one read."""
        ...

    async def basis(self) -> Basis:
        """The database's basis now."""
        ...

    async def renew(self) -> Basis:
        """Replace the database's incarnation (every room's epoch changes); returns the
        new basis."""
        ...

    async def changes(self, room: str, after: int, until: int, limit: int) -> list[LoggedChange]:
        """Log entries with ``after < seq <= until`` in seq order, at most ``limit``."""
        ...

    async def conflicts(self, room: str, before: int, limit: int) -> list[ConflictRow]:
        """The room's recorded conflicts with ``seq < before`` (0: any), newest first."""
        ...

    def outbox(self) -> OutboxStore:
        """The webhook outbox's statements on this database (``accord.sync.outbox``)."""

    async def cursor(self, extension: str, room: str) -> int:
        """The last seq of the room ``extension``'s after_commit returned from (0: none)."""
        ...

    async def advance(self, extension: str, room: str, seen: int, seq: int) -> bool:
        """Move the extension's cursor in the room from ``seen`` to ``seq``; False (and
        nothing written) when it is no longer at ``seen`` (another replica moved it)."""
        ...

    async def behind(self, extension: str, after: str, limit: int) -> list[tuple[str, int]]:
        """Up to ``limit`` rooms named after ``after``, in name order, whose head is past
        the extension's cursor there, each with that cursor (0: none)."""
        ...

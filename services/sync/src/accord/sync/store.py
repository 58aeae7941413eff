"""The storage interface the engine runs over; SQLite and PostgreSQL implement it.

A push runs in one ``RoomTransaction``: the room is locked for its duration
(pushes to other rooms proceed), everything it writes commits together when
the block ends normally and nothing is kept when it raises.

A room's log holds the changes with ``floor < seq <= head``; compaction raises
the floor. The records always hold the full materialized state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from accord.sync.model import (
    ClientKey,
    ConflictRow,
    LoggedChange,
    RecordKey,
    RecordRow,
    RecordValue,
)


class RoomTransaction(Protocol):
    async def head(self) -> int: ...

    async def high_waters(self, clients: Sequence[ClientKey]) -> dict[ClientKey, int]:
        """The highest client_seq stored in the room for each of ``clients``
        = (user_id, client_id); a client with none stored is left out."""
        ...

    async def logged_seqs(
        self, user_id: str, client_id: str, client_seqs: Sequence[int]
    ) -> dict[int, int]:
        """client_seq -> seq for those of ``client_seqs`` the log holds."""
        ...

    async def load_states(self, keys: Sequence[RecordKey]) -> dict[RecordKey, str]: ...

    async def save(
        self,
        changes: Sequence[LoggedChange],
        records: Sequence[RecordRow],
        high_waters: Sequence[tuple[str, str, int]],
        conflicts: Sequence[ConflictRow] = (),
    ) -> None:
        """Append ``changes`` (seqs continue the head), upsert ``records``, raise each
        client's high-water mark to its (user_id, client_id, client_seq) in
        ``high_waters`` (one entry per client), record ``conflicts``."""
        ...

    async def compact(self, floor: int, keep_conflicts: int) -> None:
        """Drop the log entries with ``seq <= floor`` (raising the room's floor to it)
        and all but the newest ``keep_conflicts`` conflicts."""
        ...


class Snapshot(Protocol):
    """A consistent read of one room: its head, its floor and the records as of that head."""

    @property
    def head(self) -> int: ...

    @property
    def floor(self) -> int:
        """The log holds the changes after this seq (and up to the head)."""
        ...

    def records(self, page_size: int) -> AsyncIterator[list[RecordValue]]:
        """The visible records in (collection, key) order, ``page_size`` at a time,
        read page by page (never the whole room at once)."""
        ...


class SnapshotBase:
    """The head and floor every snapshot reports; implementations add ``records``."""

    def __init__(self, head: int, floor: int) -> None:
        self._head = head
        self._floor = floor

    @property
    def head(self) -> int:
        return self._head

    @property
    def floor(self) -> int:
        return self._floor


class Store(Protocol):
    def transaction(self, room: str) -> AbstractAsyncContextManager[RoomTransaction]: ...

    def snapshot(self, room: str) -> AbstractAsyncContextManager[Snapshot]: ...

    async def head(self, room: str) -> int: ...

    async def changes(self, room: str, after: int, until: int, limit: int) -> list[LoggedChange]:
        """Log entries with ``after < seq <= until`` in seq order, at most ``limit``."""
        ...

    async def conflicts(self, room: str, before: int, limit: int) -> list[ConflictRow]:
        """The room's recorded conflicts with ``seq < before`` (0: any), newest first."""
        ...

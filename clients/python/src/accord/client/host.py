"""What a room may ask of the client it belongs to: the ``RoomHost`` protocol.

A room (``Room`` and its ``RoomLink``) sees its client only through this, so the
room modules import nothing of the client; ``accord.client.rooms.Rooms`` is the
client's implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from accord.client.backoff import Backoff
from accord.client.changes import RecordChange, RecordKey
from accord.client.patch import Record
from accord.client.replica import Replica

__all__ = ["RoomHost"]


class RoomHost(Protocol):
    @property
    def client_id(self) -> str:
        """This replica's id (element ids of list inserts carry it)."""
        ...

    @property
    def backoff(self) -> Backoff:
        """How long to wait between retries of a refused subscribe or push."""
        ...

    async def queue(
        self, room: str, replica: Replica, collection: str, key: str, op: dict[str, Any]
    ) -> tuple[int, list[RecordChange]]:
        """Number, stamp and store a local change, then add it to ``replica``.

        Returns its ``client_seq`` and the visible changes; raises ``ClientClosed``
        when the client is not running.
        """
        ...

    def observe(self, ts: int) -> None:
        """A server ``ts`` was seen: later local changes stamp after it."""
        ...

    async def save(
        self,
        room: str,
        seq: int,
        records: Mapping[RecordKey, Record | None],
        dropped: Sequence[int],
        *,
        replace: bool,
        epoch: str,
    ) -> None:
        """Persist confirmed state (see ``OfflineStore.save``)."""
        ...

    def report(self, error: Exception) -> None:
        """An error no call waits for: to the client's ``on_error`` callbacks."""
        ...

    def changed(self) -> None:
        """The room's state or pending count may have changed: recompute the status."""
        ...

    def forget(self, room: str) -> None:
        """The room was left: drop it from the client's rooms."""
        ...

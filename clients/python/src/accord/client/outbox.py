"""The offline queue's writing side: local changes numbered, stamped and stored before they show."""

from __future__ import annotations

import asyncio
from typing import Any

from accord.client.changes import PendingChange, RecordChange
from accord.client.clock import HybridClock
from accord.client.replica import Replica
from accord.client.store import OfflineStore

__all__ = ["Outbox"]


class Outbox:
    """Holds the offline store, the next ``client_seq`` and the hybrid clock.

    One lock keeps a replica's pending changes in ``client_seq`` order, and a
    change is committed to the store before the replica shows it (so before it
    can be pushed).
    """

    def __init__(self, store: OfflineStore) -> None:
        self.store = store
        self.clock = HybridClock()
        self._next_seq = 0
        self._lock = asyncio.Lock()

    async def open(self, client_id: str | None, default: str) -> str:
        """Open the store; this replica's client_id (``client_id``, the store's, or ``default``)."""
        await self.store.open()
        found, self._next_seq = await self.store.identity(client_id, default)
        return found

    async def queue(
        self, room: str, replica: Replica, collection: str, key: str, op: dict[str, Any]
    ) -> tuple[int, list[RecordChange]]:
        async with self._lock:
            change = PendingChange(self._next_seq, collection, key, op, self.clock.now())
            await asyncio.shield(self.store.add_pending(room, change))
            self._next_seq += 1
            return change.client_seq, replica.add_local(change)

"""The in-process bus: one replica, listeners called directly; it never loses a batch."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from accord.api.sync.v1 import sync_pb2 as pb
from accord.sync.bus import Listener, LossListener

log = logging.getLogger(__name__)


class MemoryBus:
    def __init__(self) -> None:
        self._rooms: dict[str, list[Listener]] = {}
        self._loss_listeners: list[LossListener] = []

    @classmethod
    @asynccontextmanager
    async def open(cls) -> AsyncIterator[MemoryBus]:
        yield cls()

    async def publish(self, batch: pb.ChangeBatch) -> None:
        for listener in list(self._rooms.get(batch.room, ())):
            try:
                listener(batch)
            except Exception:
                log.exception("bus listener failed for room %s", batch.room)

    async def publish_many(self, batches: Sequence[pb.ChangeBatch]) -> None:
        for batch in batches:
            await self.publish(batch)

    async def subscribe(self, room: str, listener: Listener) -> None:
        listeners = self._rooms.setdefault(room, [])
        if listener not in listeners:
            listeners.append(listener)

    async def subscribe_many(self, rooms: Sequence[str], listener: Listener) -> None:
        for room in rooms:
            await self.subscribe(room, listener)

    async def unsubscribe(self, room: str, listener: Listener) -> None:
        listeners = self._rooms.get(room)
        if listeners and listener in listeners:
            listeners.remove(listener)
            if not listeners:
                del self._rooms[room]

    def on_loss(self, listener: LossListener) -> None:
        self._loss_listeners.append(listener)

    def on_recheck_owed(self, listener: Callable[[], None]) -> None:
        """Never called: there are no other replicas."""

    async def request_recheck(self) -> None:
        for listener in list(self._loss_listeners):
            try:
                listener("requested")
            except Exception:
                log.exception("bus loss listener failed")

"""The bus carries committed change batches from the replica that stored them to
every replica with a subscriber for the room. In-process or Redis pub/sub."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from accord.api.sync.v1 import sync_pb2 as pb

Listener = Callable[[pb.ChangeBatch], None]
"""Called on the event loop for every batch of a subscribed room; must not block."""


class Bus(Protocol):
    async def publish(self, batch: pb.ChangeBatch) -> None:
        """Send a committed batch to the room's listeners on every replica."""
        ...

    async def publish_many(self, batches: Sequence[pb.ChangeBatch]) -> None:
        """``publish`` each batch, in order, in one round trip where the bus allows."""
        ...

    async def subscribe(self, room: str, listener: Listener) -> None:
        """Start calling ``listener``; once this returns, every later publish reaches it."""
        ...

    async def subscribe_many(self, rooms: Sequence[str], listener: Listener) -> None:
        """``subscribe`` to each of ``rooms``, in one round trip where the bus allows."""
        ...

    async def unsubscribe(self, room: str, listener: Listener) -> None: ...

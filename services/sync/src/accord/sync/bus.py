"""The bus carries committed change batches from the replica that stored them to
every replica with a subscriber for the room. In-process or Redis pub/sub.

A bus may lose batches (Redis restarting, a connection lost, a replica killed
between commit and publish). It never says which: it tells its loss listeners
that some may be gone, and the subscriptions re-check their rooms against the
log (``recheck.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from accord.api.sync.v1 import sync_pb2 as pb

Listener = Callable[[pb.ChangeBatch], None]
"""Called on the event loop for every batch of a subscribed room; must not block."""

LossReason = Literal["reconnected", "requested"]
"""``reconnected``: this replica's bus connection is back and its subscriptions are
confirmed again. ``requested``: a replica (this one included) called ``request_recheck``."""

LossListener = Callable[[LossReason], None]
"""Called on the event loop when listeners may have missed batches; must not block."""


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

    def on_loss(self, listener: LossListener) -> None:
        """Call ``listener`` whenever batches may have been lost on their way here: once
        the bus's connection is back after a loss and every channel is subscribed again
        (anything published from then on arrives), and at every ``request_recheck``."""
        ...

    def on_recheck_owed(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when batches this bus did not carry to the other replicas (it
        knew none listened) may be wanted there after all; the listener asks every replica
        to re-check (``Rechecker.ask_every_replica``)."""
        ...

    async def request_recheck(self) -> None:
        """Call the loss listeners of every replica, this one's included. Raises
        ``Unavailable`` when the request cannot be sent."""
        ...

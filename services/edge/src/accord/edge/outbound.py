"""A session's outbound queue, bounded in messages and bytes, and the edge's byte budget.

A message for an idle socket is written at once (the fan-out fast path); the
rest wait here for a writer task that runs only while something is queued, so
a slow socket never blocks a room's fan-out. Superseded presence and
broadcast messages are coalesced once a queue backs up. A queue that holds too
many messages or bytes (counting what already sits in the transport's own
buffer) overflows: its messages are dropped at once and its session is cut.
All queues share an edge-wide byte budget; when it runs out, the queues holding
the most bytes overflow first, so no client that never reads can take the edge
down.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from accord.common.tasks import set_within
from accord.edge import metrics
from accord.edge.codes import COALESCE_AFTER
from accord.edge.protocol import Out
from accord.edge.signal import Signal


class Writer(Protocol):
    """Where a queue's messages go (a transport's sending half)."""

    def buffered(self) -> int:
        """Bytes handed to the transport and not yet sent."""
        ...

    def write_now(self, out: Out, binary: bool) -> int | None:
        """Write ``out`` synchronously if the transport is idle: the bytes written, or None."""
        ...

    async def write(self, out: Out, binary: bool) -> int:
        """Write ``out``, waiting for room; the bytes written. Raises ``ConnectionError``."""
        ...


@dataclass(frozen=True, slots=True)
class QueueLimits:
    messages: int  # SEND_QUEUE_SIZE
    bytes: int  # SEND_QUEUE_BYTES


class Budget:
    """The bytes queued by every session of the edge, held under ``limit`` (EDGE_QUEUE_BYTES)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._holders: set[Outbound] = set()

    def take(self, queue: Outbound, size: int) -> None:
        self.total += size
        self._holders.add(queue)
        if self.total > self.limit:
            self._relieve()

    def give_back(self, queue: Outbound, size: int, *, empty: bool) -> None:
        self.total -= size
        if empty:
            self._holders.discard(queue)

    def _relieve(self) -> None:
        for queue in sorted(self._holders, key=lambda q: q.queued_bytes, reverse=True):
            if self.total <= self.limit:
                return
            queue.overflow("slow consumer: the edge's send buffers are full")


class _Slot:
    __slots__ = ("out", "size")

    def __init__(self, out: Out, size: int) -> None:
        self.out = out
        self.size = size


_EMPTY: collections.deque[_Slot] = collections.deque(maxlen=0)
"""Every idle queue's deque (shared: ``send`` gives a queue its own before appending)."""


def _size(out: Out, binary: bool) -> int:
    return len(out.binary() if binary else out.text())


class Outbound:
    # Slots: one of these per connection (memory per idle connection).
    __slots__ = (
        "_budget",
        "_closed",
        "_drained",
        "_latest",
        "_limits",
        "_on_overflow",
        "_queue",
        "_task",
        "_writer",
        "binary",
        "queued_bytes",
    )

    def __init__(
        self,
        writer: Writer,
        limits: QueueLimits,
        budget: Budget,
        on_overflow: Callable[[str], None],
    ) -> None:
        self._writer = writer
        self._limits = limits
        self._budget = budget
        self._on_overflow = on_overflow
        self.binary = False  # the encoding the client last used
        # Messages waiting for the writer task, which runs only while there are any
        # (an idle session has neither: memory per connection).
        self._queue: collections.deque[_Slot] = _EMPTY
        self._latest: dict[tuple[str, ...], _Slot] = {}
        self.queued_bytes = 0
        self._drained = Signal(True)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        return len(self._queue)

    def send(self, out: Out) -> None:
        if self._closed:
            return
        queue = self._queue
        binary = self.binary
        if out.key is not None and len(queue) >= COALESCE_AFTER:
            slot = self._latest.get(out.key)
            if slot is not None:
                if slot.out.message.get("event") == "join" and out.message.get("event") == "update":
                    # The client has not seen the peer yet: it joins with the newer state.
                    out = Out({**out.message, "event": "join"}, out.key)
                size = _size(out, binary)
                self._account(size - slot.size)
                slot.out, slot.size = out, size
                metrics.COALESCED.inc()
                return
        if not queue and self._task is None:
            # Nothing is queued and no write is under way, so writing here keeps the order.
            written = self._writer.write_now(out, binary)
            if written is not None:
                metrics.count_out(out.type, written)
                return
        size = _size(out, binary)
        if len(queue) >= self._limits.messages:
            self.overflow("slow consumer: too many messages queued")
            return
        if queue and self.queued_bytes + self._writer.buffered() + size > self._limits.bytes:
            # (The first message waiting is always taken, however large.)
            self.overflow("slow consumer: too many bytes queued")
            return
        slot = _Slot(out, size)
        if queue is _EMPTY:
            queue = self._queue = collections.deque()
        queue.append(slot)
        self._drained.clear()
        if out.key is not None:
            self._latest[out.key] = slot
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._write_loop())
        self._account(size)

    def _account(self, size: int) -> None:
        self.queued_bytes += size
        if size > 0:
            self._budget.take(self, size)
        elif size < 0:
            self._budget.give_back(self, -size, empty=self.queued_bytes == 0)

    def overflow(self, reason: str) -> None:
        """Drop everything queued, take no more, and have the session cut."""
        if self._closed:
            return
        metrics.SLOW_CONSUMERS.inc()
        self.close()
        self._on_overflow(reason)

    def close(self) -> None:
        """Take no more messages and drop those queued (their bytes go back to the budget)."""
        self._closed = True
        self._queue.clear()
        self._latest.clear()
        self._budget.give_back(self, self.queued_bytes, empty=True)
        self.queued_bytes = 0
        self._drained.set()

    async def _write_loop(self) -> None:
        """Send what is queued, then end (the next queued message starts a new task)."""
        queue = self._queue
        try:
            while queue:
                slot = queue.popleft()
                out = slot.out
                if out.key is not None and self._latest.get(out.key) is slot:
                    del self._latest[out.key]
                self.queued_bytes -= slot.size
                self._budget.give_back(self, slot.size, empty=self.queued_bytes == 0)
                try:
                    written = await self._writer.write(out, self.binary)
                except (ConnectionError, RuntimeError):
                    self.close()
                    return
                metrics.count_out(out.type, written)
        finally:
            self._task = None
            if self._queue is queue and not queue:
                self._queue = _EMPTY
            self._drained.set()

    async def flush(self, timeout: float) -> None:
        """Wait until the writer has sent everything queued (or ``timeout``)."""
        if self._task is None:
            return
        await set_within(self._drained, timeout)

    def cancel(self) -> None:
        """Stop the writer task (the session has ended)."""
        self.close()
        if self._task is not None:
            self._task.cancel()

"""Local fan-out: events of a room go to every watch subscription of that room.

Each store owns one hub. The store feeds it every event of the rooms watched on
this replica (the in-memory store directly, the Redis store from pub/sub) and the
hub tells the store's upstream when a room gains its first or loses its last
watcher. Each subscription has a bounded queue; a subscriber too slow to keep
it from filling is failed with :class:`WatchOverflow` instead of being allowed
to grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from accord.presence.model import Event

log = logging.getLogger(__name__)


class WatchOverflow(Exception):
    """A subscriber fell so far behind that its queue filled up."""


class Upstream(Protocol):
    """Where a room's events come from: told when local interest starts and ends."""

    async def subscribe(self, rooms: Sequence[str]) -> None:
        """Start receiving the events of ``rooms`` (all of them, or raise)."""
        ...

    async def unsubscribe(self, room: str) -> None: ...


class NoUpstream:
    """For stores whose events are all produced in this process."""

    async def subscribe(self, rooms: Sequence[str]) -> None:
        return None

    async def unsubscribe(self, room: str) -> None:
        return None


class Subscription:
    """One watcher's rooms and its bounded queue of events."""

    def __init__(self, hub: Hub, max_queue: int) -> None:
        self._hub = hub
        # None wakes a waiting reader after fail(); it never reaches callers.
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(max_queue)
        self._failure: Exception | None = None
        self.rooms: set[str] = set()

    async def add(self, rooms: Iterable[str]) -> None:
        new = [room for room in dict.fromkeys(rooms) if room not in self.rooms]
        if new:
            await self._hub.attach(new, self)
            self.rooms.update(new)

    async def remove(self, rooms: Iterable[str]) -> None:
        for room in rooms:
            if room in self.rooms:
                self.rooms.discard(room)
                await self._hub.detach(room, self)

    def offer(self, event: Event) -> None:
        if self._failure is not None:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.fail(WatchOverflow(f"watch queue full ({self._queue.maxsize} events)"))

    def fail(self, error: Exception) -> None:
        """End the subscription: the next :meth:`next` raises ``error``."""
        if self._failure is not None:
            return
        self._failure = error
        # A full queue means the reader is not waiting: it finds the failure first.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def next(self) -> Event:
        if self._failure is not None:
            raise self._failure
        event = await self._queue.get()
        if event is None:
            assert self._failure is not None
            raise self._failure
        return event

    def ready(self, limit: int) -> list[Event]:
        """Up to ``limit`` more events already queued, without waiting (after ``next``)."""
        events: list[Event] = []
        queue = self._queue
        while len(events) < limit and not queue.empty():
            event = queue.get_nowait()
            if event is None:  # failed: the next ``next`` raises
                break
            events.append(event)
        return events

    async def close(self) -> None:
        await self.remove(list(self.rooms))


class Hub:
    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        self._rooms: dict[str, set[Subscription]] = {}
        # Serializes first-watcher/last-watcher transitions so that upstream
        # subscribe and unsubscribe of one room never interleave.
        self._lock = asyncio.Lock()

    @property
    def rooms(self) -> frozenset[str]:
        return frozenset(self._rooms)

    @asynccontextmanager
    async def subscription(self, max_queue: int) -> AsyncIterator[Subscription]:
        subscription = Subscription(self, max_queue)
        try:
            yield subscription
        finally:
            await subscription.close()

    def deliver(self, event: Event) -> None:
        for subscription in tuple(self._rooms.get(event.room, ())):
            subscription.offer(event)

    def fail_all(self, error: Exception) -> None:
        """End every subscription, e.g. when events may have been lost."""
        for subscriptions in self._rooms.values():
            for subscription in subscriptions:
                subscription.fail(error)

    async def attach(self, rooms: Sequence[str], subscription: Subscription) -> None:
        """Add ``subscription`` to the watchers of ``rooms``, subscribing upstream (in one
        call) to those it is the first for."""
        async with self._lock:
            first = [room for room in rooms if room not in self._rooms]
            if first:
                await self._upstream.subscribe(first)
            for room in rooms:
                self._rooms.setdefault(room, set()).add(subscription)

    async def detach(self, room: str, subscription: Subscription) -> None:
        async with self._lock:
            watchers = self._rooms.get(room)
            if watchers is None:
                return
            watchers.discard(subscription)
            if watchers:
                return
            del self._rooms[room]
            try:
                await self._upstream.unsubscribe(room)
            except Exception:
                # A channel left subscribed only costs ignored messages.
                log.warning("could not unsubscribe from room %s", room, exc_info=True)

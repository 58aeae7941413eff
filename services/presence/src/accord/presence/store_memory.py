"""The embedded store: the presence rules in this process, events fanned out locally."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from accord.presence.hub import Hub, NoUpstream, Subscription
from accord.presence.model import (
    Counts,
    Event,
    EventKind,
    LeaveReason,
    NotPresent,
    Page,
    Peer,
    Presence,
    broadcast_event,
)
from accord.presence.store import Changed, ignore_changes


class MemoryStore:
    def __init__(
        self,
        ttl: float,
        max_rooms: int,
        clock: Callable[[], float] = time.monotonic,
        changed: Changed = ignore_changes,
    ) -> None:
        self._presence = Presence(ttl, max_rooms)
        self._changed = changed
        self._clock = clock
        self._hub = Hub(NoUpstream())

    async def join(self, room: str, peer: Peer, edge_id: str) -> Event:
        events = self._presence.join(room, peer, edge_id, self._clock())
        self._emit(events)
        return events[0]

    async def update(self, room: str, session_id: str, state_json: str) -> Event:
        event = self._presence.update(room, session_id, state_json, self._clock())
        self._emit([event])
        return event

    async def update_many(
        self, updates: Sequence[tuple[str, str, str]]
    ) -> list[Event | NotPresent]:
        results: list[Event | NotPresent] = []
        for room, session_id, state_json in updates:
            try:
                results.append(await self.update(room, session_id, state_json))
            except NotPresent as error:
                results.append(error)
        return results

    async def leave(self, session_id: str, room: str | None, reason: LeaveReason) -> list[str]:
        events = self._presence.leave(session_id, room, reason)
        self._emit(events)
        return [event.room for event in events if event.kind is EventKind.LEAVE]

    def _emit(self, events: Sequence[Event]) -> None:
        for event in events:
            self._hub.deliver(event)
        self._changed(events)

    async def heartbeat(self, edge_id: str, session_ids: Sequence[str]) -> list[str]:
        return self._presence.heartbeat(edge_id, session_ids, self._clock())

    async def list(self, room: str, limit: int, cursor: str) -> Page:
        return self._presence.list(room, limit, cursor)

    async def counts(self, room: str) -> Counts:
        return self._presence.counts(room)

    async def broadcast(
        self, room: str, from_session_id: str, data_json: str, channel: str = ""
    ) -> None:
        self._hub.deliver(broadcast_event(room, from_session_id, data_json, channel))

    async def sweep(self) -> tuple[int, int]:
        swept = self._presence.expire(self._clock())
        self._emit(swept.events)
        return swept.sessions, sum(1 for e in swept.events if e.kind is EventKind.LEAVE)

    async def count_sessions(self) -> int:
        return self._presence.session_count

    async def count_users(self) -> int:
        return self._presence.user_count

    def subscription(self, max_queue: int) -> AbstractAsyncContextManager[Subscription]:
        return self._hub.subscription(max_queue)


@asynccontextmanager
async def open_memory_store(
    ttl: float, max_rooms: int, changed: Changed = ignore_changes
) -> AsyncIterator[MemoryStore]:
    yield MemoryStore(ttl, max_rooms, changed=changed)

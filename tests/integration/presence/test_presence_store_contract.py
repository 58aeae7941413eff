"""One contract for every presence store: in-memory and Redis (the ``backend`` fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from accord.presence.hub import Subscription
from accord.presence.model import (
    Event,
    EventKind,
    LeaveReason,
    NotPresent,
    Peer,
    TooManyRooms,
)
from accord.presence.store import PresenceStore
from accord.presence.store_memory import MemoryStore
from accord.presence.store_redis import open_redis_store

WAIT = 10.0


class Backend:
    """Opens stores; every store opened from one backend is a replica of the others.

    In-memory "replicas" are the same store (one process holds the state);
    Redis replicas are separate clients and pub/sub connections on one prefix.
    """

    def __init__(self, stack: AsyncExitStack, redis: tuple[str, str] | None) -> None:
        self._stack = stack
        self._redis = redis
        self._memory: MemoryStore | None = None

    async def open(self, ttl: float = 60.0, max_rooms: int = 100) -> PresenceStore:
        if self._redis is None:
            if self._memory is None:
                self._memory = MemoryStore(ttl, max_rooms)
            return self._memory
        url, prefix = self._redis
        return await self._stack.enter_async_context(open_redis_store(url, prefix, ttl, max_rooms))

    async def watch(self, store: PresenceStore, *rooms: str, max_queue: int = 100) -> Subscription:
        subscription = await self._stack.enter_async_context(store.subscription(max_queue))
        await subscription.add(rooms)
        return subscription


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def backend_redis(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    """None for the in-memory store; (url, prefix) for Redis."""
    if request.param == "memory":
        return None
    return request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")


@pytest.fixture
async def backend(backend_redis: tuple[str, str] | None) -> AsyncIterator[Backend]:
    async with AsyncExitStack() as stack:
        yield Backend(stack, backend_redis)


def peer(session_id: str, state: str = "{}") -> Peer:
    return Peer(session_id, f"user-{session_id}", "client", '{"name":"N"}', state)


async def next_event(subscription: Subscription) -> Event:
    return await asyncio.wait_for(subscription.next(), WAIT)


async def events_until_marker(
    store: PresenceStore, subscription: Subscription, room: str
) -> list[Event]:
    """Every event before a broadcast marker sent now: pub/sub keeps publish order."""
    await store.broadcast(room, "marker", '{"marker":true}')
    events: list[Event] = []
    while True:
        event = await next_event(subscription)
        if event.kind is EventKind.BROADCAST and event.from_session_id == "marker":
            return events
        events.append(event)


async def test_join_then_rejoin_emit_join_then_update(backend: Backend) -> None:
    store = await backend.open()
    watch = await backend.watch(store, "r")
    joined = await store.join("r", peer("s1", '{"a":1}'), "edge-1")
    rejoined = await store.join("r", peer("s1", '{"a":2}'), "edge-1")
    assert joined == Event("r", EventKind.JOIN, peer("s1", '{"a":1}'))
    assert rejoined == Event("r", EventKind.UPDATE, peer("s1", '{"a":2}'))
    assert await next_event(watch) == joined
    assert await next_event(watch) == rejoined
    page = await store.list("r", 0, "")
    assert page.peers == (peer("s1", '{"a":2}'),)
    assert page.count == 1


async def test_update_replaces_state_of_a_present_session(backend: Backend) -> None:
    store = await backend.open()
    await store.join("r", peer("s1"), "edge-1")
    watch = await backend.watch(store, "r")
    event = await store.update("r", "s1", '{"cursor":[1,2],"path":"a/b"}')
    assert event == Event("r", EventKind.UPDATE, peer("s1", '{"cursor":[1,2],"path":"a/b"}'))
    assert await next_event(watch) == event
    assert (await store.list("r", 0, "")).peers == (event.peer,)


async def test_update_of_an_absent_session_is_refused(backend: Backend) -> None:
    store = await backend.open()
    await store.join("other", peer("s1"), "edge-1")
    with pytest.raises(NotPresent):
        await store.update("r", "s1", "{}")
    assert (await store.list("r", 0, "")).count == 0


async def test_leave_one_room_then_all(backend: Backend) -> None:
    store = await backend.open()
    watch = await backend.watch(store, "a", "b", "c")
    for room in ("c", "a", "b"):
        await store.join(room, peer("s1"), "edge-1")
    assert await store.leave("s1", "b", LeaveReason.UNSUBSCRIBE) == ["b"]
    assert await store.leave("s1", "b", LeaveReason.UNSUBSCRIBE) == []
    assert await store.leave("s1", None, LeaveReason.DISCONNECT) == ["a", "c"]
    events = await events_until_marker(store, watch, "a")
    leaves = [(e.room, e.reason, e.peer) for e in events if e.kind is EventKind.LEAVE]
    assert leaves == [
        ("b", LeaveReason.UNSUBSCRIBE, peer("s1")),
        ("a", LeaveReason.DISCONNECT, peer("s1")),
        ("c", LeaveReason.DISCONNECT, peer("s1")),
    ]
    assert await store.heartbeat("edge-1", ["s1"]) == ["s1"]
    assert await store.count_sessions() == 0


async def test_room_limit_per_session(backend: Backend) -> None:
    store = await backend.open(max_rooms=2)
    await store.join("a", peer("s1"), "e")
    await store.join("b", peer("s1"), "e")
    await store.join("b", peer("s1", '{"again":true}'), "e")
    with pytest.raises(TooManyRooms):
        await store.join("c", peer("s1"), "e")
    assert (await store.list("c", 0, "")).count == 0
    await store.join("c", peer("s2"), "e")


async def test_heartbeat_reports_unknown_sessions(backend: Backend) -> None:
    store = await backend.open()
    await store.join("r", peer("s1"), "edge-1")
    await store.join("r", peer("s2"), "edge-1")
    assert await store.heartbeat("edge-1", ["s1", "ghost", "s2", "gone"]) == ["ghost", "gone"]
    assert await store.heartbeat("edge-1", []) == []
    assert await store.count_sessions() == 2


async def test_list_pages_with_limit_and_cursor(backend: Backend) -> None:
    store = await backend.open()
    ids = ["s5", "s1", "s7", "s3", "s2", "s6", "s4"]
    for sid in ids:
        await store.join("r", peer(sid), "e")
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        page = await store.list("r", 3, cursor)
        assert page.count == 7
        seen.extend(p.session_id for p in page.peers)
        pages += 1
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids)
    assert pages == 3
    everything = await store.list("r", 0, "")
    assert [p.session_id for p in everything.peers] == sorted(ids)
    assert everything.next_cursor == ""
    assert (await store.list("r", 3, "s6")).peers == (peer("s7"),)


async def test_broadcast_reaches_watchers_of_the_room_and_is_not_stored(backend: Backend) -> None:
    store = await backend.open()
    watch_r = await backend.watch(store, "r")
    watch_other = await backend.watch(store, "other")
    await store.broadcast("r", "s1", '{"emoji":"🎉"}')
    event = await next_event(watch_r)
    assert event == Event(
        "r", EventKind.BROADCAST, from_session_id="s1", data_json='{"emoji":"🎉"}'
    )
    assert await events_until_marker(store, watch_other, "other") == []
    assert (await store.list("r", 0, "")).count == 0


async def test_removed_rooms_stop_delivering(backend: Backend) -> None:
    store = await backend.open()
    watch = await backend.watch(store, "a", "b")
    await watch.remove(["a"])
    await store.join("a", peer("s1"), "e")
    assert await events_until_marker(store, watch, "b") == []
    await watch.add(["a"])
    await store.leave("s1", "a", LeaveReason.UNSUBSCRIBE)
    assert (await next_event(watch)).kind is EventKind.LEAVE


async def test_events_cross_replicas(backend: Backend) -> None:
    first, second = await backend.open(), await backend.open()
    watch_first = await backend.watch(first, "r")
    watch_second = await backend.watch(second, "r")
    await second.join("r", peer("s1"), "edge-b")
    await first.broadcast("r", "s9", '{"hi":1}')
    for watch in (watch_first, watch_second):
        assert await next_event(watch) == Event("r", EventKind.JOIN, peer("s1"))
        broadcast = await next_event(watch)
        assert (broadcast.kind, broadcast.data_json) == (EventKind.BROADCAST, '{"hi":1}')
    assert (await first.list("r", 0, "")).peers == (peer("s1"),)


async def test_expiry_emits_exactly_one_timeout_leave_with_two_sweepers(backend: Backend) -> None:
    first, second = await backend.open(ttl=0.3), await backend.open(ttl=0.3)
    watch = await backend.watch(first, "a", "b")
    await first.join("a", peer("s1"), "e")
    await second.join("b", peer("s1"), "e")
    expired = leaves = rounds_after = 0
    async with asyncio.timeout(WAIT):
        while rounds_after < 5:
            for sessions, left in await asyncio.gather(first.sweep(), second.sweep()):
                expired += sessions
                leaves += left
            if expired:
                rounds_after += 1
            await asyncio.sleep(0.02)
    assert (expired, leaves) == (1, 2)
    events = await events_until_marker(first, watch, "a")
    assert [(e.room, e.kind, e.reason) for e in events[2:]] == [
        ("a", EventKind.LEAVE, LeaveReason.TIMEOUT),
        ("b", EventKind.LEAVE, LeaveReason.TIMEOUT),
    ]
    assert await first.heartbeat("e", ["s1"]) == ["s1"]
    assert await second.count_sessions() == 0


async def test_heartbeats_prevent_expiry(backend: Backend) -> None:
    store = await backend.open(ttl=1.0)
    await store.join("r", peer("s1"), "e")
    await store.join("r", peer("s2"), "e")
    expired: list[int] = []
    # Heartbeat s1 every 50 ms for 2.5 TTLs; s2 gets none and must go.
    for _ in range(50):
        assert await store.heartbeat("e", ["s1"]) == []
        expired.append((await store.sweep())[0])
        await asyncio.sleep(0.05)
    assert sum(expired) == 1
    assert [p.session_id for p in (await store.list("r", 0, "")).peers] == ["s1"]

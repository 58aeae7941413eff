"""One contract for every presence store: in-memory and Redis (the ``backend`` fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from accord.presence.hub import Subscription
from accord.presence.model import (
    Counts,
    Event,
    EventKind,
    LeaveReason,
    NotPresent,
    Peer,
    TooManyRooms,
    UserMismatch,
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
    assert await next_event(watch) == Event("r", EventKind.USER_ONLINE, peer("s1", '{"a":1}'))
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


async def test_update_many_applies_in_order_and_answers_each(backend: Backend) -> None:
    store = await backend.open()
    for sid in ("s1", "s2"):
        await store.join("r", peer(sid), "edge-1")
    watch = await backend.watch(store, "r")
    outcomes = await store.update_many(
        [
            ("r", "s1", '{"n":1}'),
            ("r", "absent", "{}"),
            ("r", "s2", '{"n":2}'),
            ("elsewhere", "s1", "{}"),
            ("r", "s1", '{"n":3}'),
        ]
    )
    assert [type(o).__name__ for o in outcomes] == [
        "Event",
        "NotPresent",
        "Event",
        "NotPresent",
        "Event",
    ]
    applied = [o for o in outcomes if isinstance(o, Event)]
    assert [(e.peer.session_id, e.peer.state_json) for e in applied] == [
        ("s1", '{"n":1}'),
        ("s2", '{"n":2}'),
        ("s1", '{"n":3}'),
    ]
    # Watchers see the updates in the order given.
    assert [await next_event(watch) for _ in range(3)] == applied
    listed = {p.session_id: p.state_json for p in (await store.list("r", 0, "")).peers}
    assert listed == {"s1": '{"n":3}', "s2": '{"n":2}'}
    assert await store.update_many([]) == []


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
        assert await next_event(watch) == Event("r", EventKind.USER_ONLINE, peer("s1"))
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
    assert [(e.room, e.kind, e.reason) for e in events[4:]] == [
        ("a", EventKind.LEAVE, LeaveReason.TIMEOUT),
        ("a", EventKind.USER_OFFLINE, LeaveReason.TIMEOUT),
        ("b", EventKind.LEAVE, LeaveReason.TIMEOUT),
        ("b", EventKind.USER_OFFLINE, LeaveReason.TIMEOUT),
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


def tab(session_id: str, user_id: str = "ada") -> Peer:
    return Peer(session_id, user_id, f"tab-{session_id}", '{"name":"Ada"}', "{}")


async def test_a_user_with_three_tabs_comes_online_and_goes_offline_once(
    backend: Backend,
) -> None:
    first, second = await backend.open(), await backend.open()
    watch = await backend.watch(second, "r")
    for sid in ("t1", "t2", "t3"):
        await first.join("r", tab(sid), "edge-1")
    await first.join("r", tab("b1", "bob"), "edge-1")
    assert await first.counts("r") == Counts(sessions=4, users=2)
    page = await second.list("r", 1, "")
    assert (page.count, page.users, len(page.peers)) == (4, 2, 1)
    assert await second.count_users() == 2
    await first.leave("t1", "r", LeaveReason.UNSUBSCRIBE)
    await first.leave("t2", None, LeaveReason.DISCONNECT)
    await first.leave("t3", None, LeaveReason.DISCONNECT)
    events = await events_until_marker(first, watch, "r")
    assert [(e.kind, e.peer.session_id if e.peer else "") for e in events] == [
        (EventKind.JOIN, "t1"),
        (EventKind.USER_ONLINE, "t1"),
        (EventKind.JOIN, "t2"),
        (EventKind.JOIN, "t3"),
        (EventKind.JOIN, "b1"),
        (EventKind.USER_ONLINE, "b1"),
        (EventKind.LEAVE, "t1"),
        (EventKind.LEAVE, "t2"),
        (EventKind.LEAVE, "t3"),
        (EventKind.USER_OFFLINE, "t3"),
    ]
    assert events[-1].reason is LeaveReason.DISCONNECT
    assert await second.counts("r") == Counts(sessions=1, users=1)
    assert await first.count_users() == 1


async def test_users_are_counted_per_room_and_once_overall(backend: Backend) -> None:
    store = await backend.open()
    await store.join("a", tab("t1"), "e")
    await store.join("b", tab("t1"), "e")
    await store.join("b", tab("t2"), "e")
    await store.join("b", Peer("anon-1"), "e")
    await store.join("b", Peer("anon-2"), "e")
    assert await store.counts("a") == Counts(1, 1)
    assert await store.counts("b") == Counts(4, 3)
    assert (await store.list("b", 0, "")).users == 3
    assert await store.count_users() == 3
    assert await store.counts("nowhere") == Counts(0, 0)
    await store.leave("t1", None, LeaveReason.DISCONNECT)
    assert await store.counts("a") == Counts(0, 0)
    assert await store.counts("b") == Counts(3, 3)
    assert await store.count_users() == 3
    await store.leave("t2", None, LeaveReason.DISCONNECT)
    assert await store.count_users() == 2


async def test_a_session_cannot_join_as_another_user(backend: Backend) -> None:
    store = await backend.open()
    watch = await backend.watch(store, "a", "b")
    await store.join("a", tab("t1", "ada"), "e")
    with pytest.raises(UserMismatch):
        await store.join("b", tab("t1", "eve"), "e")
    with pytest.raises(UserMismatch):
        await store.join("a", tab("t1", "eve"), "e")
    assert (await store.list("a", 0, "")).peers == (tab("t1", "ada"),)
    assert await store.counts("b") == Counts(0, 0)
    events = await events_until_marker(store, watch, "a")
    assert [e.kind for e in events] == [EventKind.JOIN, EventKind.USER_ONLINE]


async def test_expiry_takes_the_user_offline_with_its_last_session(backend: Backend) -> None:
    store = await backend.open(ttl=0.5)
    watch = await backend.watch(store, "r")
    await store.join("r", tab("t1"), "e")
    await store.join("r", tab("t2"), "e")
    # t2 keeps beating while t1 expires; then t2 stops too.
    async with asyncio.timeout(WAIT):
        while await store.counts("r") != Counts(1, 1):
            assert await store.heartbeat("e", ["t2"]) == []
            await store.sweep()
            await asyncio.sleep(0.05)
    async with asyncio.timeout(WAIT):
        while True:
            if (await store.sweep())[0]:
                break
            await asyncio.sleep(0.05)
    events = await events_until_marker(store, watch, "r")
    assert [(e.kind, e.peer.session_id if e.peer else "", e.reason) for e in events[3:]] == [
        (EventKind.LEAVE, "t1", LeaveReason.TIMEOUT),
        (EventKind.LEAVE, "t2", LeaveReason.TIMEOUT),
        (EventKind.USER_OFFLINE, "t2", LeaveReason.TIMEOUT),
    ]
    assert await store.count_users() == 0


async def test_broadcast_channel_reaches_watchers(backend: Backend) -> None:
    first, second = await backend.open(), await backend.open()
    watch = await backend.watch(second, "r")
    await first.broadcast("r", "s1", '{"x":1}', "cursor")
    assert await next_event(watch) == Event(
        "r", EventKind.BROADCAST, from_session_id="s1", data_json='{"x":1}', channel="cursor"
    )

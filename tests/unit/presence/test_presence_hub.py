"""Local fan-out: room routing, upstream interest, bounded queues."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from accord.presence.hub import Hub, WatchOverflow
from accord.presence.model import Event, EventKind


class RecordingUpstream:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.subscribe_calls: list[list[str]] = []

    async def subscribe(self, rooms: Sequence[str]) -> None:
        self.subscribe_calls.append(list(rooms))
        self.calls.extend(("subscribe", room) for room in rooms)

    async def unsubscribe(self, room: str) -> None:
        self.calls.append(("unsubscribe", room))


def broadcast(room: str, n: int = 0) -> Event:
    return Event(room, EventKind.BROADCAST, data_json=f'{{"n":{n}}}')


async def test_events_reach_only_watchers_of_their_room() -> None:
    hub = Hub(RecordingUpstream())
    async with hub.subscription(10) as a, hub.subscription(10) as b:
        await a.add(["r1"])
        await b.add(["r1", "r2"])
        hub.deliver(broadcast("r2"))
        hub.deliver(broadcast("r1"))
        hub.deliver(broadcast("r3"))
        assert await a.next() == broadcast("r1")
        assert await b.next() == broadcast("r2")
        assert await b.next() == broadcast("r1")
        await b.remove(["r1"])
        hub.deliver(broadcast("r1", 2))
        assert await a.next() == broadcast("r1", 2)
        hub.deliver(broadcast("r2", 3))
        assert await b.next() == broadcast("r2", 3)


async def test_upstream_hears_only_first_and_last_interest() -> None:
    upstream = RecordingUpstream()
    hub = Hub(upstream)
    async with hub.subscription(10) as a:
        async with hub.subscription(10) as b:
            await a.add(["r"])
            await b.add(["r"])
            await a.add(["r"])
            assert hub.rooms == {"r"}
        assert upstream.calls == [("subscribe", "r")]
    assert upstream.calls == [("subscribe", "r"), ("unsubscribe", "r")]
    assert hub.rooms == frozenset()


async def test_many_rooms_added_at_once_take_one_upstream_call() -> None:
    upstream = RecordingUpstream()
    hub = Hub(upstream)
    async with hub.subscription(10) as a, hub.subscription(10) as b:
        await a.add(["r1", "r2", "r1"])
        await b.add(["r2", "r3", "r4"])
        assert upstream.subscribe_calls == [["r1", "r2"], ["r3", "r4"]]
        assert hub.rooms == {"r1", "r2", "r3", "r4"}
        hub.deliver(broadcast("r2", 1))
        assert await a.next() == broadcast("r2", 1)
        assert await b.next() == broadcast("r2", 1)


async def test_a_full_queue_fails_the_subscriber_not_the_others() -> None:
    hub = Hub(RecordingUpstream())
    async with hub.subscription(2) as slow, hub.subscription(10) as fast:
        await slow.add(["r"])
        await fast.add(["r"])
        for n in range(3):
            hub.deliver(broadcast("r", n))
        with pytest.raises(WatchOverflow):
            await slow.next()
        assert [await fast.next() for _ in range(3)] == [broadcast("r", n) for n in range(3)]


async def test_fail_wakes_a_waiting_reader() -> None:
    hub = Hub(RecordingUpstream())
    async with hub.subscription(2) as watch:
        waiting = asyncio.create_task(watch.next())
        await asyncio.sleep(0)
        watch.fail(RuntimeError("stop"))
        with pytest.raises(RuntimeError, match="stop"):
            await asyncio.wait_for(waiting, 5)

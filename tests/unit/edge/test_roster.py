"""The edge's Roster against a fake presence client: sync, fan-out, holding, unwatch, resync.

The fake implements only what ``Roster`` calls: ``watch`` (the Watch stream,
acknowledging every added room with a ``WATCHING`` event) and ``list``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from accord.api.presence.v1 import presence_pb2 as ppb
from accord.edge.protocol import Out
from accord.edge.roster import Held, Roster

WAIT = 5.0


class FakeWatch:
    """One Watch stream: answers each added room with WATCHING; ``push`` sends events."""

    def __init__(self, requests: AsyncIterator[ppb.WatchRequest]) -> None:
        self._requests = requests
        self._out: asyncio.Queue[ppb.PresenceEvents | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.watched: set[str] = set()

    async def wait_for_connection(self) -> None:
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for request in self._requests:
            self.watched.update(request.add)
            self.watched.difference_update(request.remove)
            if request.add:
                self.push(
                    *(ppb.PresenceEvent(kind=ppb.EVENT_KIND_WATCHING, room=r) for r in request.add)
                )

    def push(self, *events: ppb.PresenceEvent) -> None:
        self._out.put_nowait(ppb.PresenceEvents(events=list(events)))

    def end(self) -> None:
        """The server ends the stream (the edge re-opens it)."""
        self._out.put_nowait(None)

    def __aiter__(self) -> FakeWatch:
        return self

    async def __anext__(self) -> ppb.PresenceEvents:
        message = await self._out.get()
        if message is None:
            raise StopAsyncIteration
        return message

    def cancel(self) -> None:
        if self._reader is not None:
            self._reader.cancel()


class FakePresence:
    """What ``Roster`` calls on a ``PresenceClient``: ``watch`` and ``list``."""

    def __init__(self) -> None:
        self.peers: dict[str, list[dict[str, Any]]] = {}
        self.streams: list[FakeWatch] = []
        self.opened = asyncio.Event()

    def watch(self, requests: AsyncIterator[ppb.WatchRequest]) -> FakeWatch:
        stream = FakeWatch(requests)
        self.streams.append(stream)
        self.opened.set()
        return stream

    async def list(self, room: str, *, limit: int = 0) -> dict[str, Any]:
        peers = self.peers.get(room, [])
        return {"peers": peers[:limit] if limit else peers, "count": len(peers), "users": 0}

    @property
    def stream(self) -> FakeWatch:
        return self.streams[-1]


class Watcher:
    """A subscriber recording what it is sent."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def send(self, out: Out) -> None:
        self.inbox.put_nowait(out.message)

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.inbox.get(), WAIT)


def peer(session_id: str, **state: Any) -> ppb.Peer:
    return ppb.Peer(
        session_id=session_id,
        user_id=f"u-{session_id}",
        client_id="c",
        user_json="{}",
        state_json=json.dumps(state),
    )


def join(room: str, session_id: str, **state: Any) -> ppb.PresenceEvent:
    return ppb.PresenceEvent(kind=ppb.EVENT_KIND_JOIN, room=room, peer=peer(session_id, **state))


@pytest.fixture
async def roster() -> AsyncIterator[tuple[Roster, FakePresence]]:
    presence = FakePresence()
    async with Roster(presence, confirm_timeout=WAIT, sync_limit=10) as roster:  # type: ignore[arg-type]
        await asyncio.wait_for(roster.feed.connected.wait(), WAIT)
        yield roster, presence


async def test_watch_then_sync_lists_the_room_once_presence_confirms(
    roster: tuple[Roster, FakePresence],
) -> None:
    r, presence = roster
    presence.peers["room"] = [{"session_id": "p1", "state": {"x": 1}}]
    r.watch("room", Watcher("s1"))
    message = await asyncio.wait_for(r.sync("room"), WAIT)
    assert message == {
        "type": "presence",
        "room": "room",
        "event": "sync",
        "peers": [{"session_id": "p1", "state": {"x": 1}}],
        "count": 1,
        "users": 0,
    }
    assert presence.stream.watched == {"room"}


async def test_events_fan_out_to_every_watcher_but_the_peer_itself(
    roster: tuple[Roster, FakePresence],
) -> None:
    r, presence = roster
    a, b, c = Watcher("a"), Watcher("b"), Watcher("c")
    for w in (a, b, c):
        r.watch("room", w)
    await r.confirmed("room")
    presence.stream.push(join("room", "a", typing=True))
    for w in (b, c):
        message = await w.next()
        assert message["event"] == "join"
        assert message["peer"]["session_id"] == "a"
        assert message["peer"]["state"] == {"typing": True}
    # `a` got nothing for its own join: a later event for it is the first it sees.
    presence.stream.push(join("room", "b"))
    assert (await a.next())["peer"]["session_id"] == "b"


async def test_a_held_watcher_gets_its_events_only_after_release(
    roster: tuple[Roster, FakePresence],
) -> None:
    r, presence = roster
    target, marker = Watcher("s1"), Watcher("s2")
    held = Held(target)
    r.watch("room", held)
    r.watch("room", marker)
    await r.confirmed("room")
    presence.stream.push(join("room", "p1"))
    assert (await marker.next())["event"] == "join"  # the event has been fanned out
    assert target.inbox.empty()
    target.send(Out(await r.sync("room")))
    held.release()
    assert (await target.next())["event"] == "sync"
    assert (await target.next())["peer"]["session_id"] == "p1"
    presence.stream.push(join("room", "p2"))  # after release, events pass straight through
    assert (await target.next())["peer"]["session_id"] == "p2"


async def test_unwatch_stops_the_events_and_the_last_one_ends_the_watch(
    roster: tuple[Roster, FakePresence],
) -> None:
    r, presence = roster
    gone, stays = Watcher("gone"), Watcher("stays")
    r.watch("room", gone)
    r.watch("room", stays)
    await r.confirmed("room")
    r.unwatch("room", gone)
    presence.stream.push(join("room", "p1"))
    assert (await stays.next())["peer"]["session_id"] == "p1"
    assert gone.inbox.empty()
    r.unwatch("room", stays)
    assert "room" not in r.rooms
    r.watch("other", Watcher("marker"))  # a later add: the remove has been read before it
    await r.confirmed("other")
    assert presence.stream.watched == {"other"}


async def test_a_reconnected_stream_watches_again_and_resyncs_every_watcher(
    roster: tuple[Roster, FakePresence],
) -> None:
    r, presence = roster
    w = Watcher("s1")
    r.watch("room", w)
    await r.confirmed("room")
    first = presence.stream
    presence.peers["room"] = [{"session_id": "p9"}]  # joined while the stream was down
    presence.opened.clear()
    first.end()
    await asyncio.wait_for(presence.opened.wait(), WAIT)
    assert presence.stream is not first
    message = await w.next()
    assert message["event"] == "sync"
    assert message["peers"] == [{"session_id": "p9"}]
    assert presence.stream.watched == {"room"}
    assert r.rooms["room"].confirmed.is_set()

"""The gRPC service end to end: a real grpc.aio server on port 0 and a real channel."""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.request
from collections.abc import AsyncIterator, Iterable

import grpc
import pytest
from accord.api.presence.v1 import presence_pb2 as pb
from accord.api.presence.v1.presence_pb2_grpc import PresenceStub
from accord.common.grpc_security import ServerSecurity
from accord.common.grpcutil import check_health, create_channel, reason_of
from accord.presence.app import Running, serve
from accord.presence.servicer import SERVICE_NAME
from accord.presence.settings import Settings

WAIT = 10.0

BASE = Settings(
    presence_addr=("127.0.0.1", 0),
    grpc=ServerSecurity.unprotected(),
    metrics_addr=None,
    heartbeat_interval=10.0,
    presence_ttl=30.0,
    sweep_interval=0.05,
    max_state_bytes=256,
    max_rooms_per_session=3,
    shutdown_grace=1.0,
)


def peer(session_id: str, state: str = "{}") -> pb.Peer:
    return pb.Peer(
        session_id=session_id,
        user_id="u-" + session_id,
        client_id="c",
        user_json="{}",
        state_json=state,
    )


class Watch:
    """One Watch call whose requests are fed from a queue."""

    def __init__(self, stub: PresenceStub) -> None:
        self._requests: asyncio.Queue[pb.WatchRequest] = asyncio.Queue()
        self.call = stub.Watch(self._feed())

    async def _feed(self) -> AsyncIterator[pb.WatchRequest]:
        while True:
            yield await self._requests.get()

    async def add(self, *rooms: str) -> None:
        """Watch ``rooms`` and wait until the service confirms each one."""
        self._requests.put_nowait(pb.WatchRequest(add=rooms, ack=True))
        for room in rooms:
            event = await self.next()
            assert (event.kind, event.room) == (pb.EVENT_KIND_WATCHING, room)

    def send(self, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
        self._requests.put_nowait(pb.WatchRequest(add=add, remove=remove))

    async def next(self) -> pb.PresenceEvent:
        event = await asyncio.wait_for(self.call.read(), WAIT)
        assert event is not grpc.aio.EOF
        return event  # type: ignore[no-any-return]

    async def until_marker(self, stub: PresenceStub, room: str) -> list[pb.PresenceEvent]:
        """Every event before a broadcast marker sent now."""
        await stub.Broadcast(pb.BroadcastRequest(room=room, from_session_id="marker"), timeout=WAIT)
        events = []
        while (event := await self.next()).from_session_id != "marker":
            events.append(event)
        return events

    async def error(self) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            while True:
                await asyncio.wait_for(self.call.read(), WAIT)
        return raised.value


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    async with serve(BASE) as running:
        yield running


async def open_stub(running: Running) -> tuple[grpc.aio.Channel, PresenceStub]:
    channel = create_channel(f"127.0.0.1:{running.port}")
    return channel, PresenceStub(channel)


@pytest.fixture
async def stub(running: Running) -> AsyncIterator[PresenceStub]:
    channel, stub = await open_stub(running)
    async with channel:
        yield stub


async def test_health_is_serving(running: Running) -> None:
    async with create_channel(f"127.0.0.1:{running.port}") as channel:
        assert await check_health(channel, "")
        assert await check_health(channel, SERVICE_NAME)


async def test_join_update_list_leave_reach_the_watcher(stub: PresenceStub) -> None:
    watch = Watch(stub)
    await watch.add("r")
    await stub.Join(pb.JoinRequest(room="r", peer=peer("s1"), edge_id="edge-1"), timeout=WAIT)
    joined = await watch.next()
    assert (joined.room, joined.kind, joined.peer) == ("r", pb.EVENT_KIND_JOIN, peer("s1"))
    online = await watch.next()
    assert (online.kind, online.peer) == (pb.EVENT_KIND_USER_ONLINE, peer("s1"))

    await stub.Update(
        pb.UpdateRequest(room="r", session_id="s1", state_json='{"x":1}'), timeout=WAIT
    )
    updated = await watch.next()
    assert (updated.kind, updated.peer.state_json) == (pb.EVENT_KIND_UPDATE, '{"x":1}')
    listed = await stub.List(pb.ListRequest(room="r"), timeout=WAIT)
    assert list(listed.peers) == [peer("s1", '{"x":1}')]
    assert listed.count == 1

    left = await stub.Leave(
        pb.LeaveRequest(room="r", session_id="s1", reason=pb.LEAVE_REASON_UNSUBSCRIBE), timeout=WAIT
    )
    assert list(left.rooms) == ["r"]
    leave = await watch.next()
    assert (leave.kind, leave.reason, leave.peer.session_id) == (
        pb.EVENT_KIND_LEAVE,
        pb.LEAVE_REASON_UNSUBSCRIBE,
        "s1",
    )
    watch.call.cancel()


async def test_join_with_empty_json_stores_empty_objects(stub: PresenceStub) -> None:
    bare = pb.Peer(session_id="s1", user_id="u1")
    await stub.Join(pb.JoinRequest(room="r", peer=bare), timeout=WAIT)
    listed = await stub.List(pb.ListRequest(room="r"), timeout=WAIT)
    assert (listed.peers[0].user_json, listed.peers[0].state_json) == ("{}", "{}")


async def test_leave_every_room_on_disconnect(stub: PresenceStub) -> None:
    watch = Watch(stub)
    await watch.add("a", "b")
    for room in ("b", "a"):
        await stub.Join(pb.JoinRequest(room=room, peer=peer("s1")), timeout=WAIT)
    # An unspecified reason on an every-room leave means disconnect.
    left = await stub.Leave(pb.LeaveRequest(session_id="s1"), timeout=WAIT)
    assert list(left.rooms) == ["a", "b"]
    events = await watch.until_marker(stub, "a")
    leaves = [(e.room, e.reason) for e in events if e.kind == pb.EVENT_KIND_LEAVE]
    assert leaves == [("a", pb.LEAVE_REASON_DISCONNECT), ("b", pb.LEAVE_REASON_DISCONNECT)]
    beat = await stub.Heartbeat(pb.HeartbeatRequest(edge_id="e", session_ids=["s1"]), timeout=WAIT)
    assert list(beat.unknown_session_ids) == ["s1"]
    watch.call.cancel()


async def test_heartbeat_returns_unknown_ids(stub: PresenceStub) -> None:
    await stub.Join(pb.JoinRequest(room="r", peer=peer("s1"), edge_id="e"), timeout=WAIT)
    beat = await stub.Heartbeat(
        pb.HeartbeatRequest(edge_id="e", session_ids=["s1", "ghost"]), timeout=WAIT
    )
    assert list(beat.unknown_session_ids) == ["ghost"]


async def test_list_pages(stub: PresenceStub) -> None:
    for sid in ("s3", "s1", "s2"):
        await stub.Join(pb.JoinRequest(room="r", peer=peer(sid)), timeout=WAIT)
    first = await stub.List(pb.ListRequest(room="r", limit=2), timeout=WAIT)
    assert [p.session_id for p in first.peers] == ["s1", "s2"]
    assert (first.next_cursor, first.count) == ("s2", 3)
    rest = await stub.List(
        pb.ListRequest(room="r", limit=2, cursor=first.next_cursor), timeout=WAIT
    )
    assert [p.session_id for p in rest.peers] == ["s3"]
    assert rest.next_cursor == ""


async def test_broadcast_reaches_only_watchers_of_the_room(stub: PresenceStub) -> None:
    inside, outside = Watch(stub), Watch(stub)
    await inside.add("r")
    await outside.add("other")
    await stub.Broadcast(
        pb.BroadcastRequest(room="r", from_session_id="s1", data_json='{"wave":true}'), timeout=WAIT
    )
    event = await inside.next()
    assert (event.kind, event.room, event.from_session_id, event.data_json) == (
        pb.EVENT_KIND_BROADCAST,
        "r",
        "s1",
        '{"wave":true}',
    )
    assert await outside.until_marker(stub, "other") == []
    assert (await stub.List(pb.ListRequest(room="r"), timeout=WAIT)).count == 0
    # Like the client protocol's broadcast, data may be any JSON value.
    await stub.Broadcast(pb.BroadcastRequest(room="r", data_json='"hi"'), timeout=WAIT)
    assert (await inside.next()).data_json == '"hi"'
    inside.call.cancel()
    outside.call.cancel()


async def test_removed_rooms_stop_and_readded_rooms_resume(stub: PresenceStub) -> None:
    watch = Watch(stub)
    await watch.add("a", "b")
    watch.send(remove=["a"])
    await stub.Join(pb.JoinRequest(room="a", peer=peer("s1")), timeout=WAIT)
    assert await watch.until_marker(stub, "b") == []
    await watch.add("a")
    await stub.Join(pb.JoinRequest(room="a", peer=peer("s2")), timeout=WAIT)
    assert (await watch.next()).peer.session_id == "s2"
    watch.call.cancel()


async def test_vanished_session_times_out() -> None:
    settings = dataclasses.replace(BASE, heartbeat_interval=0.1, presence_ttl=0.3)
    async with serve(settings) as running, create_channel(f"127.0.0.1:{running.port}") as channel:
        stub = PresenceStub(channel)
        watch = Watch(stub)
        await watch.add("r")
        await stub.Join(pb.JoinRequest(room="r", peer=peer("s1")), timeout=WAIT)
        assert (await watch.next()).kind == pb.EVENT_KIND_JOIN
        assert (await watch.next()).kind == pb.EVENT_KIND_USER_ONLINE
        leave = await watch.next()
        assert (leave.kind, leave.reason, leave.peer.session_id) == (
            pb.EVENT_KIND_LEAVE,
            pb.LEAVE_REASON_TIMEOUT,
            "s1",
        )
        beat = await stub.Heartbeat(pb.HeartbeatRequest(session_ids=["s1"]), timeout=WAIT)
        assert list(beat.unknown_session_ids) == ["s1"]
        watch.call.cancel()


BIG = '{"a":"' + "x" * 300 + '"}'


@pytest.mark.parametrize(
    ("method", "request_", "code", "reason"),
    [
        (
            "Join",
            pb.JoinRequest(room="bad room", peer=peer("s1")),
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
        ),
        ("Join", pb.JoinRequest(room="", peer=peer("s1")), "INVALID_ARGUMENT", "BAD_REQUEST"),
        ("Join", pb.JoinRequest(room="r", peer=peer("")), "INVALID_ARGUMENT", "BAD_REQUEST"),
        ("Join", pb.JoinRequest(room="r", peer=peer("s" * 129)), "INVALID_ARGUMENT", "BAD_REQUEST"),
        (
            "Join",
            pb.JoinRequest(room="r", peer=peer("s1", "[1]")),
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
        ),
        ("Join", pb.JoinRequest(room="r", peer=peer("s1", "{")), "INVALID_ARGUMENT", "BAD_REQUEST"),
        (
            "Join",
            pb.JoinRequest(room="r", peer=pb.Peer(session_id="s1", user_json="7")),
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
        ),
        ("Join", pb.JoinRequest(room="r", peer=peer("s1", BIG)), "RESOURCE_EXHAUSTED", "TOO_LARGE"),
        ("Update", pb.UpdateRequest(room="r", session_id="nobody"), "NOT_FOUND", "NOT_SUBSCRIBED"),
        (
            "Update",
            pb.UpdateRequest(room="r", session_id="s1", state_json="[]"),
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
        ),
        (
            "Update",
            pb.UpdateRequest(room="r", session_id="s1", state_json=BIG),
            "RESOURCE_EXHAUSTED",
            "TOO_LARGE",
        ),
        (
            "Update",
            pb.UpdateRequest(room="r/1", session_id="s1"),
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
        ),
        ("Leave", pb.LeaveRequest(room="r", session_id=""), "INVALID_ARGUMENT", "BAD_REQUEST"),
        ("Leave", pb.LeaveRequest(room="r r", session_id="s1"), "INVALID_ARGUMENT", "BAD_REQUEST"),
        (
            "Leave",
            pb.LeaveRequest(room="r", session_id="s1", reason=99),  # type: ignore[arg-type]
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
        ),
        (
            "Heartbeat",
            pb.HeartbeatRequest(edge_id="e", session_ids=["s1", ""]),
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
        ),
        ("List", pb.ListRequest(room=""), "INVALID_ARGUMENT", "BAD_REQUEST"),
        ("List", pb.ListRequest(room="r", cursor="c" * 129), "INVALID_ARGUMENT", "BAD_REQUEST"),
        ("Broadcast", pb.BroadcastRequest(room="bad!"), "INVALID_ARGUMENT", "BAD_REQUEST"),
        (
            "Broadcast",
            pb.BroadcastRequest(room="r", from_session_id="s1", channel="cur sor"),
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
        ),
        (
            "Broadcast",
            pb.BroadcastRequest(room="r", channel="c" * 65),
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
        ),
        (
            "Join",
            pb.JoinRequest(room="r", peer=pb.Peer(session_id="s1", user_id="someone-else")),
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
        ),
        (
            "Join",
            pb.JoinRequest(room="q", peer=pb.Peer(session_id="s1", user_id="someone-else")),
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
        ),
        (
            "Broadcast",
            pb.BroadcastRequest(room="r", data_json="[1,"),
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
        ),
        (
            "Broadcast",
            pb.BroadcastRequest(room="r", data_json='{"a":"' + "x" * 65536 + '"}'),
            "RESOURCE_EXHAUSTED",
            "TOO_LARGE",
        ),
    ],
)
async def test_bad_requests_get_a_code_and_reason_and_harm_nothing(
    stub: PresenceStub, method: str, request_: object, code: str, reason: str
) -> None:
    await stub.Join(pb.JoinRequest(room="r", peer=peer("s1")), timeout=WAIT)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await getattr(stub, method)(request_, timeout=WAIT)
    assert raised.value.code() == getattr(grpc.StatusCode, code)
    assert reason_of(raised.value) == reason
    await stub.Join(pb.JoinRequest(room="r", peer=peer("s2")), timeout=WAIT)
    listed = await stub.List(pb.ListRequest(room="r"), timeout=WAIT)
    assert [(p.session_id, p.state_json) for p in listed.peers] == [("s1", "{}"), ("s2", "{}")]


async def test_room_limit_is_too_large(stub: PresenceStub) -> None:
    for room in ("a", "b", "c"):
        await stub.Join(pb.JoinRequest(room=room, peer=peer("s1")), timeout=WAIT)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Join(pb.JoinRequest(room="d", peer=peer("s1")), timeout=WAIT)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(raised.value) == "TOO_LARGE"
    left = await stub.Leave(pb.LeaveRequest(room="a", session_id="s1"), timeout=WAIT)
    assert list(left.rooms) == ["a"]
    await stub.Join(pb.JoinRequest(room="d", peer=peer("s1")), timeout=WAIT)


async def test_watch_with_a_bad_room_ends_with_bad_request(stub: PresenceStub) -> None:
    watch = Watch(stub)
    watch.send(add=["fine", "not fine"])
    error = await watch.error()
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(error) == "BAD_REQUEST"
    other = Watch(stub)
    await other.add("fine")
    other.call.cancel()


async def test_a_watcher_that_falls_behind_is_dropped() -> None:
    settings = dataclasses.replace(BASE, watch_queue_size=2)
    async with serve(settings) as running, create_channel(f"127.0.0.1:{running.port}") as channel:
        stub = PresenceStub(channel)
        slow = Watch(stub)
        await slow.add("r")
        # Big payloads fill the HTTP/2 window, then the 2-event queue. No
        # sender: internal callers are not rate-limited.
        data = '{"a":"' + "x" * 60000 + '"}'
        request = pb.BroadcastRequest(room="r", data_json=data)
        for _ in range(30):
            await asyncio.gather(*(stub.Broadcast(request, timeout=WAIT) for _ in range(10)))
        error = await slow.error()
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason_of(error) == "UNAVAILABLE"
        healthy = Watch(stub)
        await healthy.add("r")
        healthy.call.cancel()


async def test_shutdown_ends_watch_streams_with_unavailable() -> None:
    async with serve(BASE) as running:
        channel = create_channel(f"127.0.0.1:{running.port}")
        watch = Watch(PresenceStub(channel))
        await watch.add("r")
    error = await watch.error()
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    await channel.close()


async def test_metrics_are_served() -> None:
    settings = dataclasses.replace(BASE, metrics_addr=("127.0.0.1", 0))
    async with serve(settings) as running, create_channel(f"127.0.0.1:{running.port}") as channel:
        stub = PresenceStub(channel)
        await stub.Join(pb.JoinRequest(room="r", peer=peer("s1")), timeout=WAIT)
        await stub.Heartbeat(pb.HeartbeatRequest(session_ids=["s1"]), timeout=WAIT)
        await stub.Broadcast(pb.BroadcastRequest(room="r"), timeout=WAIT)
        url = f"http://127.0.0.1:{running.metrics_port}/metrics"
        text = await asyncio.to_thread(
            lambda: urllib.request.urlopen(url, timeout=WAIT).read().decode()
        )
    for name in (
        'accord_presence_grpc_handling_seconds_count{method="Join"}',
        "accord_presence_joins_total",
        "accord_presence_sessions",
        "accord_presence_users",
        "accord_presence_broadcasts_deferred_total",
        "accord_presence_broadcasts_superseded_total",
        "accord_presence_broadcasts_rate_limited_total",
        "accord_presence_heartbeat_batch_size_count",
        "accord_presence_broadcasts_total",
        "accord_presence_expired_total",
    ):
        assert name in text


async def test_list_counts_users_and_counts_only_sends_no_peers(stub: PresenceStub) -> None:
    for sid, user in (("t1", "ada"), ("t2", "ada"), ("t3", "ada"), ("b1", "bob")):
        peer_ = pb.Peer(session_id=sid, user_id=user, user_json="{}", state_json="{}")
        await stub.Join(pb.JoinRequest(room="r", peer=peer_), timeout=WAIT)
    page = await stub.List(pb.ListRequest(room="r", limit=2), timeout=WAIT)
    assert [p.session_id for p in page.peers] == ["b1", "t1"]
    assert (page.count, page.user_count, page.next_cursor) == (4, 2, "t1")
    counts = await stub.List(pb.ListRequest(room="r", counts_only=True), timeout=WAIT)
    assert (len(counts.peers), counts.count, counts.user_count, counts.next_cursor) == (
        0,
        4,
        2,
        "",
    )


async def test_user_online_and_offline_reach_the_watcher(stub: PresenceStub) -> None:
    watch = Watch(stub)
    await watch.add("r")
    for sid in ("t1", "t2"):
        peer_ = pb.Peer(session_id=sid, user_id="ada", user_json="{}", state_json="{}")
        await stub.Join(pb.JoinRequest(room="r", peer=peer_), timeout=WAIT)
    await stub.Leave(pb.LeaveRequest(session_id="t1"), timeout=WAIT)
    await stub.Leave(pb.LeaveRequest(room="r", session_id="t2"), timeout=WAIT)
    events = await watch.until_marker(stub, "r")
    assert [(e.kind, e.peer.session_id, e.reason) for e in events] == [
        (pb.EVENT_KIND_JOIN, "t1", pb.LEAVE_REASON_UNSPECIFIED),
        (pb.EVENT_KIND_USER_ONLINE, "t1", pb.LEAVE_REASON_UNSPECIFIED),
        (pb.EVENT_KIND_JOIN, "t2", pb.LEAVE_REASON_UNSPECIFIED),
        (pb.EVENT_KIND_LEAVE, "t1", pb.LEAVE_REASON_DISCONNECT),
        (pb.EVENT_KIND_LEAVE, "t2", pb.LEAVE_REASON_UNSUBSCRIBE),
        (pb.EVENT_KIND_USER_OFFLINE, "t2", pb.LEAVE_REASON_UNSUBSCRIBE),
    ]
    assert events[-1].peer.user_id == "ada"
    watch.call.cancel()


async def test_plain_broadcasts_over_the_rate_are_refused_with_a_retry_time() -> None:
    settings = dataclasses.replace(BASE, broadcast_rate=0.5, broadcast_burst=2)
    async with serve(settings) as running, create_channel(f"127.0.0.1:{running.port}") as channel:
        stub = PresenceStub(channel)
        request = pb.BroadcastRequest(room="r", from_session_id="s1", data_json="{}")
        for _ in range(2):
            assert not (await stub.Broadcast(request, timeout=WAIT)).deferred
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Broadcast(request, timeout=WAIT)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason_of(raised.value) == "RATE_LIMITED"
        metadata = dict(raised.value.trailing_metadata() or ())
        assert 1 <= int(metadata["accord-retry-after-ms"]) <= 2000
        # Other senders, and internal callers without a session, are not affected.
        other = pb.BroadcastRequest(room="r", from_session_id="s2", data_json="{}")
        assert not (await stub.Broadcast(other, timeout=WAIT)).deferred
        assert not (await stub.Broadcast(pb.BroadcastRequest(room="r"), timeout=WAIT)).deferred


async def test_a_flood_on_a_channel_delivers_the_first_and_the_latest() -> None:
    # A window far longer than the flood takes: every move after the first waits.
    settings = dataclasses.replace(BASE, broadcast_window=2.0)
    async with serve(settings) as running, create_channel(f"127.0.0.1:{running.port}") as channel:
        stub = PresenceStub(channel)
        watch = Watch(stub)
        await watch.add("r")
        deferred = []
        for x in range(20):
            request = pb.BroadcastRequest(
                room="r", from_session_id="s1", data_json=f'{{"x":{x}}}', channel="cursor"
            )
            deferred.append((await stub.Broadcast(request, timeout=WAIT)).deferred)
        assert deferred == [False] + [True] * 19
        first, latest = await watch.next(), await watch.next()
        assert [(e.data_json, e.channel, e.from_session_id) for e in (first, latest)] == [
            ('{"x":0}', "cursor", "s1"),
            ('{"x":19}', "cursor", "s1"),
        ]
        assert await watch.until_marker(stub, "r") == []
        watch.call.cancel()


async def test_update_many_answers_each_update_and_keeps_one_sessions_order(
    stub: PresenceStub,
) -> None:
    watch = Watch(stub)
    await watch.add("r")
    for sid in ("s1", "s2"):
        await stub.Join(pb.JoinRequest(room="r", peer=peer(sid), edge_id="e"), timeout=WAIT)
    response = await stub.UpdateMany(
        pb.UpdateManyRequest(
            updates=[
                pb.UpdateRequest(room="r", session_id="s1", state_json='{"n":1}'),
                pb.UpdateRequest(room="r", session_id="s2", state_json='{"n":2}'),
                pb.UpdateRequest(room="r", session_id="nobody", state_json="{}"),
                pb.UpdateRequest(room="bad room", session_id="s1", state_json="{}"),
                pb.UpdateRequest(room="r", session_id="s2", state_json="[1]"),
                pb.UpdateRequest(
                    room="r", session_id="s2", state_json='{"x":"' + "y" * 9000 + '"}'
                ),
                pb.UpdateRequest(room="r", session_id="s1", state_json='{"n":3}'),
            ]
        ),
        timeout=WAIT,
    )
    assert [r.reason for r in response.results] == [
        "",
        "",
        "NOT_SUBSCRIBED",
        "BAD_REQUEST",
        "BAD_REQUEST",
        "TOO_LARGE",
        "",
    ]
    assert all(r.message for r in response.results if r.reason)
    listed = await stub.List(pb.ListRequest(room="r"), timeout=WAIT)
    assert {p.session_id: p.state_json for p in listed.peers} == {"s1": '{"n":3}', "s2": '{"n":2}'}
    watch.call.cancel()


async def test_update_many_refuses_too_many_updates(stub: PresenceStub) -> None:
    many = [pb.UpdateRequest(room="r", session_id=f"s{n}", state_json="{}") for n in range(1001)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateMany(pb.UpdateManyRequest(updates=many), timeout=WAIT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == "BAD_REQUEST"
    empty = await stub.UpdateMany(pb.UpdateManyRequest(), timeout=WAIT)
    assert list(empty.results) == []


async def test_watch_batched_carries_ready_events_together_in_order(stub: PresenceStub) -> None:
    requests: asyncio.Queue[pb.WatchRequest] = asyncio.Queue()

    async def feed() -> AsyncIterator[pb.WatchRequest]:
        while True:
            yield await requests.get()

    call = stub.WatchBatched(feed())

    async def read() -> list[pb.PresenceEvent]:
        message = await asyncio.wait_for(call.read(), WAIT)
        assert message is not grpc.aio.EOF
        return list(message.events)

    requests.put_nowait(pb.WatchRequest(add=["r"], ack=True))
    assert [(e.kind, e.room) for e in await read()] == [(pb.EVENT_KIND_WATCHING, "r")]
    for sid in ("s1", "s2"):
        await stub.Join(pb.JoinRequest(room="r", peer=peer(sid), edge_id="e"), timeout=WAIT)
    updates = [
        pb.UpdateRequest(room="r", session_id=f"s{1 + n % 2}", state_json=f'{{"n":{n}}}')
        for n in range(50)
    ]
    await stub.UpdateMany(pb.UpdateManyRequest(updates=updates), timeout=WAIT)
    events: list[pb.PresenceEvent] = []
    messages = 0
    while sum(e.kind == pb.EVENT_KIND_UPDATE for e in events) < 50:
        events.extend(await read())
        messages += 1
    joins = [e.peer.session_id for e in events if e.kind == pb.EVENT_KIND_JOIN]
    changed = [e for e in events if e.kind == pb.EVENT_KIND_UPDATE]
    assert joins == ["s1", "s2"]
    assert [e.peer.state_json for e in changed] == [u.state_json for u in updates]
    # The 50 updates were applied in one call: their events left together.
    assert messages < len(changed)
    call.cancel()


async def test_join_many_answers_each_join_in_order(stub: PresenceStub) -> None:
    watch = Watch(stub)
    await watch.add("r")
    big = peer("s4", '{"x":"' + "y" * 9000 + '"}')
    response = await stub.JoinMany(
        pb.JoinManyRequest(
            joins=[
                pb.JoinRequest(room="r", peer=peer("s1"), edge_id="e"),
                pb.JoinRequest(room="bad room", peer=peer("s2"), edge_id="e"),
                pb.JoinRequest(room="r", peer=peer("s3", '{"n":1}'), edge_id="e"),
                pb.JoinRequest(room="r", peer=big, edge_id="e"),
                pb.JoinRequest(room="r", peer=peer("s3", '{"n":2}'), edge_id="e"),
            ]
        ),
        timeout=WAIT,
    )
    assert [r.reason for r in response.results] == ["", "BAD_REQUEST", "", "TOO_LARGE", ""]
    assert all(r.message for r in response.results if r.reason)
    listed = await stub.List(pb.ListRequest(room="r"), timeout=WAIT)
    # s3 joined, then joined again with a new state: the later one holds.
    assert {p.session_id: p.state_json for p in listed.peers} == {"s1": "{}", "s3": '{"n":2}'}
    many = [pb.JoinRequest(room="r", peer=peer(f"s{n}"), edge_id="e") for n in range(1001)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.JoinMany(pb.JoinManyRequest(joins=many), timeout=WAIT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == "BAD_REQUEST"
    watch.call.cancel()

"""Several presence replicas on one Redis, and presence with Redis gone."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import grpc
import pytest
from accord.api.presence.v1 import presence_pb2 as pb
from accord.api.presence.v1.presence_pb2_grpc import PresenceStub
from accord.common.grpc_security import ServerSecurity
from accord.common.grpcutil import create_channel, reason_of
from accord.presence.app import serve
from accord.presence.settings import Settings

WAIT = 10.0

pytestmark = pytest.mark.integration


def peer(session_id: str) -> pb.Peer:
    return pb.Peer(
        session_id=session_id, user_id="u", client_id="c", user_json="{}", state_json="{}"
    )


def settings(redis_url: str, redis_prefix: str) -> Settings:
    return Settings(
        presence_addr=("127.0.0.1", 0),
        grpc=ServerSecurity.unprotected(),
        metrics_addr=None,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        heartbeat_interval=0.1,
        presence_ttl=1.0,
        sweep_interval=0.05,
        shutdown_grace=1.0,
    )


async def read(call: grpc.aio.StreamStreamCall) -> pb.PresenceEvent:
    event = await asyncio.wait_for(call.read(), WAIT)
    assert event is not grpc.aio.EOF
    return event  # type: ignore[no-any-return]


async def watching(stub: PresenceStub, *rooms: str) -> grpc.aio.StreamStreamCall:
    async def requests() -> AsyncIterator[pb.WatchRequest]:
        yield pb.WatchRequest(add=rooms, ack=True)
        await asyncio.Event().wait()

    call = stub.Watch(requests())
    for room in rooms:
        event = await read(call)
        assert (event.kind, event.room) == (pb.EVENT_KIND_WATCHING, room)
    return call


async def test_replicas_share_presence_and_expire_each_session_once(
    redis_url: str, redis_prefix: str
) -> None:
    # Within a deadline of its own, so that a hang (seen once in a full run, in no await
    # with a timeout) fails with the traceback of the await it hung in, not only with
    # pytest-timeout's thread stacks.
    async with asyncio.timeout(60):
        await _replicas_share_presence_and_expire_each_session_once(redis_url, redis_prefix)


async def _replicas_share_presence_and_expire_each_session_once(
    redis_url: str, redis_prefix: str
) -> None:
    config = settings(redis_url, redis_prefix)
    async with (
        serve(config) as first,
        serve(config) as second,
        create_channel(f"127.0.0.1:{first.port}") as first_channel,
        create_channel(f"127.0.0.1:{second.port}") as second_channel,
    ):
        stub_a, stub_b = PresenceStub(first_channel), PresenceStub(second_channel)
        watch = await watching(stub_a, "r", "q")
        await stub_b.Join(pb.JoinRequest(room="r", peer=peer("s1"), edge_id="b"), timeout=WAIT)
        await stub_b.Join(pb.JoinRequest(room="q", peer=peer("s1"), edge_id="b"), timeout=WAIT)
        await stub_b.Broadcast(pb.BroadcastRequest(room="r", from_session_id="s1"), timeout=WAIT)
        kinds = [(e.kind, e.room) for e in [await read(watch) for _ in range(5)]]
        assert kinds == [
            (pb.EVENT_KIND_JOIN, "r"),
            (pb.EVENT_KIND_USER_ONLINE, "r"),
            (pb.EVENT_KIND_JOIN, "q"),
            (pb.EVENT_KIND_USER_ONLINE, "q"),
            (pb.EVENT_KIND_BROADCAST, "r"),
        ]
        listed = await stub_a.List(pb.ListRequest(room="r"), timeout=WAIT)
        assert [p.session_id for p in listed.peers] == ["s1"]

        # No heartbeats: both replicas sweep, one leave per room arrives, each
        # followed by the user going offline there.
        leaves = sorted([(e.room, e.kind, e.reason) for e in [await read(watch) for _ in range(4)]])
        assert leaves == [
            ("q", pb.EVENT_KIND_LEAVE, pb.LEAVE_REASON_TIMEOUT),
            ("q", pb.EVENT_KIND_USER_OFFLINE, pb.LEAVE_REASON_TIMEOUT),
            ("r", pb.EVENT_KIND_LEAVE, pb.LEAVE_REASON_TIMEOUT),
            ("r", pb.EVENT_KIND_USER_OFFLINE, pb.LEAVE_REASON_TIMEOUT),
        ]
        # Give both sweepers several more rounds; then a marker closes the window.
        await asyncio.sleep(0.5)
        await stub_b.Broadcast(
            pb.BroadcastRequest(room="r", from_session_id="marker"), timeout=WAIT
        )
        assert (await read(watch)).from_session_id == "marker"
        watch.cancel()


async def test_redis_down_is_unavailable(unused_port: int, redis_prefix: str) -> None:
    config = dataclasses.replace(
        settings(f"redis://127.0.0.1:{unused_port}/0", redis_prefix), presence_ttl=30.0
    )
    async with serve(config) as running, create_channel(f"127.0.0.1:{running.port}") as channel:
        stub = PresenceStub(channel)
        calls = [
            stub.Join(pb.JoinRequest(room="r", peer=peer("s1")), timeout=WAIT),
            stub.List(pb.ListRequest(room="r"), timeout=WAIT),
            stub.Heartbeat(pb.HeartbeatRequest(session_ids=["s1"]), timeout=WAIT),
            stub.Broadcast(pb.BroadcastRequest(room="r"), timeout=WAIT),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert reason_of(raised.value) == "UNAVAILABLE"

        async def requests() -> AsyncIterator[pb.WatchRequest]:
            yield pb.WatchRequest(add=["r"], ack=True)
            await asyncio.Event().wait()

        watch = stub.Watch(requests())
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await asyncio.wait_for(watch.read(), WAIT)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE

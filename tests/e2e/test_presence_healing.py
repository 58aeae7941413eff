"""Presence heals itself, with real processes: an edge SIGKILLed, Redis restarted.

Every service runs as its own ``accord`` child process; clients speak the real
WebSocket protocol. Heartbeats are short (0.5 s, so the presence TTL is 1.5 s)
and every client reads its socket all the time, so it answers the edge's pings
and is never itself timed out. Timeouts are generous; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from accord.api.presence.v1 import presence_pb2 as pb
from accord.api.presence.v1.presence_pb2_grpc import PresenceStub
from accord.common.grpcutil import check_health, create_channel

from tests.support.ports import free_port
from tests.support.redis_server import PrivateRedis
from tests.support.suite import ACCORD, UNPROTECTED_GRPC, DevProcess, dev_env, wait_ready
from tests.support.wsclient import Client, make_token

pytestmark = pytest.mark.integration

HEARTBEAT = 0.5
"""Short, but a stall of the loaded test machine must stay under the TTL: at 0.3 s (TTL
0.9 s) the Redis-restart test once saw every session expire during a full parallel run."""
TTL = 3 * HEARTBEAT
WAIT = 30.0
ROOMS = ("heal-1", "heal-2")


class Service:
    """One ``accord <command>`` child process in its own process group."""

    def __init__(self, command: str, env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [ACCORD, self.command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL: no drain, no leave, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[[str, dict[str, str]], Service]]:
    started: list[Service] = []

    def start(command: str, env: dict[str, str]) -> Service:
        service = Service(command, env, tmp_path / f"{command}-{len(started)}.log")
        service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.kill()
        print(f"--- {service.command} log (tail) ---\n{service.log()[-3000:]}")


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds, for at most WAIT seconds."""
    try:
        async with asyncio.timeout(WAIT):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"never saw {what}") from None


async def wait_serving(address: str) -> None:
    async with create_channel(address) as channel:
        await eventually(lambda: check_health(channel), f"{address} serving")


class Observer:
    """A client whose frames are read continuously, kept in arrival order."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.session_id = str(client.welcome["session_id"])
        self.messages: list[dict[str, Any]] = list(client.inbox)
        client.inbox.clear()
        self.closed = False
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls, ws_url: str, user: str, presence: dict[str, Any] | None, rooms: tuple[str, ...]
    ) -> Observer:
        client = await Client.connect(ws_url)
        await client.hello(make_token(user), client_id=f"c-{user}", user={"name": user})
        for room in rooms:
            await client.subscribe(room, presence=presence)
            # The sync comes once the session has joined presence and watches the
            # room; it is kept, in order, after what came before it.
            sync = await client.expect(
                lambda m, room=room: m.get("event") == "sync" and m.get("room") == room, WAIT
            )
            client.inbox.append(sync)
        return cls(client)

    async def _read(self) -> None:
        while True:
            message = await self.client.ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(message.data))
            elif message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                self.closed = True
                self._arrived.set()
                return
            self._arrived.set()

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT):
                while not predicate():
                    assert not self.closed, f"{self.session_id} was disconnected"
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError(f"never saw {what}; last: {self.messages[-8:]}") from None

    def presence(self, room: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == "presence" and m.get("room") == room]

    def peers(self, room: str) -> dict[str, dict[str, Any]]:
        """The room's peers as a client builds them from sync, join, update and leave."""
        peers: dict[str, dict[str, Any]] = {}
        for message in self.presence(room):
            event = message["event"]
            if event == "sync":
                peers = {p["session_id"]: p for p in message["peers"]}
            elif event in ("join", "update"):
                peers[message["peer"]["session_id"]] = message["peer"]
            elif event == "leave":
                peers.pop(message["peer"]["session_id"], None)
        return peers

    def leaves(self) -> list[tuple[str, str, str]]:
        """(room, session id, reason) of every leave seen."""
        return [
            (m["room"], m["peer"]["session_id"], m["reason"])
            for room in ROOMS
            for m in self.presence(room)
            if m["event"] == "leave"
        ]

    def saw_marker(self, room: str, marker: str) -> bool:
        return any(
            m.get("type") == "broadcast" and m.get("room") == room and m.get("data") == marker
            for m in self.messages
        )

    async def send(self, message: dict[str, Any]) -> None:
        await self.client.send(message)

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self.client.close()


@pytest.fixture
async def observers() -> AsyncIterator[list[Observer]]:
    opened: list[Observer] = []
    yield opened
    for observer in opened:
        await observer.close()


class PresenceWatch:
    """A gRPC Watch straight on a presence replica, collecting every event."""

    def __init__(self, stub: PresenceStub) -> None:
        self.stub = stub
        self.events: list[pb.PresenceEvent] = []
        self.call: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, rooms: tuple[str, ...]) -> None:
        async def requests() -> AsyncIterator[pb.WatchRequest]:
            yield pb.WatchRequest(add=rooms, ack=True)
            await asyncio.Event().wait()

        self.call = self.stub.Watch(requests())
        async with asyncio.timeout(WAIT):
            for room in rooms:
                event = await self.call.read()
                assert (event.kind, event.room) == (pb.EVENT_KIND_WATCHING, room)
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        # read() only: grpc.aio refuses a mix of read() and async iteration.
        while (event := await self.call.read()) is not grpc.aio.EOF:
            self.events.append(event)

    async def until_marker(self, room: str, marker: str) -> None:
        request = pb.BroadcastRequest(room=room, data_json=json.dumps({"marker": marker}))
        await self.stub.Broadcast(request, timeout=WAIT)

        async def arrived() -> bool:
            return any(
                e.kind == pb.EVENT_KIND_BROADCAST and marker in e.data_json for e in self.events
            )

        await eventually(arrived, f"marker {marker} in {room}")

    def stop(self) -> None:
        if self.call is not None:
            self.call.cancel()
        if self._task is not None:
            self._task.cancel()


async def test_a_killed_edge_s_sessions_each_leave_every_room_exactly_once(
    dev: Callable[..., DevProcess],
    start_service: Callable[[str, dict[str, str]], Service],
    observers: list[Observer],
    redis_url: str,
    redis_prefix: str,
) -> None:
    # Edge A, sync and presence replica 1 as `accord dev`; edge B on its own,
    # talking to presence replica 2. Both replicas share Redis, so events cross.
    suite = dev(REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, HEARTBEAT_INTERVAL=str(HEARTBEAT))
    suite.start()
    await wait_ready(suite.http_url, timeout=60)
    presence_2 = f"127.0.0.1:{free_port()}"
    direct = {**suite.env, **UNPROTECTED_GRPC}  # what `accord dev` gives its children
    start_service("presence", {**direct, "PRESENCE_ADDR": presence_2, "METRICS_ADDR": ""})
    await wait_serving(presence_2)
    edge_b_port = free_port()
    edge_b = start_service(
        "edge",
        {
            **direct,
            "WS_ADDR": f"127.0.0.1:{edge_b_port}",
            "PRESENCE_ADDR": presence_2,
            "EDGE_ID": "edge-b",
        },
    )
    edge_b_url = f"http://127.0.0.1:{edge_b_port}"
    await wait_ready(edge_b_url, timeout=60)

    async with create_channel(suite.env["PRESENCE_ADDR"]) as channel:
        stub = PresenceStub(channel)
        grpc_watch = PresenceWatch(stub)
        await grpc_watch.start(ROOMS)
        try:
            watcher = await Observer.connect(suite.ws_url, "watcher", None, ROOMS)
            marker = await Observer.connect(suite.ws_url, "marker", {"role": "marker"}, ROOMS)
            observers.extend([watcher, marker])
            # Victim users: "ada" with two tabs, "bob" with one.
            victims = [
                await Observer.connect(f"ws://127.0.0.1:{edge_b_port}/ws", user, {"tab": n}, ROOMS)
                for n, user in enumerate(["ada", "ada", "bob"])
            ]
            observers.extend(victims)
            victim_ids = {v.session_id for v in victims}
            for room in ROOMS:
                await watcher.until(
                    lambda room=room: victim_ids <= watcher.peers(room).keys(),
                    f"every victim in {room}",
                )

            edge_b.kill()

            for room in ROOMS:
                await watcher.until(
                    lambda room=room: not victim_ids & watcher.peers(room).keys(),
                    f"every victim leaving {room}",
                )
            # Let both replicas sweep many more times, then close the window
            # with a marker per room: anything duplicated would be in by now.
            await asyncio.sleep(4 * TTL)
            for room in ROOMS:
                await marker.send({"type": "broadcast", "room": room, "data": "end"})
                await watcher.until(lambda room=room: watcher.saw_marker(room, "end"), "marker")
                await grpc_watch.until_marker(room, "end")
        finally:
            grpc_watch.stop()

        victim_leaves = [leave for leave in watcher.leaves() if leave[1] in victim_ids]
        assert sorted(victim_leaves) == sorted(
            (room, sid, "timeout") for room in ROOMS for sid in victim_ids
        )
        assert watcher.peers(ROOMS[0]).keys() == {marker.session_id}

        # The service's own view: one leave (timeout) per session and room, and
        # one user_offline per user and room, however many tabs the user had.
        leaves = Counter(
            (e.room, e.peer.session_id, e.reason)
            for e in grpc_watch.events
            if e.kind == pb.EVENT_KIND_LEAVE
        )
        assert leaves == Counter(
            {(room, sid, pb.LEAVE_REASON_TIMEOUT): 1 for room in ROOMS for sid in victim_ids}
        )
        offline = Counter(
            (e.room, e.peer.user_id, e.reason)
            for e in grpc_watch.events
            if e.kind == pb.EVENT_KIND_USER_OFFLINE
        )
        assert offline == Counter(
            {(room, user, pb.LEAVE_REASON_TIMEOUT): 1 for room in ROOMS for user in ("ada", "bob")}
        )
        for room in ROOMS:
            counts = await stub.List(pb.ListRequest(room=room, counts_only=True), timeout=WAIT)
            assert (counts.count, counts.user_count) == (1, 1)
    assert watcher.closed is False and marker.closed is False


async def listed(stub: PresenceStub, room: str) -> dict[str, str]:
    """Session id → state JSON as presence lists them; empty while Redis is away."""
    with contextlib.suppress(grpc.aio.AioRpcError):
        response = await stub.List(pb.ListRequest(room=room), timeout=5.0)
        return {p.session_id: p.state_json for p in response.peers}
    return {}


async def test_presence_rebuilds_from_heartbeats_after_a_redis_restart(
    tmp_path: Path,
    start_service: Callable[[str, dict[str, str]], Service],
    observers: list[Observer],
    private_redis: PrivateRedis,
) -> None:
    # Only presence uses the private Redis, so only presence loses its state.
    env = {
        **dev_env(tmp_path, HEARTBEAT_INTERVAL=str(HEARTBEAT), REDIS_PREFIX="heal"),
        **UNPROTECTED_GRPC,
    }
    start_service("sync", {**env, "METRICS_ADDR": env["SYNC_METRICS_ADDR"]})
    start_service(
        "presence",
        {**env, "REDIS_URL": private_redis.url, "METRICS_ADDR": env["PRESENCE_METRICS_ADDR"]},
    )
    await wait_serving(env["SYNC_ADDR"])
    await wait_serving(env["PRESENCE_ADDR"])
    start_service("edge", env)
    ws_port = env["WS_ADDR"].rsplit(":", 1)[1]
    await wait_ready(f"http://127.0.0.1:{ws_port}", timeout=60)
    ws_url = f"ws://127.0.0.1:{ws_port}/ws"

    room = "rebuild"
    users = ("ada", "bob", "cy")
    clients = [await Observer.connect(ws_url, user, {"mood": user}, (room,)) for user in users]
    observers.extend(clients)
    states = {c.session_id: {"mood": user} for c, user in zip(clients, users, strict=True)}
    want = {sid: json.dumps(state, separators=(",", ":")) for sid, state in states.items()}

    async with create_channel(env["PRESENCE_ADDR"]) as channel:
        stub = PresenceStub(channel)
        assert await listed(stub, room) == want

        private_redis.stop()
        private_redis.start()
        await private_redis.ready()

        # Nothing rejoins by hand: the edge's next heartbeats learn that presence
        # forgot its sessions and join them again, with their latest state.
        async def rebuilt() -> bool:
            return await listed(stub, room) == want

        await eventually(rebuilt, "presence rebuilt")
        counts = await stub.List(pb.ListRequest(room=room, counts_only=True), timeout=WAIT)
        assert (counts.count, counts.user_count) == (3, 3)

        # Every client's view of the others converges to the full room again,
        # without reconnecting. (Its own entry is not checked: the edge does not
        # echo a session's own re-join, and its resync may list the room before
        # that re-join.)
        for client in clients:
            others = {sid: state for sid, state in states.items() if sid != client.session_id}

            def sees_others(client: Observer = client, others: dict[str, Any] = others) -> bool:
                view = client.peers(room)
                return {sid: view[sid]["state"] for sid in others if sid in view} == others

            await client.until(sees_others, f"{client.session_id} seeing the rebuilt room")

        # The rebuilt sessions are heartbeated like any other: several TTLs
        # later nobody has timed out.
        await asyncio.sleep(4 * TTL)
        assert await listed(stub, room) == want
    newcomer = await Observer.connect(ws_url, "dee", None, (room,))
    observers.append(newcomer)
    await newcomer.until(lambda: bool(newcomer.presence(room)), "the newcomer's sync")
    assert {sid: p["state"] for sid, p in newcomer.peers(room).items()} == states
    for client in clients:
        assert not client.closed
        assert not [m for m in client.presence(room) if m["event"] == "leave"]

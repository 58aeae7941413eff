"""Two sync processes sharing one PostgreSQL and one (private) Redis, and an edge.

Changes are pushed through replica A; a gRPC subscriber on replica B and a
WebSocket client on an edge attached to B receive them in seq order, gapless and
exactly once, whatever happens to the bus: Redis restarted with pushes going on,
Redis restarted in a quiet room (nothing pushed after it is back: B re-checks its
subscribers against the log once it is subscribed again), and replica A killed
after acknowledging pushes it could not publish (A asks every replica to
re-check when it starts again). The periodic re-check is off here, so each test
shows the mechanism it is about.

Replica A talks to Redis as the user ``replica-a``, which a test may forbid to
PUBLISH: that makes "committed, acknowledged, never published" deterministic.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1.sync_pb2_grpc import SyncStub
from accord.common.grpcutil import check_health, create_channel

from tests.support.ports import free_port
from tests.support.suite import UNPROTECTED_GRPC, wait_ready
from tests.support.wsclient import SECRET, Client, Replica, make_token, sync_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

ROOM = "replicated"
WAIT = 30.0
CATCH_UP = 10.0
"""Seconds a live subscriber may take to get changes the bus lost, with no later push."""
REPLICA_A_USER, REPLICA_A_PASSWORD = "replica-a", "pw-replica-a"


class Process:
    """One child process started by this test (and only ever stopped by its pid)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=out)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last publish."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def service(name: str, env: dict[str, str], log: Path) -> Process:
    return Process([sys.executable, "-m", f"accord.{name}"], env, log)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()


async def healthy(addr: str) -> None:
    async with asyncio.timeout(WAIT), create_channel(addr) as channel:
        while not await check_health(channel, ""):  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(0.1)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "JWT_"))}
    env.update(UNPROTECTED_GRPC, LOG_LEVEL="info", METRICS_ADDR="", **extra)
    return env


@pytest.fixture
async def cluster(
    database_url: str, redis_prefix: str, tmp_path: Path, processes: list[Process]
) -> AsyncIterator[dict[str, Any]]:
    redis_port = free_port()
    redis = Process(
        [
            *("redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"),
            *("--user", REPLICA_A_USER, "on", f">{REPLICA_A_PASSWORD}"),
            *("allkeys", "allchannels", "allcommands"),
        ],
        dict(os.environ),
        tmp_path / "redis.log",
    )
    redis.start()
    processes.append(redis)
    common = base_env(DATABASE_URL=database_url, REDIS_PREFIX=redis_prefix, RECHECK_INTERVAL="0")
    redis_urls = {
        "a": f"redis://{REPLICA_A_USER}:{REPLICA_A_PASSWORD}@127.0.0.1:{redis_port}/0",
        "b": f"redis://127.0.0.1:{redis_port}/0",
    }
    syncs = []
    sync_processes = []
    for name in ("a", "b"):
        addr = f"127.0.0.1:{free_port()}"
        proc = service(
            "sync",
            {**common, "SYNC_ADDR": addr, "REDIS_URL": redis_urls[name]},
            tmp_path / f"sync-{name}.log",
        )
        proc.start()
        processes.append(proc)
        syncs.append(addr)
        sync_processes.append(proc)
    presence_addr = f"127.0.0.1:{free_port()}"
    presence = service("presence", base_env(PRESENCE_ADDR=presence_addr), tmp_path / "presence.log")
    presence.start()
    processes.append(presence)
    for addr in (*syncs, presence_addr):
        await healthy(addr)
    ws_port = free_port()
    edge = service(
        "edge",
        base_env(
            WS_ADDR=f"127.0.0.1:{ws_port}",
            SYNC_ADDR=syncs[1],
            PRESENCE_ADDR=presence_addr,
            JWT_SECRET=SECRET,
        ),
        tmp_path / "edge.log",
    )
    edge.start()
    processes.append(edge)
    await wait_ready(f"http://127.0.0.1:{ws_port}", WAIT)
    admin = aioredis.from_url(redis_urls["b"])
    try:
        async with create_channel(syncs[0]) as a, create_channel(syncs[1]) as b:
            yield {
                "a": SyncStub(a),
                "b": SyncStub(b),
                "a_addr": syncs[0],
                "sync_a": sync_processes[0],
                "redis": redis,
                "redis_admin": admin,
                "ws_url": f"ws://127.0.0.1:{ws_port}/ws",
                "logs": tmp_path,
            }
    finally:
        await admin.aclose()


def change(client_seq: int, n: int) -> pb.Change:
    return pb.Change(
        client_seq=client_seq,
        collection="items",
        key=f"k{n % 4}",
        op=pb.Op(set=pb.SetOp(fields_json=json.dumps({"n": n}))),
    )


class Pusher:
    def __init__(self, stub: SyncStub) -> None:
        self.stub = stub
        self.client_seq = 0

    async def push(self, count: int = 1) -> int:
        """Push ``count`` changes (one push each); the head after the last."""
        head = 0
        for _ in range(count):
            self.client_seq += 1
            ack = await self.stub.Push(
                pb.PushRequest(
                    room=ROOM,
                    user_id="pusher",
                    client_id="replica-a",
                    changes=[change(self.client_seq, self.client_seq)],
                ),
                timeout=WAIT,
            )
            head = ack.head
        return head


class Stream:
    """A raw Subscribe stream on replica B: the seqs it delivers, in arrival order.

    One task reads the call (cancelling a read would cancel the whole call)."""

    def __init__(self, stub: SyncStub) -> None:
        self.call: Any = stub.Subscribe()
        self.seqs: list[int] = []
        self.arrived = asyncio.Condition()
        self.reader: asyncio.Task[None] | None = None

    async def confirm(self) -> None:
        await self.call.write(pb.SubscribeRequest(add=[ROOM]))
        first = await asyncio.wait_for(self.call.read(), WAIT)
        assert first.changes.room == ROOM and not first.changes.changes
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while (response := await self.call.read()) is not grpc.aio.EOF:
            async with self.arrived:
                self.seqs.extend(c.seq for c in response.changes.changes)
                self.arrived.notify_all()

    async def until(self, seq: int, timeout: float = WAIT) -> bool:
        try:
            async with asyncio.timeout(timeout), self.arrived:
                await self.arrived.wait_for(lambda: bool(self.seqs) and self.seqs[-1] >= seq)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.call.cancel()
        if self.reader is not None:
            self.reader.cancel()


async def test_changes_cross_replicas_in_order_through_a_redis_restart(
    cluster: dict[str, Any],
) -> None:
    pusher = Pusher(cluster["a"])
    stream = Stream(cluster["b"])
    await stream.confirm()
    async with await Client.connect(cluster["ws_url"]) as client:
        await client.hello(make_token("watcher"), client_id="watcher")
        await client.subscribe(ROOM)
        replica = Replica()

        head = await pusher.push(3)
        assert await stream.until(head)
        await sync_until(client, replica, head)

        cluster["redis"].stop()
        # Committed and acknowledged while the bus is down: published to nobody.
        head = await pusher.push(3)
        assert head == 6
        cluster["redis"].start()

        # Once B's bus is back, B re-checks (or the next change reveals the gap): either
        # way B backfills from the log.
        async with asyncio.timeout(WAIT * 2):
            while True:
                head = await pusher.push()
                if await stream.until(head, timeout=1.0):
                    break
        await sync_until(client, replica, head)

        # A change pushed through B itself reaches the same subscribers after all that.
        ack = await cluster["b"].Push(
            pb.PushRequest(
                room=ROOM, user_id="other", client_id="replica-b", changes=[change(1, 99)]
            ),
            timeout=WAIT,
        )
        assert await stream.until(ack.head)
        await sync_until(client, replica, ack.head)

        assert stream.seqs == list(range(1, ack.head + 1))
        assert replica.seqs == list(range(1, ack.head + 1))
        snapshot = [r async for r in cluster["a"].Pull(pb.PullRequest(room=ROOM), timeout=WAIT)]
        records = {r.key: json.loads(r.value_json) for r in snapshot[1].snapshot.records}
        assert replica.view("items") == records
    stream.close()


async def watch(cluster: dict[str, Any]) -> tuple[Stream, Client, Replica]:
    """A raw stream on B and a WebSocket client through the edge on B, both subscribed."""
    stream = Stream(cluster["b"])
    await stream.confirm()
    client = await Client.connect(cluster["ws_url"])
    await client.hello(make_token("watcher"), client_id="watcher")
    await client.subscribe(ROOM)
    return stream, client, Replica()


async def test_a_quiet_room_catches_up_when_redis_returns_without_another_push(
    cluster: dict[str, Any],
) -> None:
    pusher = Pusher(cluster["a"])
    stream, client, replica = await watch(cluster)
    async with client:
        head = await pusher.push()
        assert await stream.until(head)
        await sync_until(client, replica, head)

        cluster["redis"].stop()
        head = await pusher.push(5)  # acknowledged: committed, published to nobody
        assert head == 6
        cluster["redis"].start()

        # Nothing more is pushed: B re-checks once its bus is subscribed again.
        assert await stream.until(head, timeout=CATCH_UP), stream.seqs
        await sync_until(client, replica, head, timeout=CATCH_UP)
        assert stream.seqs == list(range(1, head + 1))
        assert replica.seqs == list(range(1, head + 1))
    stream.close()


async def until_logged(path: Path, text: str) -> None:
    async with asyncio.timeout(WAIT):
        while text not in await asyncio.to_thread(path.read_text, errors="replace"):  # noqa: ASYNC110 - another process's log
            await asyncio.sleep(0.05)


async def test_a_replica_killed_before_publishing_is_caught_up_when_it_starts_again(
    cluster: dict[str, Any],
) -> None:
    pusher = Pusher(cluster["a"])
    admin: aioredis.Redis = cluster["redis_admin"]
    stream, client, replica = await watch(cluster)
    async with client:
        head = await pusher.push()
        assert await stream.until(head)
        await sync_until(client, replica, head)

        # A commits and acknowledges, but Redis refuses its publishes (and its requests
        # to re-check); then A is killed, as if between commit and publish.
        await admin.acl_setuser(REPLICA_A_USER, enabled=True, commands=["-publish"])
        head = await pusher.push(3)
        assert head == 4
        await until_logged(cluster["logs"] / "sync-a.log", "committed but not published")
        cluster["sync_a"].kill()
        await admin.acl_setuser(REPLICA_A_USER, enabled=True, commands=["+publish"])

        # B's own bus never dropped: only A's start tells B to re-check.
        cluster["sync_a"].start()
        await healthy(cluster["a_addr"])
        assert await stream.until(head, timeout=CATCH_UP), stream.seqs
        await sync_until(client, replica, head, timeout=CATCH_UP)
        assert stream.seqs == list(range(1, head + 1))
        assert replica.seqs == list(range(1, head + 1))

        # And A publishes again as before.
        head = await pusher.push()
        assert await stream.until(head)
        await sync_until(client, replica, head)
        assert stream.seqs == list(range(1, head + 1))
        assert replica.seqs == list(range(1, head + 1))
    stream.close()


async def test_a_replica_that_starts_following_a_room_gets_what_the_other_pushed_alone(
    cluster: dict[str, Any],
) -> None:
    # Nobody on B follows the room: A publishes nothing for it after its first commit
    # (BUS_SKIP_UNHEARD). B's subscribers then join while A keeps pushing: B says so on
    # the join channel, A publishes again and owes a re-check of what it skipped, so B's
    # subscribers get every change from their start on, in order and once (the periodic
    # re-check is off).
    pusher = Pusher(cluster["a"])
    assert await pusher.push(3) == 3
    pushing = asyncio.create_task(pusher.push(40))
    stream, client, replica = await watch(cluster)
    async with client:
        head = await pushing
        assert head == 43
        assert await stream.until(head, timeout=CATCH_UP), stream.seqs
        await sync_until(client, replica, head, timeout=CATCH_UP)
        # Each from where it started (the client: the snapshot it subscribed at).
        assert stream.seqs == list(range(stream.seqs[0], head + 1))
        assert replica.seqs == list(range(replica.seqs[0], head + 1))
        await until_logged(cluster["logs"] / "sync-a.log", "has listeners now")
        head = await pusher.push()
        assert await stream.until(head)
        assert stream.seqs[-1] == head and len(set(stream.seqs)) == len(stream.seqs)
    stream.close()

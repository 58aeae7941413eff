"""Two sync processes sharing one PostgreSQL and one (private) Redis, and an edge.

Changes are pushed through replica A; a gRPC subscriber on replica B and a
WebSocket client on an edge attached to B receive them in seq order. Redis is
restarted in the middle: what was published while it was down is lost on the
bus, and B fills the gap from the log when the next change arrives — neither
subscriber ever sees a gap.
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
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1.sync_pb2_grpc import SyncStub
from accord.common.grpcutil import check_health, create_channel

from tests.support.ports import free_port
from tests.support.suite import wait_ready
from tests.support.wsclient import SECRET, Client, Replica, make_token, sync_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

ROOM = "replicated"
WAIT = 30.0


class Process:
    """One child process started by this test (and only ever stopped by its pid)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=out)

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
    env.update(LOG_LEVEL="info", METRICS_ADDR="", **extra)
    return env


@pytest.fixture
async def cluster(
    database_url: str, redis_prefix: str, tmp_path: Path, processes: list[Process]
) -> AsyncIterator[dict[str, Any]]:
    redis_port = free_port()
    redis = Process(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        dict(os.environ),
        tmp_path / "redis.log",
    )
    redis.start()
    processes.append(redis)
    common = base_env(
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        REDIS_PREFIX=redis_prefix,
    )
    syncs = []
    for name in ("a", "b"):
        addr = f"127.0.0.1:{free_port()}"
        proc = service("sync", {**common, "SYNC_ADDR": addr}, tmp_path / f"sync-{name}.log")
        proc.start()
        processes.append(proc)
        syncs.append(addr)
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
    async with create_channel(syncs[0]) as a, create_channel(syncs[1]) as b:
        yield {
            "a": SyncStub(a),
            "b": SyncStub(b),
            "redis": redis,
            "ws_url": f"ws://127.0.0.1:{ws_port}/ws",
            "logs": tmp_path,
        }


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

        # Once B's bus is back, the next change reveals the gap and B backfills it.
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

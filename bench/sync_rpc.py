"""The sync service alone, through gRPC: CPU per commit group and per push.

    python -m bench.sync_rpc [--groups 1,10,100] [--calls 300] [--no-redis] [--no-subscriber]
                             [--unary] [--keys 50] [--inline] [--socket]

Starts ``python -m accord.sync`` on PostgreSQL (a fresh ``accord_bench``
database) and Redis, pinned to core 0, and from core 1 sends ``PushMany``
requests one after another on a ``PushStream`` (as the edge sends them; ``--unary``:
``PushMany`` calls), each carrying K pushes of one change to K different
rooms (of 1,000), while a batched Subscribe stream follows every room. For
each K it prints the sync process's CPU (user + system, from /proc) per call
and per push: the fixed cost of a commit group (K = 1) and what each further
push adds, and PostgreSQL's CPU meanwhile (every process of the local server; Redis's is
not included). It also prints this process's own CPU per call (the client's side of
every gRPC event, the Subscribe reads included) and the Subscribe messages and
answered batches per call. ``--inline``: the Subscribe stream names itself and the
pushes name it (``PushManyRequest.subscriber``, as the edge sends them), so the
batches come in the answers and the stream writes none. ``--socket``: the requests go
to sync's push socket (``SYNC_PUSH_SOCKET``, a same-host edge's transport) instead of the
``PushStream``; the Subscribe stream stays on gRPC.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator

import grpc
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1 import sync_pb2_grpc as rpc
from accord.common.push_socket import frame, read_frame

from bench.systems import (
    PG_URL,
    REDIS_URL,
    VENV_BIN,
    children,
    cpu_seconds,
    free_port,
    pidof_listening,
    recreate_database,
)


def postgres_seconds() -> float:
    """CPU of every PostgreSQL process (the server's backends included), 0 if not local."""
    server = pidof_listening(5432)
    return sum(cpu_seconds(p) for p in children(server)) if server else 0.0


ROOMS = 1000
WARM_CALLS = 20


class Pushes:
    """Pushes of one ``set`` change each, rotating over the rooms, one client per room."""

    def __init__(self, keys: int = 50) -> None:
        self.seqs = [0] * ROOMS
        self.next_room = 0
        self.keys = keys

    def call(self, k: int) -> pb.PushManyRequest:
        pushes = []
        for _ in range(k):
            room = self.next_room
            self.next_room = (room + 1) % ROOMS
            self.seqs[room] += 1
            seq = self.seqs[room]
            fields = json.dumps({"title": "x" * 60, "n": seq})
            pushes.append(
                pb.PushRequest(
                    room=f"r{room}",
                    user_id="u",
                    client_id=f"c{room}",
                    changes=[
                        pb.Change(
                            client_seq=seq,
                            collection="todos",
                            key=f"k{seq % self.keys}",
                            op=pb.Op(set=pb.SetOp(fields_json=fields)),
                        )
                    ],
                )
            )
        return pb.PushManyRequest(pushes=pushes)


async def measure(
    port: int,
    pid: int,
    groups: list[int],
    calls: int,
    subscriber: bool,
    unary: bool,
    keys: int = 50,
    inline: bool = False,
    socket: str | None = None,
) -> list[tuple[int, float, float, float, float, float, float]]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = rpc.SyncStub(channel)
        delivered = messages = answered = 0
        stream = None
        name = f"bench-{os.getpid()}" if subscriber and inline else ""
        if subscriber:
            requests: asyncio.Queue[pb.SubscribeRequest] = asyncio.Queue()
            requests.put_nowait(
                pb.SubscribeRequest(
                    add=[f"r{i}" for i in range(ROOMS)], batched=True, subscriber=name
                )
            )

            async def feed() -> AsyncIterator[pb.SubscribeRequest]:
                while True:
                    yield await requests.get()

            stream = stub.Subscribe(feed())

            async def read() -> None:
                nonlocal delivered, messages
                async for message in stream:
                    changes = sum(len(b.changes) for b in message.batches)
                    delivered += changes
                    messages += 1 if changes else 0

            reader = asyncio.create_task(read())
            await asyncio.sleep(1.0)
        pushes = Pushes(keys)
        pushing = stub.PushStream()
        if socket is not None:
            socket_reader, socket_writer = await asyncio.open_unix_connection(socket)

        async def send(request: pb.PushManyRequest) -> None:
            nonlocal delivered, answered
            request.subscriber = name
            if socket is not None:
                socket_writer.write(frame(request.SerializeToString()))
                data = await read_frame(socket_reader)
                assert data is not None, "sync closed the push socket"
                response = pb.PushManyResponse.FromString(data)
            elif unary:
                response = await stub.PushMany(request, timeout=30)
            else:
                await pushing.write(request)
                response = await pushing.read()
            answered += len(response.batches)
            delivered += sum(len(b.changes) for b in response.batches)

        rows = []
        for k in groups:
            for _ in range(max(WARM_CALLS, -(-ROOMS // k))):  # every room once at least
                await send(pushes.call(k))
            before, database, started = cpu_seconds(pid), postgres_seconds(), time.perf_counter()
            own, read_before, answered_before = time.process_time(), messages, answered
            for _ in range(calls):
                await send(pushes.call(k))
            used, wall = cpu_seconds(pid) - before, time.perf_counter() - started
            client = time.process_time() - own
            rows.append(
                (
                    k,
                    used / calls,
                    (postgres_seconds() - database) / calls,
                    wall / calls,
                    client / calls,
                    (messages - read_before) / calls,
                    (answered - answered_before) / calls,
                )
            )
        pushing.cancel()
        if stream is not None:
            await asyncio.sleep(0.5)
            stream.cancel()
            reader.cancel()
            await asyncio.sleep(0.2)
            expected = sum(pushes.seqs)
            if delivered < expected:
                print(f"warning: the subscriber got {delivered} of {expected} changes")
        return rows


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.sync_rpc")
    ap.add_argument("--groups", default="1,10,100", help="pushes per PushMany call (K)")
    ap.add_argument("--calls", type=int, default=300, help="measured calls per K")
    ap.add_argument("--no-redis", action="store_true", help="in-process bus instead of Redis")
    ap.add_argument("--no-subscriber", action="store_true", help="no Subscribe stream")
    ap.add_argument("--unary", action="store_true", help="PushMany calls, not a PushStream")
    ap.add_argument(
        "--socket", action="store_true", help="requests on sync's push socket, not a PushStream"
    )
    ap.add_argument(
        "--inline",
        action="store_true",
        help="pushes name the Subscribe stream: batches in the answers, none on the stream",
    )
    ap.add_argument(
        "--keys",
        type=int,
        default=50,
        help="records per room the pushes cycle through (1: each client rewrites one record, "
        "as in the whole-stack scenarios)",
    )
    args = ap.parse_args()
    groups = [int(k) for k in args.groups.split(",")]
    recreate_database()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        SYNC_ADDR=f"127.0.0.1:{port}",
        METRICS_ADDR=f"127.0.0.1:{free_port()}",
        DATABASE_URL=PG_URL,
        LOG_LEVEL="warning",
        GRPC_ALLOW_PLAINTEXT="true",  # the bench measures loopback gRPC without TLS
        GRPC_ALLOW_UNAUTHENTICATED="true",
    )
    if not args.no_redis:
        env.update(REDIS_URL=REDIS_URL, REDIS_PREFIX=f"bench-rpc-{os.getpid()}")
    socket_dir = tempfile.mkdtemp(prefix="accord-bench-") if args.socket else None
    socket = os.path.join(socket_dir, "push.sock") if socket_dir else None
    if socket is not None:
        env.update(SYNC_PUSH_SOCKET=socket)
    server = subprocess.Popen([str(VENV_BIN / "python"), "-m", "accord.sync"], env=env)
    try:
        cores = os.sched_getaffinity(0)
        if len(cores) > 1:
            os.sched_setaffinity(server.pid, {min(cores)})
            os.sched_setaffinity(0, cores - {min(cores)})
        rows = asyncio.run(
            measure(
                port,
                server.pid,
                groups,
                args.calls,
                not args.no_subscriber,
                args.unary,
                max(1, args.keys),
                args.inline,
                socket,
            )
        )
    finally:
        server.terminate()
        server.wait(30)
        if socket_dir is not None:
            shutil.rmtree(socket_dir, ignore_errors=True)
    bus = "in-process bus" if args.no_redis else "Redis bus"
    subscribed = "no subscriber" if args.no_subscriber else "one batched Subscribe stream"
    if args.inline and not args.no_subscriber:
        subscribed += " named by the pushes (inline batches)"
    how = "PushMany calls" if args.unary else "PushStream requests"
    if args.socket:
        how = "requests on the push socket"
    print(
        f"sync CPU through gRPC ({how}, {bus}, {subscribed}, {args.keys} records per room, "
        f"{args.calls} per row)"
    )
    print(
        "| pushes per call | sync CPU per call | per push | PostgreSQL CPU per call "
        "| per push | wall per call | client CPU per call | Subscribe messages per call "
        "| answered batches per call |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, cpu, database, wall, client, read, answered in rows:
        print(
            f"| {k} | {cpu * 1e3:.2f} ms | {cpu * 1e6 / k:.0f} µs | {database * 1e3:.2f} ms "
            f"| {database * 1e6 / k:.0f} µs | {wall * 1e3:.2f} ms | {client * 1e3:.2f} ms "
            f"| {read:.2f} | {answered:.2f} |"
        )


if __name__ == "__main__":
    sys.exit(main())

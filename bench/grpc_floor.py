"""The floor of a gRPC message on this machine: CPU per exchange on a grpc.aio stream.

    python -m bench.grpc_floor [--exchanges 3000] [--pushes 1]

Starts an echo server (the ``Sync`` service's ``PushStream``, answering each
request with an empty response at once; no Accord code) pinned to the second
core, and from the first core writes ``PushManyRequest``s of ``--pushes`` small
pushes on one stream, reading each answer before the next write: what the edge
does with every commit group. Prints the client's CPU (every thread of it:
grpc.aio's poller thread included) per exchange, per write and per read, on
uvloop and on asyncio's own loop. Each commit group costs Accord six such
events between edge and sync (the edge's write and read, sync's read and
write, sync's Subscribe write and the edge's read of it), so this is the part
of a group's cost that no change to Accord's own code can remove.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import grpc
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1 import sync_pb2_grpc as rpc

from bench.systems import free_port

WARM = 200


class Echo(rpc.SyncServicer):
    async def PushStream(
        self, request_iterator: AsyncIterator[pb.PushManyRequest], context: object
    ) -> AsyncIterator[pb.PushManyResponse]:
        async for _ in request_iterator:
            yield pb.PushManyResponse()


async def serve(port: int) -> None:
    server = grpc.aio.server()
    rpc.add_SyncServicer_to_server(Echo(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def measure(port: int, exchanges: int, pushes: int) -> tuple[float, float, float]:
    """CPU seconds per exchange, per write and per read."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        call = rpc.SyncStub(channel).PushStream()  # type: ignore[no-untyped-call]
        request = pb.PushManyRequest(
            pushes=[
                pb.PushRequest(
                    room=f"r{n}",
                    user_id="u",
                    client_id="c",
                    changes=[
                        pb.Change(
                            client_seq=1,
                            collection="todos",
                            key="k",
                            op=pb.Op(set=pb.SetOp(fields_json='{"title":"' + "x" * 60 + '"}')),
                        )
                    ],
                )
                for n in range(pushes)
            ]
        )
        for _ in range(WARM):
            await call.write(request)
            await call.read()
        writes = reads = 0.0
        started = time.process_time()
        for _ in range(exchanges):
            a = time.process_time()
            await call.write(request)
            b = time.process_time()
            await call.read()
            writes += b - a
            reads += time.process_time() - b
        total = time.process_time() - started
        call.cancel()
        return total / exchanges, writes / exchanges, reads / exchanges


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.grpc_floor")
    ap.add_argument("--exchanges", type=int, default=3000)
    ap.add_argument("--pushes", type=int, default=1, help="pushes per request")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.grpc_floor", "--serve", str(port)])
    try:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > 1:
            os.sched_setaffinity(server.pid, {cores[1]})
            os.sched_setaffinity(0, {cores[0]})
        import uvloop

        rows = [
            ("uvloop", uvloop.run(measure(port, args.exchanges, args.pushes))),
            ("asyncio", asyncio.run(measure(port, args.exchanges, args.pushes))),
        ]
    finally:
        server.terminate()
        server.wait(30)
    print(
        f"grpc.aio client CPU on one PushStream ({args.pushes} pushes per request, "
        f"{args.exchanges} exchanges)"
    )
    print("| loop | per exchange | per write | per read |")
    print("|---|---:|---:|---:|")
    for loop, (total, write, read) in rows:
        print(f"| {loop} | {total * 1e6:.0f} µs | {write * 1e6:.0f} µs | {read * 1e6:.0f} µs |")


if __name__ == "__main__":
    main()

"""Push -> ack latency of the sync service with webhooks off, to a fast receiver, and to
a slow one (each request answered after ``--delay`` seconds).

    python -m bench.webhooks [--pushes 3000] [--writers 8] [--delay 2] [--rooms 50]

For each mode: a fresh PostgreSQL database, ``python -m accord.sync`` as a child
process, and ``--writers`` concurrent callers pushing one ``set`` change per
``Push`` (round-robin over ``--rooms`` rooms, all of which the endpoint wants).
The receiver runs in this process (aiohttp on loopback). Prints latency
percentiles, pushes per second, and how many changes the receiver had by the
end of the pushes and after a drain of a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1 import sync_pb2_grpc as rpc
from aiohttp import web

from bench.systems import VENV_BIN, free_port, fresh_database, wait_port

DATABASE = "accord_bench_webhooks"


class Receiver:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.changes = 0
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if self.delay:
            await asyncio.sleep(self.delay)
        self.requests += 1
        self.changes += len(body["changes"])
        return web.Response(text="ok")

    async def start(self, port: int) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner


async def writer(stub: rpc.SyncStub, index: int, count: int, rooms: int, out: list[float]) -> None:
    for n in range(1, count + 1):
        room = f"doc:{(index + n * 7) % rooms}"
        change = pb.Change(
            client_seq=n,
            collection="todos",
            key=f"k{n % 20}",
            op=pb.Op(set=pb.SetOp(fields_json=json.dumps({"n": n, "title": "x" * 40}))),
        )
        started = time.perf_counter()
        await stub.Push(
            pb.PushRequest(room=room, user_id="u", client_id=f"w{index}", changes=[change]),
            timeout=30,
        )
        out.append(time.perf_counter() - started)


def start_sync(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([str(VENV_BIN / "python"), "-m", "accord.sync"], env=env)
    wait_port(port, 30, server)
    return server


async def run_mode(mode: str, args: argparse.Namespace, work: Path) -> dict[str, float]:
    url = await fresh_database(DATABASE)
    port, hook_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "WEBHOOK"))}
    env.update(
        DATABASE_URL=url, SYNC_ADDR=f"127.0.0.1:{port}", METRICS_ADDR="", LOG_LEVEL="warning"
    )
    receiver = Receiver(args.delay if mode == "slow" else 0.0)
    runner = None
    if mode != "off":
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        endpoint: dict[str, object] = {"id": "bench", "rooms": ["doc:*"], "secret": secret}
        endpoint["url"] = f"http://127.0.0.1:{hook_port}/hook"
        (work / "hooks.json").write_text(json.dumps({"endpoints": [endpoint]}))
        env["WEBHOOKS_FILE"] = str(work / "hooks.json")
        runner = await receiver.start(hook_port)
    server = start_sync(env, port)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rpc.SyncStub(channel)  # type: ignore[no-untyped-call]
            warm: list[float] = []
            await asyncio.gather(*(writer(stub, w, 20, args.rooms, warm) for w in range(2)))
            latencies: list[float] = []
            per_writer = args.pushes // args.writers
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    writer(stub, w + 10, per_writer, args.rooms, latencies)
                    for w in range(args.writers)
                )
            )
            elapsed = time.perf_counter() - started
            at_end = receiver.changes
            await asyncio.sleep(args.drain)
        cuts = statistics.quantiles(latencies, n=100)
        return {
            "p50_ms": cuts[49] * 1000,
            "p95_ms": cuts[94] * 1000,
            "p99_ms": cuts[98] * 1000,
            "mean_ms": statistics.fmean(latencies) * 1000,
            "pushes_per_s": len(latencies) / elapsed,
            "delivered_at_end": at_end,
            "delivered_after_drain": receiver.changes,
            "requests": receiver.requests,
        }
    finally:
        server.terminate()
        server.wait(30)
        if runner is not None:
            await runner.cleanup()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=3000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--delay", type=float, default=2.0)
    parser.add_argument("--drain", type=float, default=3.0)
    parser.add_argument("--modes", default="off,fast,slow")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            result = await run_mode(mode, args, Path(tmp))
            shown = ", ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
            )
            print(f"{mode:5} {shown}", flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

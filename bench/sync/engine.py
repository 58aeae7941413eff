"""Benchmark of the sync engine alone (no gRPC, no edge) against PostgreSQL.

    .venv/bin/python -m bench.sync [--server-url postgresql://postgres@127.0.0.1:5432/postgres]
                                   [--seconds 10] [--writers 8] [--quick]

Creates a scratch database on the server, runs each scenario on a fresh one,
drops it, and prints one line per figure:

- push: changes/s and push latency p50/p95/p99, ``--writers`` concurrent
  writers each pushing one change per push, into 1 room and spread over 1,000
  rooms; then the same with 100 changes per push (batched inserts).
- catch-up: time to pull 10,000 missed changes (change pages) and a
  100,000-record snapshot (streamed in chunks), as a client reconnecting would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from accord.sync.engine import Engine, SnapshotPage
from accord.sync.hlc import HybridClock
from accord.sync.merge import SetOp
from accord.sync.model import IncomingChange, Limits, PushBatch, Retention
from accord.sync.store_postgres import PostgresStore

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
LIMITS = Limits(max_batch_changes=10_000)


@asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    name = f"accord_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def engine_on(server_url: str, pool: int) -> AsyncIterator[Engine]:
    async with (
        scratch_database(server_url) as url,
        PostgresStore.open(url, max_size=pool) as store,
    ):
        yield Engine(store, HybridClock(60_000_000), LIMITS, Retention(log_changes=200_000))


def batch(
    room: str, client: str, first_seq: int, size: int, key: Callable[[int], str]
) -> PushBatch:
    changes = []
    for i in range(size):
        seq = first_seq + i
        fields = {"title": f"item {seq}", "done": seq % 2 == 0, "n": seq}
        changes.append(IncomingChange(seq, "items", key(seq), 0, SetOp(fields), json.dumps(fields)))
    return PushBatch(room, "bench", client, tuple(changes))


def percentile(sorted_values: list[float], p: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass
class PushFigures:
    label: str
    changes_per_s: float
    pushes: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    def line(self) -> str:
        return (
            f"push  {self.label:<34} {self.changes_per_s:>9,.0f} changes/s  "
            f"p50 {self.p50_ms:6.2f} ms  p95 {self.p95_ms:6.2f} ms  p99 {self.p99_ms:6.2f} ms  "
            f"({self.pushes} pushes)"
        )


async def push_load(
    server_url: str, label: str, rooms: int, per_push: int, writers: int, seconds: float
) -> PushFigures:
    async with engine_on(server_url, pool=writers + 2) as engine:
        latencies: list[float] = []
        done = 0
        stop = time.perf_counter() + seconds

        async def writer(index: int) -> None:
            nonlocal done
            rng = random.Random(index)
            next_seq = 1
            while time.perf_counter() < stop:
                room = f"room-{rng.randrange(rooms)}"
                pushed = batch(room, f"w{index}", next_seq, per_push, lambda s: f"k{s % 500}")
                started = time.perf_counter()
                await engine.push(pushed)
                latencies.append(time.perf_counter() - started)
                next_seq += per_push
                done += per_push

        # One push per room first, so the measurement is not of creating rooms.
        await asyncio.gather(
            *(engine.push(batch(f"room-{r}", "warm", 1, 1, str)) for r in range(rooms))
        )
        started = time.perf_counter()
        await asyncio.gather(*(writer(i) for i in range(writers)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return PushFigures(
        label,
        done / elapsed,
        len(latencies),
        percentile(latencies, 50) * 1000,
        percentile(latencies, 95) * 1000,
        percentile(latencies, 99) * 1000,
    )


async def fill(engine: Engine, room: str, changes: int, key: Callable[[int], str]) -> None:
    size = 1000
    for first in range(1, changes + 1, size):
        await engine.push(batch(room, "filler", first, min(size, changes - first + 1), key))


async def catch_up_changes(server_url: str, missed: int) -> str:
    async with engine_on(server_url, pool=4) as engine:
        await fill(engine, "r", missed + 100, lambda s: f"k{s % 1000}")
        head = await engine.head("r")
        started = time.perf_counter()
        received = pages = 0
        async for item in engine.pull("r", head - missed, 0, 0, False):
            if isinstance(item, list):
                received += len(item)
                pages += 1
        elapsed = time.perf_counter() - started
    assert received == missed, (received, missed)
    return (
        f"catch-up  {missed:,} missed changes      {elapsed * 1000:8.0f} ms  "
        f"({pages} pages, {missed / elapsed:,.0f} changes/s)"
    )


async def catch_up_snapshot(server_url: str, records: int) -> str:
    async with engine_on(server_url, pool=4) as engine:
        await fill(engine, "r", records, lambda s: f"k{s:07}")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        received = chunks = 0
        async for item in engine.pull("r", 0, 0, 0, False):
            if isinstance(item, SnapshotPage):
                received += len(item.records)
                chunks += 1
        elapsed = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert received == records, (received, records)
    return (
        f"catch-up  {records:,}-record snapshot   {elapsed * 1000:8.0f} ms  "
        f"({chunks} chunks, {records / elapsed:,.0f} records/s, "
        f"peak RSS growth {(rss_after - rss_before) / 1024:.0f} MiB)"
    )


async def run(args: argparse.Namespace) -> None:
    seconds = 3.0 if args.quick else args.seconds
    server = args.server_url
    print(
        f"# sync engine benchmark: {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    admin = await asyncpg.connect(server)
    try:
        print(f"# {await admin.fetchval('SELECT version()')}")
    finally:
        await admin.close()
    print(f"# {args.writers} concurrent writers, {seconds:g} s per push scenario")
    for label, rooms, per_push in (
        ("1 room, 1 change/push", 1, 1),
        ("1,000 rooms, 1 change/push", 1000, 1),
        ("1 room, 100 changes/push", 1, 100),
        ("1,000 rooms, 100 changes/push", 1000, 100),
    ):
        figures = await push_load(server, label, rooms, per_push, args.writers, seconds)
        print(figures.line(), flush=True)
    print(await catch_up_changes(server, 1000 if args.quick else 10_000), flush=True)
    print(await catch_up_snapshot(server, 10_000 if args.quick else 100_000), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sync", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--server-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER)
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="short runs and smaller sizes")
    asyncio.run(run(parser.parse_args()))

"""What installed extensions cost per push: the engine alone, no extension vs a no-op one.

    python -m bench.extensions [--pushes 3000] [--rounds 5] [--database-url URL]

Pushes one ``set`` change at a time (one writer, 200 keys of one room) through
``Engine.push`` on SQLite (a scratch file; or the PostgreSQL database given,
whose tables it empties first), in three setups: no extension (the plain
path), a no-op ``before_commit`` (every change judged: its op parsed, the
payload built, the hook awaited with its timeout), and a no-op
``before_commit`` + ``after_commit`` (plus the dispatcher reading the log and
writing the cursor, running beside the pushes in the same process). Prints
the median over rounds of microseconds per push, and CPU seconds per push of
this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from accord.api.sync.v1 import sync_pb2 as pb
from accord.extensions import AfterCommit, BeforeCommit, BeforeCommitReply, Extension
from accord.sync import wire
from accord.sync.dispatch import Dispatcher
from accord.sync.engine import Engine
from accord.sync.extensions import Screen
from accord.sync.hlc import HybridClock
from accord.sync.model import Limits
from accord.sync.store import Store
from accord.sync.store_postgres import PostgresStore
from accord.sync.store_sqlite import SqliteStore

LIMITS = Limits()


class NoOp:
    async def before_commit(self, change: BeforeCommit) -> BeforeCommitReply:
        return None

    async def after_commit(self, committed: AfterCommit) -> None:
        return None


class BeforeOnly:
    async def before_commit(self, change: BeforeCommit) -> BeforeCommitReply:
        return None


def open_store(url: str | None, directory: Path, name: str) -> AbstractAsyncContextManager[Store]:
    if url is None:
        return SqliteStore.open(str(directory / f"{name}.db"))

    @asynccontextmanager
    async def postgres() -> AsyncIterator[Store]:
        async with PostgresStore.open(url) as store:
            yield store

    return postgres()


async def run(
    setup: str, pushes: int, url: str | None, directory: Path, round_: int
) -> tuple[float, float]:
    async with open_store(url, directory, f"{setup}-{round_}") as store:
        room = f"bench-{setup.replace('+', '.')}-{round_}-{time.time_ns()}"
        extensions = {
            "none": [],
            "before_commit": [Extension("noop", BeforeOnly())],
            "before+after_commit": [Extension("noop", NoOp())],
        }[setup]
        dispatcher = Dispatcher(store, extensions, 1.0)
        screen = Screen(extensions, 1.0, LIMITS)
        engine = Engine(
            store,
            HybridClock(60_000_000),
            LIMITS,
            screen=screen if screen.active else None,
            holds=dispatcher.holds(),
        )
        async with dispatcher.running():
            started, cpu = time.perf_counter(), time.process_time()
            for n in range(1, pushes + 1):
                request = pb.PushRequest(
                    room=room,
                    user_id="u",
                    client_id="c",
                    changes=[
                        pb.Change(
                            client_seq=n,
                            collection="todos",
                            key=f"k{n % 200}",
                            op=pb.Op(set=pb.SetOp(fields_json=json.dumps({"n": n, "t": "x"}))),
                        )
                    ],
                )
                await engine.push(wire.push_batch(request, LIMITS))
                dispatcher.notify([room])
            elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    return elapsed / pushes * 1e6, used / pushes * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        for setup in ("none", "before_commit", "before+after_commit"):
            results = [
                await run(setup, args.pushes, args.database_url, Path(directory), r)
                for r in range(args.rounds)
            ]
            wall = statistics.median(r[0] for r in results)
            cpu = statistics.median(r[1] for r in results)
            print(f"{setup:>22}: {wall:7.1f} µs/push wall, {cpu:7.1f} µs/push CPU")


if __name__ == "__main__":
    asyncio.run(main())

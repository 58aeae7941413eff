"""The crash-consistency run shared by tests/fault and ``make soak``.

``run(config, logs)`` starts a cluster (cluster.py), lets ``config.clients`` clients
(client.py) push ``config.changes`` changes (LWW sets and counter increments) to
``config.rooms`` rooms while ``config.faults`` faults are injected one after another,
lets everything settle, and accounts (accounting.py) for every acknowledged change
against the room logs read back through a raw gRPC ``Pull``.

Faults are spread over the writes: fault k is injected when about k/(faults+1) of the
changes have been started, and the writers are held back (never stopped) so that they
are still pushing while each fault happens and after the last one. Everything random
comes from ``config.seed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fault.accounting import Report, account
from tests.fault.client import FaultClient
from tests.fault.cluster import FAULTS, Cluster, running

CONNECT_DEADLINE = 60.0


@dataclass(frozen=True)
class Config:
    clients: int = 8
    changes: int = 800
    faults: int = 7
    seed: int = 1
    syncs: int = 1
    edges: int = 1
    rooms: int = 2
    keys: int = 8
    kinds: tuple[str, ...] = FAULTS
    settle: float = 30.0
    """Seconds every subscriber gets, after the last push, to reach its room's head."""
    push_deadline: float = 120.0
    """Seconds one change may take, retries included, before it is abandoned."""
    push_sockets: bool = False
    """Edges push to their sync over its push socket (``SYNC_PUSH_SOCKET``), not gRPC."""

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULTS)
        if unknown or not self.kinds:
            raise ValueError(f"fault kinds must be among {', '.join(FAULTS)}: {sorted(unknown)}")
        if min(self.clients, self.changes, self.syncs, self.edges, self.rooms, self.keys) < 1:
            raise ValueError("clients, changes, syncs, edges, rooms and keys must be positive")
        if self.faults < 0:
            raise ValueError("faults must not be negative")

    def schedule(self) -> list[str]:
        """The fault kinds in order: every kind once per round, each round shuffled."""
        rng = random.Random(f"{self.seed}:schedule")
        kinds: list[str] = []
        while len(kinds) < self.faults:
            round_ = list(self.kinds)
            rng.shuffle(round_)
            kinds.extend(round_)
        return kinds[: self.faults]


@dataclass
class Progress:
    """How many changes have been started and acknowledged; the start limit."""

    total: int
    limit: int
    started: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def admit(self) -> bool:
        async with self.changed:
            await self.changed.wait_for(
                lambda: self.started < self.limit or self.started >= self.total
            )
            if self.started >= self.total:
                return False
            self.started += 1
            return True

    async def wait_started(self, count: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.started >= count)

    async def set_limit(self, limit: int) -> None:
        async with self.changed:
            self.limit = limit
            self.changed.notify_all()

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()


async def _write(client: FaultClient, progress: Progress, config: Config) -> None:
    loop = asyncio.get_running_loop()
    while await progress.admit():
        sent = client.next_change(config.keys)
        await client.push(sent, loop.time() + config.push_deadline)
        await progress.notify()
        if not sent.acknowledged and sent.rejected is None:
            return  # abandoned: this client cannot reach any edge any more


async def _inject_all(cluster: Cluster, progress: Progress, config: Config) -> None:
    rng = random.Random(f"{config.seed}:faults")
    kinds = config.schedule()
    points = [config.changes * (k + 1) // (len(kinds) + 1) for k in range(len(kinds))]
    for k, kind in enumerate(kinds):
        await progress.wait_started(max(points[k] - config.clients, 0))
        await progress.set_limit(points[k + 1] if k + 1 < len(points) else config.changes)
        before = progress.started
        what = await cluster.inject(kind, rng)
        # Shows in the report that the writers went on pushing while the fault happened.
        cluster.fault_log[-1] = f"{what} [changes started: {before} -> {progress.started}]"


async def _settle(client: FaultClient, head: int, timeout: float) -> None:
    """Reach ``head``: from the live stream; resubscribing only when the session died."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while client.replica.seq < head and loop.time() < deadline:
        if client.conn is None or not client.conn.alive:
            try:
                await client.connect(deadline)
            except TimeoutError:
                return
        await client.until_seq(head, min(1.0, max(deadline - loop.time(), 0.0)))


async def run(config: Config, logs: Path) -> Report:
    started = time.monotonic()
    await asyncio.to_thread(logs.mkdir, parents=True, exist_ok=True)
    async with running(
        logs, syncs=config.syncs, edges=config.edges, push_sockets=config.push_sockets
    ) as cluster:
        clients = [
            FaultClient(
                f"c{i}",
                f"room-{i % config.rooms}",
                cluster.ws_urls,
                home=i % config.edges,
                seed=f"{config.seed}:client:{i}",
            )
            for i in range(config.clients)
        ]
        try:
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(c.connect(loop.time() + CONNECT_DEADLINE) for c in clients))
            first = config.changes // (config.faults + 1) if config.faults else config.changes
            progress = Progress(total=config.changes, limit=first)
            faults = asyncio.create_task(_inject_all(cluster, progress, config))
            writers: asyncio.Future[list[None]] = asyncio.gather(
                *(_write(c, progress, config) for c in clients)
            )
            try:
                both: list[asyncio.Future[Any]] = [faults, writers]
                await asyncio.wait(both, return_when=asyncio.FIRST_EXCEPTION)
                if faults.done():
                    faults.result()  # a fault that could not be healed fails the run here
                await writers
                # Every writer is done; a fault still waiting for its point never comes
                # (the report then shows fewer faults than asked for).
                if not faults.done():
                    faults.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await faults
            finally:
                faults.cancel()
                writers.cancel()
            report = await account(
                cluster, clients, config, lambda c, h: _settle(c, h, config.settle)
            )
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    report.elapsed = time.monotonic() - started
    return report

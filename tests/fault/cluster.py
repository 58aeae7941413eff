"""Accord as separate processes on a private PostgreSQL and a private Redis, and its faults.

``Cluster`` starts ``syncs`` sync replicas, one presence and ``edges`` edges (edge i
talks to sync i mod ``syncs``), all on loopback ports, and ``inject`` applies one fault
and waits until the faulted part serves again. ``close`` stops everything it started,
whatever happened. With ``push_sockets`` each sync also listens on a push socket of its
own (``SYNC_PUSH_SOCKET``) and each edge pushes to its sync's.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from accord.api.sync.v1.sync_pb2_grpc import SyncStub
from accord.common.grpcutil import create_channel

from tests.fault.procs import (
    PrivatePostgres,
    Service,
    accord_service,
    grpc_healthy,
    http_ready,
    redis_ready,
    redis_service,
)
from tests.support.ports import free_ports
from tests.support.suite import UNPROTECTED_GRPC
from tests.support.wsclient import SECRET

FAULTS = ("sync", "edge", "presence", "pg-fast", "pg-immediate", "pg-stop", "redis")
"""Every kind of fault: SIGKILL of one process (then started again), PostgreSQL stopped
``fast`` or ``immediate`` and started at once, or stopped for a few seconds
(``pg-stop``), and Redis SIGKILLed (it keeps nothing: it comes back empty)."""


def base_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "JWT_", "SYNC_", "PRESENCE_", "WS_"))
    }
    env.update(UNPROTECTED_GRPC, LOG_LEVEL="info", METRICS_ADDR="", **extra)
    return env


class Cluster:
    def __init__(
        self, logs: Path, *, syncs: int = 1, edges: int = 1, push_sockets: bool = False
    ) -> None:
        self.logs = logs
        # A short directory: a Unix socket's path is at most 107 bytes.
        self.socket_dir = tempfile.mkdtemp(prefix="accord-f-") if push_sockets else None
        self.sockets = [
            os.path.join(self.socket_dir, f"sync-{i}.sock") if self.socket_dir else ""
            for i in range(syncs)
        ]
        # Chosen together, so that no two of them are the same (nothing listens yet).
        ports = iter(free_ports(3 + syncs + edges))
        self.redis_port = next(ports)
        self.redis = redis_service(self.redis_port, logs)
        self.postgres = PrivatePostgres(next(ports), logs / "postgres-ctl.log")
        common = {
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "REDIS_PREFIX": "accord-fault",
        }
        self.sync_addrs = [f"127.0.0.1:{next(ports)}" for _ in range(syncs)]
        self.syncs = [
            accord_service(
                f"sync-{i}",
                "sync",
                base_env(
                    **common,
                    SYNC_ADDR=addr,
                    DATABASE_URL=self.postgres.url,
                    LOG_RETENTION="0",  # the whole log stays readable for the accounting
                    SYNC_PUSH_SOCKET=self.sockets[i],
                ),
                logs,
            )
            for i, addr in enumerate(self.sync_addrs)
        ]
        self.presence_addr = f"127.0.0.1:{next(ports)}"
        self.presence = accord_service(
            "presence", "presence", base_env(**common, PRESENCE_ADDR=self.presence_addr), logs
        )
        self.edge_addrs = [f"127.0.0.1:{next(ports)}" for _ in range(edges)]
        self.edges = [
            accord_service(
                f"edge-{i}",
                "edge",
                base_env(
                    WS_ADDR=addr,
                    SYNC_ADDR=self.sync_addrs[i % syncs],
                    SYNC_PUSH_SOCKET=self.sockets[i % syncs],
                    PRESENCE_ADDR=self.presence_addr,
                    JWT_SECRET=SECRET,
                    CONNECT_RATE="1000",
                    CONNECT_BURST="1000",
                ),
                logs,
            )
            for i, addr in enumerate(self.edge_addrs)
        ]
        self.ws_urls = [f"ws://{addr}/ws" for addr in self.edge_addrs]
        self.fault_log: list[str] = []

    @property
    def services(self) -> list[Service]:
        return [self.redis, *self.syncs, self.presence, *self.edges]

    async def start(self) -> None:
        await self.postgres.init()
        await self.postgres.start()
        self.redis.start()
        await redis_ready(self.redis_port)
        for service in (*self.syncs, self.presence):
            service.start()
        await asyncio.gather(*(grpc_healthy(a) for a in (*self.sync_addrs, self.presence_addr)))
        for edge in self.edges:
            edge.start()
        await asyncio.gather(*(http_ready(a) for a in self.edge_addrs))

    def close(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.postgres.destroy()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def logs_tail(self) -> str:
        return "\n".join(f"== {s.name}\n{s.log_tail()}" for s in self.services)

    # -- faults -------------------------------------------------------------------------

    async def _restart(self, service: Service, down: float) -> None:
        service.kill()
        await asyncio.sleep(down)
        service.start()

    async def _sync_back(self, index: int) -> None:
        """Start sync ``index`` again until it serves (it exits when PostgreSQL is away)."""
        for _ in range(5):
            try:
                await grpc_healthy(self.sync_addrs[index], timeout=20.0)
                return
            except TimeoutError:
                self.syncs[index].kill()
                self.syncs[index].start()
        raise TimeoutError(f"sync-{index} did not come back:\n{self.syncs[index].log_tail()}")

    async def inject(self, kind: str, rng: random.Random) -> str:
        """Apply one fault and wait until the faulted part serves again; a description."""
        down = round(rng.uniform(0.1, 1.0), 2)
        if kind == "sync":
            index = rng.randrange(len(self.syncs))
            await self._restart(self.syncs[index], down)
            await self._sync_back(index)
            what = f"SIGKILL sync-{index}, {down}s down"
        elif kind == "edge":
            index = rng.randrange(len(self.edges))
            await self._restart(self.edges[index], down)
            await http_ready(self.edge_addrs[index])
            what = f"SIGKILL edge-{index}, {down}s down"
        elif kind == "presence":
            await self._restart(self.presence, down)
            await grpc_healthy(self.presence_addr)
            what = f"SIGKILL presence, {down}s down"
        elif kind in ("pg-fast", "pg-immediate", "pg-stop"):
            mode = "immediate" if kind == "pg-immediate" else "fast"
            if kind == "pg-stop":
                down = round(rng.uniform(2.0, 4.0), 2)
            await self.postgres.stop(mode)
            await asyncio.sleep(down)
            await self.postgres.start()
            what = f"PostgreSQL stopped {mode}, {down}s down"
        elif kind == "redis":
            await self._restart(self.redis, down)
            await redis_ready(self.redis_port)
            what = f"SIGKILL redis, {down}s down"
        else:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        # Whatever was faulted, every process must (still) be running afterwards.
        for service in self.services:
            if not service.running:
                raise RuntimeError(f"{service.name} exited:\n{service.log_tail()}")
        what = f"{kind}: {what}"
        self.fault_log.append(what)
        return what


@asynccontextmanager
async def running(
    logs: Path, *, syncs: int = 1, edges: int = 1, push_sockets: bool = False
) -> AsyncIterator[Cluster]:
    cluster = Cluster(logs, syncs=syncs, edges=edges, push_sockets=push_sockets)
    try:
        await cluster.start()
        yield cluster
    finally:
        cluster.close()


@asynccontextmanager
async def sync_stub(addr: str) -> AsyncIterator[SyncStub]:
    async with create_channel(addr) as channel:
        yield SyncStub(channel)  # type: ignore[no-untyped-call]

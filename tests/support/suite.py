"""Accord running for a test: in-process (fast, for protocol tests) or as `accord dev`.

The fixtures here (``suite``, ``make_suite``, ``dev``) are registered for every
test directory by tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.ports import free_ports
from tests.support.sseclient import SseClient
from tests.support.wsclient import SECRET, Client

ROOT = Path(__file__).resolve().parents[2]
ACCORD = str(Path(sys.executable).parent / "accord")

UNPROTECTED_GRPC = {"GRPC_ALLOW_PLAINTEXT": "true", "GRPC_ALLOW_UNAUTHENTICATED": "true"}
"""Plaintext, unauthenticated gRPC between the services: for suites on loopback. Tests of
gRPC's own protection pass ``grpc_env={}`` and their TLS files and tokens instead."""


@dataclass
class Suite:
    ws_url: str
    http_url: str
    extra: dict[str, Any] = field(default_factory=dict)

    encoding: str = "json"
    transport: str = "ws"
    """``ws``, or ``sse``: the HTTP fallback (docs/transport.md)."""

    async def client(self, **kwargs: Any) -> Client:
        kwargs.setdefault("encoding", self.encoding)
        if self.transport == "sse":
            return await SseClient.connect(self.ws_url, **kwargs)
        return await Client.connect(self.ws_url, **kwargs)


OVER_BOTH = pytest.mark.parametrize("suite", ["ws", "sse"], indirect=True)
"""Run a test that takes ``suite`` over the WebSocket and over the HTTP fallback."""
MAKE_OVER_BOTH = pytest.mark.parametrize("make_suite", ["ws", "sse"], indirect=True)
"""The same for a test that takes ``make_suite``."""


def _transport(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "ws"))


async def start_in_process(
    stack: AsyncExitStack,
    *,
    database_url: str,
    redis_url: str | None = None,
    redis_prefix: str = "accord",
    edge_env: dict[str, str] | None = None,
    presence_env: dict[str, str] | None = None,
    sync_env: dict[str, str] | None = None,
    grpc_env: dict[str, str] | None = None,
) -> Suite:
    from accord.edge.app import serve as serve_edge
    from accord.edge.settings import Settings as EdgeSettings
    from accord.presence.app import serve as serve_presence
    from accord.presence.settings import Settings as PresenceSettings
    from accord.sync.app import serve as serve_sync
    from accord.sync.settings import Settings as SyncSettings

    grpc_env = UNPROTECTED_GRPC if grpc_env is None else grpc_env
    common = {"REDIS_PREFIX": redis_prefix, "METRICS_ADDR": "", **grpc_env}
    if redis_url:
        common["REDIS_URL"] = redis_url
    sync_port, presence_port = free_ports(2)
    sync = await stack.enter_async_context(
        serve_sync(
            SyncSettings.from_env(
                {
                    **common,
                    "SYNC_ADDR": f"127.0.0.1:{sync_port}",
                    "DATABASE_URL": database_url,
                    **(sync_env or {}),
                }
            )
        )
    )
    presence = await stack.enter_async_context(
        serve_presence(
            PresenceSettings.from_env(
                {**common, "PRESENCE_ADDR": f"127.0.0.1:{presence_port}", **(presence_env or {})}
            )
        )
    )
    env = {
        "WS_ADDR": "127.0.0.1:0",
        "SYNC_ADDR": f"127.0.0.1:{sync.port}",
        "PRESENCE_ADDR": f"127.0.0.1:{presence.port}",
        "JWT_SECRET": SECRET,
        **grpc_env,
        **(edge_env or {}),
    }
    edge = await stack.enter_async_context(serve_edge(EdgeSettings.from_env(env)))
    suite = Suite(f"ws://127.0.0.1:{edge.port}/ws", f"http://127.0.0.1:{edge.port}")
    suite.extra.update(edge=edge, sync=sync, presence=presence)
    await wait_ready(suite.http_url)
    return suite


async def wait_ready(http_url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{http_url}/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{http_url} never became ready")


@pytest.fixture
async def suite(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Suite]:
    """The embedded suite (SQLite, in-memory presence and bus), in this process; its clients
    use the WebSocket, or the transport ``OVER_BOTH`` parametrizes."""
    async with AsyncExitStack() as stack:
        suite = await start_in_process(stack, database_url=f"sqlite:///{tmp_path}/accord.db")
        suite.transport = _transport(request)
        yield suite


@pytest.fixture(params=["json-ws", "binary-ws", "json-sse"])
async def any_suite(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Suite]:
    """The embedded suite, with clients speaking JSON text or protobuf binary frames over
    the WebSocket, or JSON over the HTTP fallback."""
    async with AsyncExitStack() as stack:
        suite = await start_in_process(stack, database_url=f"sqlite:///{tmp_path}/accord.db")
        suite.encoding, suite.transport = request.param.split("-")
        yield suite


@pytest.fixture
async def make_suite(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Start a customised in-process suite: ``await make_suite(edge_env={...})``."""
    transport = _transport(request)
    async with AsyncExitStack() as stack:

        async def make(**kwargs: Any) -> Suite:
            kwargs.setdefault("database_url", f"sqlite:///{tmp_path}/accord.db")
            suite = await start_in_process(stack, **kwargs)
            suite.transport = transport
            return suite

        yield make


class DevProcess:
    """`accord dev` as a child process on free ports."""

    def __init__(self, env: dict[str, str], log_path: Path, args: tuple[str, ...] = ()) -> None:
        self.env = env
        self.log_path = log_path
        self.args = args
        """Arguments after ``accord dev`` (``--one-process``)."""
        self.proc: subprocess.Popen[bytes] | None = None
        port = env["WS_ADDR"].rsplit(":", 1)[1]
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        self.http_url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [ACCORD, "dev", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise

    def kill_group(self, timeout: float = 30.0) -> None:
        """SIGKILL ``accord dev`` and its children; return once every one of them is gone
        (a child in uninterruptible I/O dies late and holds its ports until then)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    os.killpg(self.proc.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.02)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def client(self) -> Client:
        return await Client.connect(self.ws_url)


def dev_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "JWT_", "ALLOW_", "GRPC_", "SERVICE_TOKEN"))
    }
    ws, sync, presence, sync_metrics, presence_metrics = free_ports(5)
    env.update(
        WS_ADDR=f"127.0.0.1:{ws}",
        SYNC_ADDR=f"127.0.0.1:{sync}",
        PRESENCE_ADDR=f"127.0.0.1:{presence}",
        SYNC_METRICS_ADDR=f"127.0.0.1:{sync_metrics}",
        PRESENCE_METRICS_ADDR=f"127.0.0.1:{presence_metrics}",
        DATABASE_URL=f"sqlite:///{tmp_path}/accord.db",
        JWT_SECRET=SECRET,
        LOG_LEVEL="info",
    )
    env.update(overrides)
    return env


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Callable[..., DevProcess]]:
    started: list[DevProcess] = []

    def make(*args: str, **overrides: str) -> DevProcess:
        process = DevProcess(
            dev_env(tmp_path, **overrides), tmp_path / f"dev-{len(started)}.log", args
        )
        started.append(process)
        return process

    yield make
    for process in started:
        process.kill_group()

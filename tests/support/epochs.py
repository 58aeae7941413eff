"""An in-process suite whose sync service a test can stop, renew and start again.

For the epoch tests: ``accord epoch renew`` (as docs/operations.md says: sync
stopped, renewed with the same ``DATABASE_URL``, started again) while the edge
and the clients stay up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.suite import UNPROTECTED_GRPC, Suite, wait_ready
from tests.support.wsclient import SECRET

ACCORD = str(Path(sys.executable).parent / "accord")
DEADLINE = 60.0


class EpochSuite:
    """Sync, presence and edge in this process; ``renew()`` restarts sync around a renew."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.sync_port = free_port()
        self.suite: Suite | None = None
        self._stack = AsyncExitStack()
        self._sync: AsyncExitStack | None = None

    async def __aenter__(self) -> Suite:
        from accord.edge.app import serve as serve_edge
        from accord.edge.settings import Settings as EdgeSettings
        from accord.presence.app import serve as serve_presence
        from accord.presence.settings import Settings as PresenceSettings

        await self.start_sync()
        presence = await self._stack.enter_async_context(
            serve_presence(
                PresenceSettings.from_env(
                    {
                        "PRESENCE_ADDR": f"127.0.0.1:{free_port()}",
                        "METRICS_ADDR": "",
                        **UNPROTECTED_GRPC,
                    }
                )
            )
        )
        env = {
            "WS_ADDR": "127.0.0.1:0",
            "SYNC_ADDR": f"127.0.0.1:{self.sync_port}",
            "PRESENCE_ADDR": f"127.0.0.1:{presence.port}",
            "JWT_SECRET": SECRET,
            **UNPROTECTED_GRPC,
        }
        edge = await self._stack.enter_async_context(serve_edge(EdgeSettings.from_env(env)))
        self.suite = Suite(f"ws://127.0.0.1:{edge.port}/ws", f"http://127.0.0.1:{edge.port}")
        self.suite.extra.update(edge=edge, epochs=self)
        await wait_ready(self.suite.http_url)
        return self.suite

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
        await self.stop_sync()

    async def start_sync(self) -> None:
        from accord.sync.app import serve as serve_sync
        from accord.sync.settings import Settings as SyncSettings

        settings = SyncSettings.from_env(
            {
                "SYNC_ADDR": f"127.0.0.1:{self.sync_port}",
                "DATABASE_URL": self.database_url,
                "METRICS_ADDR": "",
                **UNPROTECTED_GRPC,
            }
        )
        self._sync = AsyncExitStack()
        await self._sync.enter_async_context(serve_sync(settings))

    async def stop_sync(self) -> None:
        if self._sync is not None:
            stack, self._sync = self._sync, None
            await stack.aclose()

    @contextlib.asynccontextmanager
    async def stopped(self) -> AsyncIterator[None]:
        """Sync stopped for the block (e.g. to copy or restore an SQLite file)."""
        await self.stop_sync()
        try:
            yield
        finally:
            await self.start_sync()

    async def renew(self) -> str:
        """Stop sync, run ``accord epoch renew``, start sync again; the command's output."""
        async with self.stopped():
            return await self.run_renew()

    async def run_renew(self) -> str:
        """``accord epoch renew`` (sync must be stopped); its output."""
        env = {**os.environ, "DATABASE_URL": self.database_url}
        process = await asyncio.create_subprocess_exec(
            ACCORD,
            "epoch",
            "renew",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), DEADLINE)
        assert process.returncode == 0, out.decode()
        return out.decode()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: an SQLite file, or a PostgreSQL database (``database_url``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/accord.db"
    url: str = request.getfixturevalue("database_url")
    return url

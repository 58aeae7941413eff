"""A redis-server of a test's own, without persistence: a restart empties it.

Tests that restart Redis use this rather than the shared server, which other
tests (and developers) depend on.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support.ports import free_port

WAIT = 10.0


class PrivateRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )

    async def ready(self) -> None:
        """Wait until the server answers PING."""
        client = aioredis.from_url(self.url)
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    with contextlib.suppress(RedisConnectionError):
                        if await client.ping():
                            return
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=WAIT)
            self._process = None


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run `make test`, which installs it")
    server = PrivateRedis(free_port())
    server.start()
    await server.ready()
    try:
        yield server
    finally:
        server.stop()

"""Shared fixtures: real PostgreSQL and Redis, one clean database / namespace per test.

URLs come from TEST_DATABASE_URL / TEST_REDIS_URL. When one is not given and a
Docker engine is present, a testcontainers server is started for the session;
otherwise the local services are used (127.0.0.1:5432 database ``test`` and
127.0.0.1:6379), which ``make test`` starts or installs first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

# The first of Accord's modules, before the plugins below import hot ones: with
# ACCORD_PURE_PYTHON=1 it puts in place the finder that loads every accord.* module from its .py
# source even where a compiled one is installed (accord/common/native.py);
# tests/unit/test_compiled.py checks which of the two was loaded.
import accord.common  # noqa: F401
import pytest

from tests.support.ports import free_port

pytest_plugins = ["tests.support.suite", "tests.support.redis_server", "tests.support.idp"]

LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    yield LOCAL_DATABASE_URL


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    if _docker_available():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    yield LOCAL_REDIS_URL


@pytest.fixture
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import asyncpg

    name = f"accord_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(postgres_server_url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def redis_prefix() -> str:
    """A key and channel namespace no other test uses."""
    return f"accord-t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_url(redis_server_url: str, redis_prefix: str) -> AsyncIterator[str]:
    """The Redis URL; every key under this test's ``redis_prefix`` is deleted afterwards."""
    yield redis_server_url
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_server_url)
    try:
        async for key in client.scan_iter(match=f"{redis_prefix}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture
def unused_port() -> int:
    return free_port()

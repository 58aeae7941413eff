"""Start-up without gRPC protection or its waiver refused in one line; sync and presence
reaching Redis over mutual TLS (``rediss://`` with client certificates)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support.pki import Authority
from tests.support.ports import free_port, free_ports
from tests.support.wsclient import make_token

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("service", ["sync", "presence", "edge"])
def test_a_service_without_grpc_protection_or_permission_refuses_in_one_line(
    service: str, tmp_path: Path
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GRPC_", "SERVICE_TOKEN", "DATABASE_"))
    }
    sync_port, presence_port, ws_port = free_ports(3)
    env.update(
        SYNC_ADDR=f"127.0.0.1:{sync_port}",
        PRESENCE_ADDR=f"127.0.0.1:{presence_port}",
        WS_ADDR=f"127.0.0.1:{ws_port}",
        METRICS_ADDR="",
        DATABASE_URL=f"sqlite:///{tmp_path}/accord.db",
        ALLOW_ANONYMOUS="true",
    )
    done = subprocess.run(
        [sys.executable, "-m", f"accord.{service}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: gRPC"), lines
    assert "GRPC_ALLOW_PLAINTEXT=true" in lines[0]


@pytest.fixture
async def tls_redis(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """A redis-server of this test's own on a TLS port only, requiring client certificates:
    (a rediss:// URL with the client's files, the plaintext URL of the same port)."""
    ca = Authority(tmp_path / "redis-pki", "redis-ca")
    server, client = ca.issue("redis"), ca.issue("redis-client", server=False)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *[
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            server.cert_file,
            "--tls-key-file",
            server.key_file,
            "--tls-ca-cert-file",
            ca.ca_file,
            "--tls-auth-clients",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=asyncio.subprocess.DEVNULL,
    )
    query = urlencode(
        {
            "ssl_ca_certs": ca.ca_file,
            "ssl_certfile": client.cert_file,
            "ssl_keyfile": client.key_file,
        }
    )
    url = f"rediss://127.0.0.1:{port}/0?{query}"
    try:
        async with asyncio.timeout(10):
            while True:
                probe = aioredis.from_url(url)
                try:
                    if await probe.ping():
                        break
                except (RedisConnectionError, OSError):
                    await asyncio.sleep(0.05)
                finally:
                    await probe.aclose()
        yield url, f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def test_sync_and_presence_reach_redis_over_mutual_tls(
    make_suite: Any, tls_redis: tuple[str, str]
) -> None:
    url, plaintext = tls_redis
    suite = await make_suite(redis_url=url, redis_prefix="tls")
    async with await suite.client() as alice, await suite.client() as bob:
        await alice.hello(make_token("alice"), client_id="c-a")
        await bob.hello(make_token("bob"), client_id="c-b")
        await alice.subscribe("room-redis-tls", presence={"name": "alice"})
        await bob.subscribe("room-redis-tls")
        change = {"client_seq": 1, "collection": "todos", "key": "t-1"}
        await alice.push("room-redis-tls", [{**change, "op": {"kind": "set", "fields": {"a": 1}}}])
        seen = await bob.expect(lambda m: m.get("type") == "changes")
        assert seen["changes"][0]["key"] == "t-1"
    # The same port refuses a plaintext client: the bus and presence did speak TLS.
    client = aioredis.from_url(plaintext, socket_connect_timeout=2, socket_timeout=2)
    with pytest.raises((RedisConnectionError, OSError, TimeoutError)):
        await client.ping()
    await client.aclose()

"""Sync against a PostgreSQL that requires TLS: ``DATABASE_URL``'s ``sslmode`` as documented.

The server is a private one (``tests.support.pg_tls``) that rejects every plaintext
connection; docs/operations.md (PostgreSQL and Redis) points here.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1.sync_pb2_grpc import SyncStub
from accord.common.grpcutil import create_channel
from accord.sync.app import serve
from accord.sync.errors import Unavailable
from accord.sync.settings import PostgresTarget, Settings

from tests.integration.sync.sync_helpers import push, set_change
from tests.support.pg_tls import UNNAMED_HOST, TlsPostgres, Unsupported, find_tools, tls_postgres
from tests.support.pki import Authority
from tests.support.suite import UNPROTECTED_GRPC

pytestmark = pytest.mark.integration

DEADLINE = 10.0
START_DEADLINE = 30.0
"""Longer than sync's own connect timeout (10 s): a refused start must end before this."""

SYNC_CONNECTIONS = """
SELECT s.ssl, s.version
FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
WHERE a.datname = $1 AND a.pid <> pg_backend_pid()
"""


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsPostgres]:
    try:
        tools = find_tools()
    except Unsupported as reason:  # a missing tool fails, saying how to get it (CONTRIBUTING.md)
        pytest.fail(str(reason))
    with tls_postgres(tools) as server:
        yield server


@pytest.fixture
async def tls_database(tls_server: TlsPostgres) -> AsyncIterator[str]:
    """A fresh database on the TLS server for one test, dropped afterwards."""
    name = f"accord_tls_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(tls_server.verified_url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield name
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def sync_settings(database_url: str) -> Settings:
    """Settings as sync builds them from its environment, so DATABASE_URL takes its real path."""
    settings = Settings.from_env(
        {
            **UNPROTECTED_GRPC,
            "SYNC_ADDR": "127.0.0.1:0",
            "METRICS_ADDR": "",
            "DATABASE_URL": database_url,
        }
    )
    assert settings.database == PostgresTarget(database_url)
    return settings


async def sync_connections(server: TlsPostgres, database: str) -> list[tuple[bool, str]]:
    """``(ssl, TLS version)`` of every session on ``database``, read over a verified connection."""
    conn = await asyncpg.connect(server.verified_url())
    try:
        return [(r["ssl"], r["version"]) for r in await conn.fetch(SYNC_CONNECTIONS, database)]
    finally:
        await conn.close()


async def push_and_read_back(port: int, room: str) -> None:
    async with create_channel(f"127.0.0.1:{port}") as channel:
        stub = SyncStub(channel)
        stream = stub.Subscribe()
        await stream.write(pb.SubscribeRequest(add=[room]))
        assert (await asyncio.wait_for(stream.read(), DEADLINE)).changes.room == room
        ack = await stub.Push(push(room, set_change(1, "a", x=1)), timeout=DEADLINE)
        assert [(r.seq, r.status) for r in ack.results] == [(1, pb.CHANGE_STATUS_APPLIED)]
        live = await asyncio.wait_for(stream.read(), DEADLINE)
        assert [c.seq for c in live.changes.changes] == [1]
        stream.cancel()
        pulled = [r async for r in stub.Pull(pb.PullRequest(room=room), timeout=DEADLINE)]
        assert pulled[0].head == 1
        assert [r.value_json for r in pulled[1].snapshot.records] == ['{"x":1}']


def assert_encrypted(sessions: list[tuple[bool, str]]) -> None:
    assert sessions, "sync holds no connection to its database"
    assert all(ssl and version.startswith("TLSv1.") for ssl, version in sessions), sessions


async def test_verify_full_serves_pushes_over_encrypted_connections(
    tls_server: TlsPostgres, tls_database: str
) -> None:
    url = tls_server.verified_url(tls_database)
    async with serve(sync_settings(url), grace=1.0) as running:
        await push_and_read_back(running.port, "tls-room")
        assert_encrypted(await sync_connections(tls_server, tls_database))


async def test_require_without_a_root_certificate_encrypts_but_does_not_verify(
    tls_server: TlsPostgres, tls_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncpg, like libpq, verifies under sslmode=require when ~/.postgresql/root.crt exists:
    # a HOME without one (and no PGSSLROOTCERT) is the "no root certificate" case.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    url = tls_server.url(tls_database, sslmode="require")
    async with serve(sync_settings(url), grace=1.0) as running:
        await push_and_read_back(running.port, "required-room")
        assert_encrypted(await sync_connections(tls_server, tls_database))


async def test_verify_full_refuses_a_server_certificate_from_another_ca(
    tls_server: TlsPostgres, tls_database: str, tmp_path: Path
) -> None:
    unrelated = Authority(tmp_path, name="unrelated-ca")
    url = tls_server.url(tls_database, sslmode="verify-full", sslrootcert=unrelated.ca_file)
    async with asyncio.timeout(START_DEADLINE):
        with pytest.raises(Unavailable, match=r"PostgreSQL.*certificate verify failed"):
            async with serve(sync_settings(url), grace=1.0):
                pass
    assert await sync_connections(tls_server, tls_database) == []


async def test_a_root_certificate_file_that_does_not_exist_is_named(
    tls_server: TlsPostgres, tls_database: str, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-ca.crt")
    url = tls_server.url(tls_database, sslmode="verify-full", sslrootcert=missing)
    async with asyncio.timeout(START_DEADLINE):
        with pytest.raises(Unavailable) as refused:
            async with serve(sync_settings(url), grace=1.0):
                pass
    assert f"sslrootcert={missing}, which does not exist" in str(refused.value)


async def test_verify_full_refuses_a_host_name_the_certificate_does_not_name(
    tls_server: TlsPostgres, tls_database: str
) -> None:
    params = {"sslrootcert": tls_server.ca_file}
    # The same server and CA: verify-ca (the chain only) connects, so the refusal is the name's.
    verify_ca = tls_server.url(tls_database, host=UNNAMED_HOST, sslmode="verify-ca", **params)
    async with serve(sync_settings(verify_ca), grace=1.0):
        assert_encrypted(await sync_connections(tls_server, tls_database))
    verify_full = tls_server.url(tls_database, host=UNNAMED_HOST, sslmode="verify-full", **params)
    async with asyncio.timeout(START_DEADLINE):
        with pytest.raises(Unavailable, match=r"certificate verify failed: IP address mismatch"):
            async with serve(sync_settings(verify_full), grace=1.0):
                pass


async def test_plaintext_is_refused_and_sync_exits_with_one_clear_line(
    tls_server: TlsPostgres, tls_database: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        UNPROTECTED_GRPC,
        SYNC_ADDR="127.0.0.1:0",
        METRICS_ADDR="",
        DATABASE_URL=tls_server.url(tls_database, sslmode="disable"),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "accord.sync", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), START_DEADLINE)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = stderr.decode()
    assert process.returncode == 1, text
    assert "Traceback" not in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("sync: cannot start: cannot connect to PostgreSQL: "), text
    assert f'database "{tls_database}", no encryption' in last, text

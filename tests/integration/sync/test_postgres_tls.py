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
from accord.sync.schema import MIGRATIONS
from accord.sync.settings import PostgresTarget, Settings

from tests.integration.sync.sync_helpers import push, set_change
from tests.support.pg_tls import (
    CLIENT_CERT_USER,
    UNNAMED_HOST,
    TlsPostgres,
    Unsupported,
    find_tools,
    tls_postgres,
)
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


async def test_a_client_certificate_authenticates_sync_where_the_server_asks_for_one(
    tls_server: TlsPostgres, tls_database: str, tmp_path: Path
) -> None:
    # The server takes CLIENT_CERT_USER only with a certificate from its CA naming the user.
    admin = await asyncpg.connect(tls_server.verified_url())
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", CLIENT_CERT_USER):
            await admin.execute(f"CREATE ROLE {CLIENT_CERT_USER} LOGIN SUPERUSER")
    finally:
        await admin.close()
    client = tls_server.authority.issue(CLIENT_CERT_USER, server=False)
    stranger = Authority(tmp_path, name="stranger-ca").issue(CLIENT_CERT_USER, server=False)
    other_user = tls_server.authority.issue("somebody-else", server=False)

    def url(**params: str) -> str:
        return tls_server.url(
            tls_database,
            user=CLIENT_CERT_USER,
            sslmode="verify-full",
            sslrootcert=tls_server.ca_file,
            **params,
        )

    async with serve(
        sync_settings(url(sslcert=client.cert_file, sslkey=client.key_file)), grace=1.0
    ) as running:
        await push_and_read_back(running.port, "client-cert-room")
        assert_encrypted(await sync_connections(tls_server, tls_database))
    # Without one, with one from another CA, or naming another user: refused at start, why.
    for refused, reason in [
        (url(), "connection requires a valid client certificate"),
        (
            url(sslcert=stranger.cert_file, sslkey=stranger.key_file),
            f"does it trust the client certificate sslcert={stranger.cert_file}?",
        ),
        (
            url(sslcert=other_user.cert_file, sslkey=other_user.key_file),
            f'certificate authentication failed for user "{CLIENT_CERT_USER}"',
        ),
    ]:
        async with asyncio.timeout(START_DEADLINE):
            with pytest.raises(Unavailable) as error:
                async with serve(sync_settings(refused), grace=1.0):
                    pass
        assert str(error.value).startswith("cannot connect to PostgreSQL: ")
        assert reason in str(error.value)


async def test_migrate_runs_over_a_verified_connection(
    tls_server: TlsPostgres, tls_database: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DATABASE_URL"] = tls_server.verified_url(tls_database)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "accord.sync", "migrate", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), START_DEADLINE)
    assert process.returncode == 0, stderr.decode()
    conn = await asyncpg.connect(tls_server.verified_url(tls_database))
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()
    assert versions == [version for version, _ in MIGRATIONS]

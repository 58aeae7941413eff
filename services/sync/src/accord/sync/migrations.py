"""PostgreSQL schema migrations, applied at start-up under an advisory lock.

Replicas starting together serialize on ``pg_advisory_lock``; each applies only
the versions missing from ``schema_migrations``, one transaction per version.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import parse_qsl, urlsplit

import asyncpg
from accord.sync.errors import Unavailable
from accord.sync.schema import MIGRATIONS
from accord.sync.settings import DatabaseTarget, SqliteTarget, parse_database_url
from accord.sync.store_sqlite import SqliteStore

log = logging.getLogger(__name__)

# An arbitrary constant naming this service's migration lock.
LOCK_ID = 0x4143_4F52_4453_594E

CONNECT_TIMEOUT = 10.0


async def migrate_connection(conn: asyncpg.Connection) -> list[int]:
    """Apply missing migrations on ``conn``; returns the versions applied."""
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in MIGRATIONS:
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
            log.info("postgresql schema migrated to version %d", version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_ID)
    return applied


async def migrate(database_url: str) -> list[int]:
    """Bring the database at ``database_url`` to the current schema."""
    return await migrate_target(parse_database_url(database_url))


_TLS_FILES = ("sslrootcert", "sslcert", "sslkey")


def connect_failure(url: str, error: BaseException) -> Unavailable:
    """Why PostgreSQL could not be reached, as one line: a TLS file the URL names that does
    not exist is named (asyncpg's error says only "No such file or directory"), and so is
    the client certificate when the server hung up while the connection was set up (as it
    does in the TLS handshake with a certificate from a CA it does not trust)."""
    query = dict(parse_qsl(urlsplit(url).query))
    if isinstance(error, asyncpg.ConnectionDoesNotExistError) and query.get("sslcert"):
        return Unavailable(
            "cannot connect to PostgreSQL: the server closed the connection while it was "
            f"set up: does it trust the client certificate sslcert={query['sslcert']}? ({error})"
        )
    if isinstance(error, FileNotFoundError) and not error.filename:
        missing = [
            f"{name}={query[name]}"
            for name in _TLS_FILES
            if query.get(name) and not os.path.exists(query[name])
        ]
        if missing:
            verb = "does" if len(missing) == 1 else "do"
            return Unavailable(
                f"cannot connect to PostgreSQL: DATABASE_URL names {', '.join(missing)}, "
                f"which {verb} not exist"
            )
    return Unavailable(f"cannot connect to PostgreSQL: {error}")


async def migrate_target(target: DatabaseTarget) -> list[int]:
    """Bring ``target`` to the current schema; returns the PostgreSQL versions applied."""
    if isinstance(target, SqliteTarget):
        async with SqliteStore.open(target.path):
            return []
    try:
        conn = await asyncpg.connect(target.url, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise connect_failure(target.url, error) from error
    try:
        return await migrate_connection(conn)
    finally:
        await conn.close()

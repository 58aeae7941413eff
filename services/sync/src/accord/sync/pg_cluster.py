"""The PostgreSQL cluster's identity, one part of every room's epoch (``accord.sync.epoch``)."""

from __future__ import annotations

import logging

import asyncpg

log = logging.getLogger(__name__)


class Cluster:
    """The PostgreSQL cluster's identity, read on each new connection: its system
    identifier (a restore into another cluster changes it) and its current timeline (a
    point-in-time recovery or a promoted standby starts a new one). A part the role may
    not read is left empty."""

    QUERIES = (
        ("SELECT system_identifier::text FROM pg_control_system()",),
        (
            "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)",
            "SELECT lpad(to_hex(timeline_id), 8, '0') FROM pg_control_checkpoint()",
        ),
    )

    def __init__(self) -> None:
        self.value = ""

    async def read(self, conn: asyncpg.Connection) -> None:
        parts = []
        for choices in self.QUERIES:
            found = ""
            for query in choices:
                try:
                    found = str(await conn.fetchval(query) or "")
                except asyncpg.PostgresError as error:
                    log.debug("cluster identity: %s: %s", query, error)
                    continue
                break
            parts.append(found)
        self.value = ".".join(parts)

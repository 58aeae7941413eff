"""The PostgreSQL store's SQL text and row helpers (moved from ``store_postgres``, unchanged)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import asyncpg
from accord.sync.errors import Unavailable
from accord.sync.model import RoomClient, RoomRecord, RoomWrite
from accord.sync.outbox_postgres import outbox_cte
from accord.sync.store_rows import (
    CHANGE_COLUMNS,
    CONFLICT_COLUMNS,
    change_values,
    conflict_values,
    record_values,
)

ACQUIRE_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
_LOST = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except _LOST as error:
        raise Unavailable(f"database unavailable: {error}") from error


def _save_sql(checked: bool, conflicts: bool, outbox: bool = False, based: bool = True) -> str:
    """One statement (data-modifying CTEs, each batched with ``unnest``) that appends the
    changes ($1-$10), upserts the records ($11-$16), raises the heads ($17, $18), the
    clients' high-water marks ($19-$22) and, with ``conflicts``, records the conflicts
    ($23-$35). A group without conflicts (the usual one) leaves those 13 arrays out:
    asyncpg encodes every array parameter in Python, and for a small group that is most
    of what the statement costs the client.

    ``checked`` (the optimistic save): each write happens only if every written room's
    head is still ``$W`` ($36, or $23 without conflicts; -1: the room did not exist, and
    is created), checked under the rooms' row locks taken in name order, and the
    database's incarnation is still ``$I`` ($37, or $24; NULL: not checked); the
    statement returns whether it wrote.

    ``outbox``: the group owes webhook endpoints changes; the six parameters after all
    the others append its outbox rows (``accord.sync.outbox_postgres.outbox_cte``).

    ``based``: a written room may have been compacted (its floor above 0), so a record
    changed for the first time since the floor passed it keeps its state as of the floor
    (``accord.sync.records``). Without it (no room of the group known to be compacted:
    the usual case, and a CTE less for PostgreSQL to run), the checked statement writes
    nothing if a room's floor is above 0 after all, and returns ``floored`` true besides
    ``ok``; the unchecked one is used only where the locked rows said so.
    """
    was, incarnation = ("$36", "$37") if conflicts else ("$23", "$24")
    only = "\n    WHERE (SELECT ok FROM ok)" if checked else ""
    also = " AND (SELECT ok FROM ok)" if checked else ""
    parts = []
    unfloored = (
        ""
        if based
        else "\n        AND NOT EXISTS (SELECT 1 FROM locked WHERE floor > 0 AND bases = 1)"
    )
    if checked:
        parts += [
            """locked AS (
    SELECT room, head, floor, bases FROM rooms WHERE room = ANY($17::text[])
    ORDER BY room FOR UPDATE
)""",
            f"""ok AS (
    SELECT count(*) = cardinality($17::text[]) AND ({incarnation}::text IS NULL
        OR {incarnation}::text = (SELECT value FROM incarnation WHERE id = 1)){unfloored} AS ok
    FROM unnest($17::text[], {was}::bigint[]) AS w(room, was) LEFT JOIN locked l USING (room)
    WHERE l.head = w.was OR (w.was = -1 AND l.room IS NULL)
)""",
        ]
    # A record changed for the first time since its room's floor passed it keeps its state
    # as of the floor (``accord.sync.records``). Read from the statement's snapshot, that
    # is the row before ``stored`` changes it; the floor is the locked row's (the latest:
    # a compaction committed meanwhile counts), or, locked since the transaction began,
    # the room's own.
    floors = (
        "locked f ON f.room = k.room"
        if checked
        # Kept a lookup by key by its LIMIT (see _LOAD).
        else "LATERAL (SELECT floor, bases FROM rooms WHERE room = k.room LIMIT 1) AS f ON true"
    )
    if based:
        parts.append(
            f"""based AS (
    INSERT INTO record_bases (room, collection, key, state)
    SELECT r.room, r.collection, r.key, r.state
    FROM unnest($11::text[], $12::text[], $13::text[]) AS k(room, collection, key)
    JOIN {floors} AND f.floor > 0 AND f.bases = 1,
    LATERAL (SELECT r.room, r.collection, r.key, r.state, r.seq FROM records r
             WHERE r.room = k.room AND r.collection = k.collection AND r.key = k.key
             LIMIT 1) AS r
    WHERE r.seq <= f.floor{also}
    ON CONFLICT (room, collection, key) DO UPDATE SET state = EXCLUDED.state
)"""
        )
    parts += [
        f"""logged AS (
    INSERT INTO changes (room, {CHANGE_COLUMNS}) SELECT * FROM unnest(
        $1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
        $8::bigint[], $9::text[], $10::text[]){only}
)""",
        f"""stored AS (
    INSERT INTO records (room, collection, key, state, value, seq)
    SELECT * FROM unnest(
        $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::bigint[]){only}
    ON CONFLICT (room, collection, key) DO UPDATE SET
        state = EXCLUDED.state, value = EXCLUDED.value, seq = EXCLUDED.seq
)""",
        # ``rooms.room = ANY($17)`` as well as the join: without it the planner's generic
        # plan (an unnest is 10 rows to it) hashed the unnest and scanned every room.
        f"""headed AS (
    UPDATE rooms SET head = h.head
    FROM unnest($17::text[], $18::bigint[]) AS h(room, head)
    WHERE rooms.room = ANY($17::text[]) AND rooms.room = h.room{also}
)""",
    ]
    if checked:
        parts.append(
            f"""created AS (
    INSERT INTO rooms (room, head, epoch)
    SELECT h.room, h.head, random()::text
    FROM unnest($17::text[], $18::bigint[], {was}::bigint[]) AS h(room, head, was)
    WHERE h.was = -1 AND (SELECT ok FROM ok)
)"""
        )
    parts.append(
        f"""marked AS (
    INSERT INTO clients (room, user_id, client_id, high_water)
    SELECT * FROM unnest($19::text[], $20::text[], $21::text[], $22::bigint[]){only}
    ON CONFLICT (room, user_id, client_id) DO UPDATE SET
        high_water = GREATEST(clients.high_water, EXCLUDED.high_water)
)"""
    )
    if conflicts:
        parts.append(
            f"""noted AS (
    INSERT INTO conflicts (room, {CONFLICT_COLUMNS}) SELECT * FROM unnest(
        $23::text[], $24::bigint[], $25::text[], $26::text[], $27::text[], $28::text[],
        $29::text[], $30::bigint[], $31::bigint[], $32::bigint[], $33::text[], $34::text[],
        $35::bigint[]){only}
    ON CONFLICT DO NOTHING
)"""
        )
    if outbox:
        parts.append(outbox_cte((35 if conflicts else 22) + (2 if checked else 0) + 1, only))
    floored = "(SELECT coalesce(bool_or(floor > 0 AND bases = 1), false) FROM locked)"
    answer = f"\nSELECT ok, {floored} AS floored FROM ok" if checked else "\nSELECT 1"
    return "WITH " + ",\n".join(parts) + answer


_SAVE = {
    (checked, conflicts, outbox, based): _save_sql(checked, conflicts, outbox, based)
    for checked in (False, True)
    for conflicts in (False, True)
    for outbox in (False, True)
    for based in (False, True)
}
"""The save statement by (checked, with conflicts, with outbox rows, keeping record bases)."""


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Released connections are handed on as they are: the store leaves no session state
    behind (no LISTEN, cursors or settings; the migrations' advisory lock is released
    explicitly), so asyncpg's reset query would be a round trip per transaction for nothing."""


# Each key looked up by itself (a LATERAL subquery, kept one by its LIMIT): as a plain join,
# the generic plan of the prepared statement (an unnest is 10 rows to it) hashed the keys and
# scanned every client and record of the database.
_LOAD = """
SELECT 'm' AS kind, c.room, c.user_id AS a, c.client_id AS b, c.high_water AS mark,
       NULL::text AS state
FROM unnest($1::text[], $2::text[], $3::text[]) AS k(room, user_id, client_id),
LATERAL (SELECT c.room, c.user_id, c.client_id, c.high_water FROM clients c
         WHERE c.room = k.room AND c.user_id = k.user_id AND c.client_id = k.client_id
         LIMIT 1) AS c
UNION ALL
SELECT 's', r.room, r.collection, r.key, NULL, r.state
FROM unnest($4::text[], $5::text[], $6::text[]) AS k(room, collection, key),
LATERAL (SELECT r.room, r.collection, r.key, r.state FROM records r
         WHERE r.room = k.room AND r.collection = k.collection AND r.key = k.key
         LIMIT 1) AS r
"""

# The optimistic load: the rooms' heads too (kind 'h') and the database's incarnation
# ('i'), all as of one snapshot.
_LOAD_WITH_HEADS = (
    _LOAD
    + """UNION ALL
SELECT 'h', room, NULL, NULL, head, NULL FROM rooms WHERE room = ANY($7::text[])
UNION ALL
SELECT 'i', NULL, NULL, NULL, NULL, value FROM incarnation WHERE id = 1
"""
)

_INCARNATION = "(SELECT value FROM incarnation WHERE id = 1)"

_ROOM_HEADS = f"""
SELECT room, head, epoch FROM rooms WHERE room = ANY($1::text[])
UNION ALL
SELECT NULL, NULL, {_INCARNATION}
"""


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


def _save_args(writes: Sequence[RoomWrite]) -> tuple[list[tuple[str, int]], bool, list[Any]]:
    """The rooms' new heads, whether there are conflicts, and the column arrays of the
    save statement ($1-$22, and $23-$35 when there are conflicts)."""
    heads = [(w.room, w.changes[-1].seq) for w in writes if w.changes]
    columns: list[Any] = [
        *_columns([change_values(w.room, c) for w in writes for c in w.changes], 10),
        *_columns([record_values(w.room, r) for w in writes for r in w.records], 6),
        *_columns(heads, 2),
        *_columns([(w.room, *m) for w in writes for m in w.marks], 4),
    ]
    conflicts = [conflict_values(w.room, c) for w in writes for c in w.conflicts]
    if not conflicts:
        return heads, False, columns
    return heads, True, columns + _columns(conflicts, 13)


def _load_rows(rows: Sequence[Any]) -> tuple[dict[RoomClient, int], dict[RoomRecord, str]]:
    marks: dict[RoomClient, int] = {}
    states: dict[RoomRecord, str] = {}
    for r in rows:
        if r["kind"] == "m":
            marks[(r["room"], r["a"], r["b"])] = int(r["mark"])
        elif r["kind"] == "s":
            states[(r["room"], r["a"], r["b"])] = r["state"]
    return marks, states


async def _cursor_floor(conn: asyncpg.Connection, room: str, extensions: Sequence[str]) -> int:
    rows = await conn.fetch(
        "SELECT extension, seq FROM extension_cursors WHERE room = $1 AND extension = ANY($2)",
        room,
        list(extensions),
    )
    found = {r["extension"]: int(r["seq"]) for r in rows}
    return min((found.get(name, 0) for name in extensions), default=0)

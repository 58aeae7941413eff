"""The webhook deliverer's poll with a backlog: time per ``lease`` call.

    python -m bench.outbox_lease [--rows 200000] [--rooms 1000] [--polls 5] [--limit 8]
                                 [--sqlite]

Fills a fresh database (PostgreSQL ``accord_bench_outbox``, or with ``--sqlite`` a file in a
temporary directory; migrated by the sync store) with ``--rows`` outbox rows for one endpoint
over ``--rooms`` rooms, as a receiver that is down leaves them, and times the store's
``outbox().lease`` (the statement every replica runs each ``WEBHOOK_POLL_INTERVAL``; on
SQLite it holds the store's one writer), giving each lease back between polls so that every
poll sees the same backlog. Prints milliseconds per poll and how many heads each took.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from accord.sync.app import open_store
from accord.sync.settings import Settings, parse_database_url

from bench.systems import fresh_database

DATABASE = "accord_bench_outbox"
FILL_POSTGRES = (
    "INSERT INTO webhook_outbox (endpoint, room, first_seq, last_seq, changes, created) "
    "SELECT 'app', 'room' || (n % $2::int), n, n, '[]', 0 FROM generate_series(1, $1::int) AS n"
)
FILL_SQLITE = (
    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) "
    "INSERT INTO webhook_outbox (endpoint, room, first_seq, last_seq, changes, created) "
    "SELECT 'app', 'room' || (n % ?), n, n, '[]', 0 FROM s"
)
GIVE_BACK = (
    "UPDATE webhook_outbox SET attempts = 0, lease = NULL, leased_until = 0 WHERE lease = 'bench'"
)


async def polls(url: str, args: argparse.Namespace) -> None:
    """Open the store (which migrates it), fill the outbox, time the leases."""
    async with open_store(Settings(database=parse_database_url(url))) as store:
        side: sqlite3.Connection | None = None
        conn: asyncpg.Connection | None = None
        if args.sqlite:
            side = sqlite3.connect(urlsplit(url).path[1:], isolation_level=None)
            side.execute(FILL_SQLITE, (args.rows, args.rooms))
        else:
            conn = await asyncpg.connect(url)
            await conn.execute(FILL_POSTGRES, args.rows, args.rooms)
            await conn.execute("ANALYZE webhook_outbox")
        outbox = store.outbox()
        try:
            for poll in range(args.polls):
                started = time.perf_counter()
                heads = await outbox.lease({"app": 10_000}, 1_000, args.limit, "bench")
                took = (time.perf_counter() - started) * 1000
                if side is not None:
                    side.execute(GIVE_BACK)
                if conn is not None:
                    await conn.execute(GIVE_BACK)
                print(f"poll {poll + 1}: {took:.1f} ms, {len(heads)} heads leased")
        finally:
            if side is not None:
                side.close()
            if conn is not None:
                await conn.close()


async def main(args: argparse.Namespace) -> None:
    if args.sqlite:
        with tempfile.TemporaryDirectory() as scratch:
            await polls(f"sqlite:///{Path(scratch) / 'outbox.db'}", args)
    else:
        await polls(await fresh_database(DATABASE), args)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="outbox rows queued")
    ap.add_argument("--rooms", type=int, default=1000, help="rooms they are spread over")
    ap.add_argument("--polls", type=int, default=5, help="lease calls timed")
    ap.add_argument("--limit", type=int, default=8, help="heads per lease (free deliveries)")
    ap.add_argument("--sqlite", action="store_true", help="the SQLite store, not PostgreSQL")
    asyncio.run(main(ap.parse_args()))

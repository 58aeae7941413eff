"""The webhook deliverer's poll on PostgreSQL with a backlog: time per ``lease`` call.

    python -m bench.outbox_lease [--rows 200000] [--rooms 1000] [--polls 5] [--limit 8]

Fills a fresh database (``accord_bench_outbox``, migrated by the sync store) with
``--rows`` outbox rows for one endpoint over ``--rooms`` rooms, as a receiver that is down
leaves them, and times ``PostgresOutbox.lease`` (the statement every replica runs each
``WEBHOOK_POLL_INTERVAL``), giving each lease back between polls so that every poll sees the
same backlog. Prints milliseconds per poll and how many heads each took.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from accord.sync.app import open_store
from accord.sync.settings import Settings, parse_database_url

from bench.systems import PG_URL

DATABASE = "accord_bench_outbox"


async def main(args: argparse.Namespace) -> None:
    parts = urlsplit(PG_URL)
    url = urlunsplit(parts._replace(path=f"/{DATABASE}"))
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await admin.close()
    async with open_store(Settings(database=parse_database_url(url))) as store:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO webhook_outbox (endpoint, room, first_seq, last_seq, changes, "
                "created) SELECT 'app', 'room' || (n % $2::int), n, n, '[]', 0 "
                "FROM generate_series(1, $1::int) AS n",
                args.rows,
                args.rooms,
            )
            await conn.execute("ANALYZE webhook_outbox")
            outbox = store.outbox()
            for poll in range(args.polls):
                started = time.perf_counter()
                heads = await outbox.lease({"app": 10_000}, 1_000, args.limit, "bench")
                took = (time.perf_counter() - started) * 1000
                await conn.execute(
                    "UPDATE webhook_outbox SET attempts = 0, lease = NULL, leased_until = 0 "
                    "WHERE lease = 'bench'"
                )
                print(f"poll {poll + 1}: {took:.1f} ms, {len(heads)} heads leased")
        finally:
            await conn.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="outbox rows queued")
    ap.add_argument("--rooms", type=int, default=1000, help="rooms they are spread over")
    ap.add_argument("--polls", type=int, default=5, help="lease calls timed")
    ap.add_argument("--limit", type=int, default=8, help="heads per lease (free deliveries)")
    asyncio.run(main(ap.parse_args()))

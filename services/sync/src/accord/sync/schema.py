"""The versioned schema, shared by both stores (their SQL dialects agree on it).

Each entry is applied once, in order; a store records the versions it has
applied. Only append new versions: never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE rooms (
            room TEXT PRIMARY KEY,
            head BIGINT NOT NULL
        );
        CREATE TABLE changes (
            room TEXT NOT NULL,
            seq BIGINT NOT NULL,
            user_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            client_seq BIGINT NOT NULL,
            collection TEXT NOT NULL,
            key TEXT NOT NULL,
            ts BIGINT NOT NULL,
            op TEXT NOT NULL,
            patch TEXT NOT NULL,
            PRIMARY KEY (room, seq),
            UNIQUE (room, user_id, client_id, client_seq)
        );
        CREATE TABLE records (
            room TEXT NOT NULL,
            collection TEXT NOT NULL,
            key TEXT NOT NULL,
            state TEXT NOT NULL,
            value TEXT,
            seq BIGINT NOT NULL,
            PRIMARY KEY (room, collection, key)
        );
        CREATE TABLE clients (
            room TEXT NOT NULL,
            user_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            high_water BIGINT NOT NULL,
            PRIMARY KEY (room, user_id, client_id)
        );
        """,
    ),
    (
        2,
        """
        ALTER TABLE rooms ADD COLUMN floor BIGINT NOT NULL DEFAULT 0;
        CREATE TABLE conflicts (
            room TEXT NOT NULL,
            seq BIGINT NOT NULL,
            field TEXT NOT NULL,
            collection TEXT NOT NULL,
            key TEXT NOT NULL,
            user_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            client_seq BIGINT NOT NULL,
            ts BIGINT NOT NULL,
            winner_ts BIGINT NOT NULL,
            winner_client_id TEXT NOT NULL,
            winner_user_id TEXT NOT NULL,
            winner_client_seq BIGINT NOT NULL,
            PRIMARY KEY (room, seq, field)
        );
        """,
    ),
    (
        3,
        # Epochs (accord.sync.epoch): each room's random part, created with its row
        # (the rooms there already get theirs now), and the database's incarnation.
        # random() is in both dialects (an integer in SQLite, a float in PostgreSQL).
        """
        ALTER TABLE rooms ADD COLUMN epoch TEXT NOT NULL DEFAULT '';
        UPDATE rooms SET epoch = CAST(random() AS TEXT);
        CREATE TABLE incarnation (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            value TEXT NOT NULL
        );
        INSERT INTO incarnation (id, value) VALUES (1, CAST(random() AS TEXT));
        """,
    ),
    (
        4,
        # Webhooks (accord.sync.outbox): one row per (endpoint, room, commit group), written
        # in the commit's transaction and carrying its changes as delivered (so compaction
        # never waits on a receiver). The head row of each (endpoint, room) also holds the
        # delivery state of the batch it starts: its webhook-id, the last first_seq it
        # takes in, its attempts, when it is due and who leases it until when. Times are
        # Unix milliseconds. A parked endpoint has a row in webhook_parked.
        """
        CREATE TABLE webhook_outbox (
            endpoint TEXT NOT NULL,
            room TEXT NOT NULL,
            first_seq BIGINT NOT NULL,
            last_seq BIGINT NOT NULL,
            changes TEXT NOT NULL,
            created BIGINT NOT NULL,
            message_id TEXT,
            batch_until BIGINT,
            attempts INTEGER NOT NULL DEFAULT 0,
            due BIGINT NOT NULL DEFAULT 0,
            leased_until BIGINT NOT NULL DEFAULT 0,
            lease TEXT,
            last_error TEXT,
            PRIMARY KEY (endpoint, room, first_seq)
        );
        CREATE TABLE webhook_parked (
            endpoint TEXT PRIMARY KEY,
            parked_at BIGINT NOT NULL,
            reason TEXT NOT NULL
        );
        """,
    ),
    (
        5,
        # after_commit cursors (accord.sync.dispatch): per extension and room, the last seq
        # its hook returned from. (Version 4 is the webhooks outbox's.)
        """
        CREATE TABLE IF NOT EXISTS extension_cursors (
            extension TEXT NOT NULL,
            room TEXT NOT NULL,
            seq BIGINT NOT NULL,
            PRIMARY KEY (extension, room)
        );
        CREATE INDEX IF NOT EXISTS extension_cursors_room ON extension_cursors (room);
        """,
    ),
    (
        6,
        # Record bases (accord.sync.records): each record's state as of its room's floor,
        # for records changed after the floor that existed at it, so that a listing at a
        # seq at or above the floor can rebuild a record changed since. rooms.bases is 1
        # where they are complete; a room compacted before this version has none (0), and
        # rebuilding there stays refused as before.
        """
        CREATE TABLE record_bases (
            room TEXT NOT NULL,
            collection TEXT NOT NULL,
            key TEXT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (room, collection, key)
        );
        ALTER TABLE rooms ADD COLUMN bases INTEGER NOT NULL DEFAULT 1;
        UPDATE rooms SET bases = 0 WHERE floor > 0;
        """,
    ),
)


def statements(sql: str) -> list[str]:
    return [part.strip() for part in sql.split(";") if part.strip()]

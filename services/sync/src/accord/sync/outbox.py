"""The webhook outbox: the committed changes owed to each endpoint, kept in the
database until the endpoint has answered 2xx for them.

Written in the commit's own transaction (``store_*.py``'s ``save``): one row per
(endpoint, room, commit group), carrying the group's changes to the room as
delivered to clients, so that compaction never waits for a receiver. A room no
endpoint wants costs a commit nothing more; one that some want costs one more
statement (a CTE of the save statement on PostgreSQL).

Delivered per (endpoint, room) one batch at a time, in seq order. The oldest row
of an (endpoint, room), its head, holds the state of the batch it starts. A
replica claims a head by leasing it for the endpoint's timeout plus
``LEASE_MARGIN`` (on PostgreSQL with ``FOR UPDATE SKIP LOCKED``: replicas
claiming together never take the same head, nor wait for each other). The first
claim freezes the batch — the rows it takes in, up to ``MAX_BATCH_ROWS`` and
``MAX_BATCH_BYTES`` — and gives it its ``webhook-id``, so every retry sends the
same changes under the same id. A 2xx deletes the batch's rows; a failure sets
when the head is due again, or parks the endpoint after its last attempt. A
replica that dies mid-delivery leaves a lease that runs out, and the batch is
sent again (at least once).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from accord.common import jsontext
from accord.sync.model import LoggedChange, OutboxEntry

MAX_BATCH_ROWS = 100
MAX_BATCH_BYTES = 1024 * 1024
"""A batch takes in further rows while its changes are below this many bytes of JSON."""
LEASE_MARGIN_MS = 5000


class Routes(Protocol):
    """What the engine asks at commit: who wants a room's changes."""

    def endpoints(self, room: str) -> tuple[str, ...]: ...

    def written(self) -> None:
        """Called after a commit that wrote outbox rows."""
        ...


def change_json(change: LoggedChange) -> str:
    """One change as clients get it in a ``changes`` message (protocol.md)."""
    quote = jsontext.dumps
    return (
        f'{{"seq":{change.seq},"collection":{quote(change.collection)},'
        f'"key":{quote(change.key)},"client_id":{quote(change.client_id)},'
        f'"client_seq":{change.client_seq},"ts":{change.ts},"patch":{change.patch_json or "{}"}}}'
    )


def entries(endpoints: Sequence[str], changes: Sequence[LoggedChange]) -> tuple[OutboxEntry, ...]:
    """The rows a commit group's ``changes`` to one room owe ``endpoints``."""
    if not endpoints or not changes:
        return ()
    text = "[" + ",".join(change_json(c) for c in changes) + "]"
    first, last = changes[0].seq, changes[-1].seq
    return tuple(OutboxEntry(e, first, last, text) for e in endpoints)


@dataclass(frozen=True)
class Head:
    """A leased head row: where a batch starts, and its state so far."""

    endpoint: str
    room: str
    first_seq: int
    attempts: int
    """Counting the attempt this lease is for."""
    message_id: str | None
    batch_until: int | None
    """The first_seq of the batch's last row, once frozen."""


@dataclass(frozen=True)
class Row:
    first_seq: int
    last_seq: int
    changes_json: str


@dataclass(frozen=True)
class Batch:
    endpoint: str
    room: str
    first_seq: int
    batch_until: int
    last_seq: int
    message_id: str
    attempts: int
    lease: str
    changes: tuple[str, ...]
    """Each row's changes (a JSON array)."""

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1

    def body(self) -> bytes:
        inner = ",".join(text[1:-1] for text in self.changes if text != "[]")
        room = jsontext.dumps(self.room)
        return f'{{"type":"changes","room":{room},"changes":[{inner}]}}'.encode()


@dataclass(frozen=True)
class Backlog:
    """One endpoint's undelivered changes, as the database holds them."""

    endpoint: str
    rows: int = 0
    changes: int = 0
    rooms: int = 0
    oldest: int = 0
    """When the oldest row was written (Unix ms; 0: none)."""
    attempts: int = 0
    """The most attempts any of its batches has had so far."""
    last_error: str = ""
    parked_at: int = 0
    """Unix ms; 0: not parked."""
    reason: str = ""


class OutboxStore(Protocol):
    """The outbox's statements, one implementation per database."""

    async def lease(
        self, leases: Mapping[str, int], now: int, limit: int, token: str
    ) -> list[Head]:
        """Lease up to ``limit`` heads that are due, unleased, of the endpoints in ``leases``
        (endpoint -> lease length in ms) and not parked; each lease's attempts count up."""
        ...

    async def rows(
        self, endpoint: str, room: str, first_seq: int, until: int | None, limit: int
    ) -> list[Row]:
        """The rows of (endpoint, room) from ``first_seq`` (to ``until``), in order."""
        ...

    async def freeze(self, head: Head, token: str, until: int, message_id: str) -> None: ...

    async def delete(self, batch: Batch) -> None:
        """The batch was delivered: its rows go."""
        ...

    async def retry(self, batch: Batch, due: int, error: str) -> None:
        """The batch failed: due again at ``due`` (if the lease is still the batch's)."""
        ...

    async def park(self, endpoint: str, now: int, reason: str) -> None: ...

    async def resume(self, endpoint: str) -> bool:
        """Unpark ``endpoint`` and make its batches due now; whether it was parked."""
        ...

    async def backlog(self) -> list[Backlog]: ...


def merge_backlog(
    counted: Sequence[tuple[str, int, int, int, int, int, str]],
    parked: Sequence[tuple[str, int, str]],
) -> list[Backlog]:
    """Each endpoint that has rows or is parked, by name: ``counted`` holds (endpoint, rows,
    changes, rooms, oldest, attempts, last_error), ``parked`` (endpoint, parked_at, reason)."""
    found = {c[0]: Backlog(*c) for c in counted}
    for endpoint, at, reason in parked:
        found[endpoint] = replace(
            found.get(endpoint, Backlog(endpoint)), parked_at=at, reason=reason
        )
    return [found[name] for name in sorted(found)]


def extent(rows: Sequence[Row]) -> int:
    """The first_seq of the last row a new batch starting at ``rows[0]`` takes in."""
    used = 0
    until = rows[0].first_seq
    for row in rows[:MAX_BATCH_ROWS]:
        if used and used + len(row.changes_json) > MAX_BATCH_BYTES:
            break
        used += len(row.changes_json)
        until = row.first_seq
    return until


class Outbox:
    """Claims batches to deliver and records how their delivery went."""

    def __init__(self, store: OutboxStore) -> None:
        self._store = store

    async def claim(self, leases: Mapping[str, int], now: int, limit: int) -> list[Batch]:
        if not leases or limit <= 0:
            return []
        token = secrets.token_hex(8)
        batches = []
        for head in await self._store.lease(leases, now, limit, token):
            rows = await self._store.rows(
                head.endpoint, head.room, head.first_seq, head.batch_until, MAX_BATCH_ROWS
            )
            if not rows or rows[0].first_seq != head.first_seq:
                continue  # delivered meanwhile by a replica whose lease had run out
            until, message_id = head.batch_until, head.message_id
            if until is None or message_id is None:
                until, message_id = extent(rows), "msg_" + secrets.token_urlsafe(18)
                await self._store.freeze(head, token, until, message_id)
            taken = [r for r in rows if r.first_seq <= until]
            batches.append(
                Batch(
                    endpoint=head.endpoint,
                    room=head.room,
                    first_seq=head.first_seq,
                    batch_until=until,
                    last_seq=taken[-1].last_seq,
                    message_id=message_id,
                    attempts=head.attempts,
                    lease=token,
                    changes=tuple(r.changes_json for r in taken),
                )
            )
        return batches

    async def delivered(self, batch: Batch) -> None:
        await self._store.delete(batch)

    async def failed(self, batch: Batch, due: int, error: str) -> None:
        await self._store.retry(batch, due, error[:500])

    async def park(self, batch: Batch, now: int, error: str) -> None:
        await self._store.retry(batch, now, error[:500])
        await self._store.park(batch.endpoint, now, error[:500])

    async def resume(self, endpoint: str) -> bool:
        return await self._store.resume(endpoint)

    async def backlog(self) -> list[Backlog]:
        return await self._store.backlog()

"""The push algorithm and the catch-up reads, written once over the ``Store`` interface.

A push: lock the room, drop what the client already stored (dedupe by the
client's high-water mark), stamp or clamp clocks, merge each op into its
record, give each change the next seq, append the log and update the records
in one transaction. Publishing comes after, from the caller, once committed.
Several pushes to one room can share that transaction (``push_group``, fed
by ``accord.sync.committer``): one lock, one read of their records, one write.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from accord.sync import merge, metrics, outbox, records
from accord.sync.batchmerge import BatchMerge
from accord.sync.epoch import Basis, RoomHead
from accord.sync.errors import BadRequest, OutOfRange, SyncError, TooLarge
from accord.sync.hlc import HybridClock
from accord.sync.model import (
    ChangeError,
    ChangeOutcome,
    ConflictRow,
    IncomingChange,
    Limits,
    LoggedChange,
    PushBatch,
    PushOutcome,
    RecordKey,
    RecordRow,
    RecordValue,
    Retention,
    RoomWrite,
    SnapshotPage,
)
from accord.sync.outbox import Routes
from accord.sync.store import Contended, RoomTransaction, Store

if TYPE_CHECKING:
    from accord.sync.dispatch import Holds
    from accord.sync.extensions import Screen

log = logging.getLogger(__name__)

ClientKey = tuple[str, str]
"""(user_id, client_id) within one room."""

DEFAULT_PAGE = 500
MAX_PAGE = 10_000
PAGE_BYTES = 4 * 1024 * 1024
"""A page is also cut at this many bytes of JSON, to stay well inside gRPC's message limit."""

T = TypeVar("T")


def split_by_bytes(
    items: list[T], size: Callable[[T], int], budget: int = PAGE_BYTES
) -> list[list[T]]:
    """``items`` in order, cut into runs of at most ``budget`` bytes (at least one item each)."""
    pages: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item in items:
        cost = size(item)
        if current and used + cost > budget:
            pages.append(current)
            current, used = [], 0
        current.append(item)
        used += cost
    if current:
        pages.append(current)
    return pages


def change_bytes(change: LoggedChange) -> int:
    return len(change.patch_json) + len(change.collection) + len(change.key) + 64


def record_bytes(record: RecordValue) -> int:
    return len(record.value_json) + len(record.collection) + len(record.key) + 16


@dataclass(frozen=True)
class PullHead:
    """The first thing a pull yields: the head it runs up to and the room's epoch."""

    head: int
    epoch: str


PullItem = PullHead | SnapshotPage | list[LoggedChange]
"""What a pull yields: first the head, then snapshot pages or change pages."""


@dataclass
class _Group:
    """The pushes of a group to one room, as merged so far, not yet saved."""

    head: int
    states: dict[RecordKey, merge.RecordState] = field(default_factory=dict)
    views: dict[RecordKey, merge.View | None] = field(default_factory=dict)
    marks: dict[ClientKey, int] = field(default_factory=dict)
    """Each client's high-water mark, as raised by the group's batches so far."""
    raised: dict[ClientKey, None] = field(default_factory=dict)
    """The clients whose mark the group raised (ordered, to save)."""
    values: dict[RecordKey, str | None] = field(default_factory=dict)
    """The records the group changed and their visible values."""
    seqs: dict[RecordKey, int] = field(default_factory=dict)
    logged: dict[tuple[str, str, int], int] = field(default_factory=dict)
    """(user_id, client_id, client_seq) -> seq of the changes the group committed."""
    committed: list[LoggedChange] = field(default_factory=list)
    conflicts: list[ConflictRow] = field(default_factory=list)
    duplicates: int = 0
    sizes: dict[RecordKey, int] = field(default_factory=dict)
    """Each record's stored state in bytes of JSON (what remembering it costs, roughly)."""

    def write(self, room: str) -> RoomWrite:
        records = []
        for k, value in self.values.items():
            state = merge.dump_state(self.states[k])
            self.sizes[k] = len(state)
            records.append(RecordRow(k[0], k[1], state, value, self.seqs[k]))
        return RoomWrite(
            room=room,
            changes=self.committed,
            records=records,
            marks=[(u, c, self.marks[(u, c)]) for u, c in self.raised],
            conflicts=self.conflicts,
        )


@dataclass
class _Known:
    """A room as this replica last committed it: its head, and as of that head the marks
    of the clients and the states of the records its recent groups touched."""

    head: int
    marks: dict[ClientKey, int] = field(default_factory=dict)
    states: dict[RecordKey, merge.RecordState] = field(default_factory=dict)
    views: dict[RecordKey, merge.View | None] = field(default_factory=dict)
    sizes: dict[RecordKey, int] = field(default_factory=dict)
    size: int = 0


KNOWN_BYTES = 8 * 1024 * 1024
"""Record state (bytes of its JSON) a sync replica remembers in all, least recently used
rooms first out: a few times this in memory (``ROOM_MEMORY_BYTES``; 0 turns it off)."""
KNOWN_RECORD_BYTES = 16 * 1024
"""A record whose state is larger is read each time instead."""
SHARED_SECONDS = 5.0
"""A room found written by another replica is read each time for this long."""
KNOWN_SHARED_ROOMS = 100_000
"""Beyond this many rooms marked shared, the expired marks are dropped."""


class _Stale(Contended):
    """An optimistic group started from a remembered room that had moved on."""


class _RoomMemory:
    """What this replica wrote last, so that an optimistic group whose every record and
    client is known skips reading them. It cannot go stale unnoticed: the optimistic save
    writes only if each room's head is still the one the group started from, and every
    write to a room's records or marks raises its head; a group that finds a room moved
    on writes nothing and runs again reading it (``Engine._attempt``), and what it read
    is remembered then. All of it was read under one ``basis`` (the database's epoch
    basis), which the save checks too: after ``accord epoch renew`` (or a restore into
    another cluster) nothing remembered is used, and the first read forgets it all.
    Bounded by the size of the records' state (``KNOWN_BYTES``),
    least recently used rooms first out."""

    def __init__(self, budget: int = KNOWN_BYTES) -> None:
        self._rooms: OrderedDict[str, _Known] = OrderedDict()
        self._budget = budget
        self._size = 0
        self._shared: dict[str, float] = {}
        """Rooms another replica wrote to lately -> until when they are read each time."""
        self.basis: Basis | None = None
        """The database's basis what is remembered was read under."""

    def rebase(self, basis: Basis) -> None:
        """A read saw the database under ``basis``: what was read under another one goes."""
        if basis != self.basis:
            self.clear()
            self.basis = basis

    def recall(
        self, clients: Sequence[tuple[str, str, str]], keys: Sequence[tuple[str, str, str]]
    ) -> dict[str, _Known] | None:
        """The rooms' known state when it covers every client and key, else None."""
        known: dict[str, _Known] = {}
        for room, user_id, client_id in clients:
            entry = known.get(room) or self._rooms.get(room)
            if entry is None or (user_id, client_id) not in entry.marks:
                return None
            if room not in known and room in self._shared:
                if self._shared[room] > time.monotonic():
                    return None
                del self._shared[room]
            known[room] = entry
        for room, collection, key in keys:
            if (collection, key) not in known[room].states:
                return None
        for room in known:
            self._rooms.move_to_end(room)
        return known

    def remember(self, groups: dict[str, _Group], started: dict[str, int]) -> None:
        """After a committed group: each room as it left it. What was known of a room
        stays only if it was current when the group started."""
        for room, group in groups.items():
            entry = self._drop(room)
            if not group.head:  # nothing committed yet: the room may have no row at all
                continue
            if entry is None or entry.head != started[room]:
                entry = _Known(group.head)
            entry.head = group.head
            entry.marks.update(group.marks)
            for key, state in group.states.items():
                size = group.sizes.get(key, 0)
                if size > KNOWN_RECORD_BYTES:
                    entry.states.pop(key, None)
                    entry.views.pop(key, None)
                    entry.sizes.pop(key, None)
                    continue
                entry.states[key] = state
                entry.views[key] = group.views[key]
                entry.sizes[key] = size
            entry.size = sum(entry.sizes.values()) + 64 * len(entry.marks)
            if entry.size > self._budget // 2:
                continue  # one room would crowd out the rest: it is read each time
            self._rooms[room] = entry
            self._size += entry.size
        while self._size > self._budget and self._rooms:
            self._size -= self._rooms.popitem(last=False)[1].size

    def _drop(self, room: str) -> _Known | None:
        entry = self._rooms.pop(room, None)
        if entry is not None:
            self._size -= entry.size
        return entry

    def forget(self, rooms: Sequence[str], shared: bool = False) -> None:
        """Drop what is known of ``rooms``; ``shared``: another replica writes to them too,
        so read them each time for ``SHARED_SECONDS``."""
        for room in rooms:
            self._drop(room)
        if shared:
            now = time.monotonic()
            if len(self._shared) > KNOWN_SHARED_ROOMS:
                self._shared = {r: t for r, t in self._shared.items() if t > now}
            until = now + SHARED_SECONDS
            self._shared.update(dict.fromkeys(rooms, until))

    def clear(self) -> None:
        self._rooms.clear()
        self._size = 0


LOCKED_AFTER_CONTENTION = 5.0
"""Seconds that groups run locked after an optimistic one was contended: rooms written
by several replicas at once are better served by waiting for the lock than by retrying."""


class Engine:
    def __init__(
        self,
        store: Store,
        clock: HybridClock,
        limits: Limits,
        retention: Retention | None = None,
        *,
        memory_bytes: int = KNOWN_BYTES,
        webhooks: Routes | None = None,
        screen: Screen | None = None,
        holds: Holds | None = None,
    ) -> None:
        self._screen = screen
        """The before_commit extensions and record schemas (None: none, the plain path)."""
        self._holds = holds
        """The after_commit cursors compaction may not pass (None: no such extension)."""
        self._store = store
        self._webhooks = webhooks
        """Who wants which room's committed changes (written to the outbox with them)."""
        self._clock = clock
        self._limits = limits
        self._retention = retention or Retention()
        self._locked_until = 0.0
        """After a contended optimistic group, groups run locked until then."""
        self._memory = _RoomMemory(memory_bytes)
        self._remember = memory_bytes > 0
        """False when turned off, or once the store has shown it cannot take rooms from
        memory."""

    def _stamp(self, ts: int) -> tuple[int, bool]:
        if ts == 0:
            return self._clock.now(), True
        stored, adjusted = self._clock.clamp(ts)
        self._clock.observe(stored)
        return stored, adjusted

    async def push(self, batch: PushBatch) -> PushOutcome:
        """Merge and commit one push on its own (``push_group`` of one)."""
        (outcome,) = await self.push_group([batch])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def push_group(self, batches: Sequence[PushBatch]) -> list[PushOutcome | Exception]:
        """Merge ``batches`` (to any rooms) in order and commit them in one transaction.

        Each batch is judged on its own, exactly as if it had been pushed alone
        after the ones before it: a batch with a bad change (``BadRequest``,
        ``TooLarge``) gets that error in its place and leaves no trace, while the
        others commit. ``Unavailable`` (the store cannot be reached) fails the whole
        group. Should the database refuse the group's statements for any other
        reason (input validation missed), the batches are committed one at a time,
        so only the batch at fault gets that error.
        """
        try:
            return list(await self._push_group(batches))
        except SyncError:
            raise
        except Exception:
            if len(batches) == 1:
                raise
            log.exception(
                "a commit group of %d pushes failed; committing them one at a time",
                len(batches),
            )
            return [await self._alone(batch) for batch in batches]

    async def _alone(self, batch: PushBatch) -> PushOutcome | Exception:
        try:
            (outcome,) = await self._push_group([batch])
        except Exception as error:
            return error
        return outcome

    async def _push_group(self, batches: Sequence[PushBatch]) -> list[PushOutcome | SyncError]:
        started = time.perf_counter()
        rooms = [b.room for b in batches]
        try:
            groups, outcomes = await self._attempt(batches, rooms, started >= self._locked_until)
        except BaseException:
            # Whether the database took the group is unknown, and a lost connection can
            # mean a failover: read every room afresh.
            self._memory.clear()
            raise
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.COMMIT_GROUP.observe(len(batches))
        metrics.APPLIED.inc(sum(len(g.committed) for g in groups.values()))
        metrics.DUPLICATE.inc(sum(g.duplicates for g in groups.values()))
        lost = sum(len(g.conflicts) for g in groups.values())
        if lost:
            metrics.CONFLICTS.inc(lost)
        if self._screen is not None:
            refused = sum(
                r.error is not None
                for o in outcomes
                if isinstance(o, PushOutcome)
                for r in o.results
            )
            if refused:
                metrics.REFUSED.inc(refused)
        return outcomes

    async def _attempt(
        self, batches: Sequence[PushBatch], rooms: list[str], optimistic: bool
    ) -> tuple[dict[str, _Group], list[PushOutcome | SyncError]]:
        if optimistic:
            try:
                return await self._commit(batches, rooms, optimistic=True)
            except _Stale:
                # What this replica remembered of a room was out of date: another
                # replica writes to it too. Read those rooms for a while, starting now.
                metrics.STALE.inc()
                self._memory.forget(rooms, shared=True)
                try:
                    return await self._commit(batches, rooms, optimistic=True)
                except Contended:
                    pass
            except Contended:
                pass
            # Another replica wrote to one of the rooms between this group's read and its
            # save: nothing was written; run it locked, and the next ones for a while.
            metrics.CONTENDED.inc()
            self._memory.forget(rooms)
            self._locked_until = time.perf_counter() + LOCKED_AFTER_CONTENTION
        return await self._commit(batches, rooms, optimistic=False)

    async def _commit(
        self, batches: Sequence[PushBatch], rooms: list[str], optimistic: bool
    ) -> tuple[dict[str, _Group], list[PushOutcome | SyncError]]:
        """Merge and save ``batches`` in one transaction (see ``push_group``)."""
        async with self._store.transaction(rooms, optimistic=optimistic) as tx:
            clients = list(dict.fromkeys((b.room, b.user_id, b.client_id) for b in batches))
            keys = list(
                dict.fromkeys((b.room, c.collection, c.key) for b in batches for c in b.changes)
            )
            known = self._memory.recall(clients, keys) if optimistic and self._remember else None
            assumed = {room: k.head for room, k in known.items()} if known is not None else {}
            if known is not None and not tx.assume(assumed, self._memory.basis):
                self._remember = False  # a store that reads under a lock anyway (SQLite)
                self._memory.clear()
                known = None
            if known is not None:
                metrics.READS_SKIPPED.inc()
                groups = {room: _Group(head=k.head) for room, k in known.items()}
                for room, collection, key in keys:
                    entry, record = known[room], (collection, key)
                    groups[room].states[record] = entry.states[record]
                    groups[room].views[record] = entry.views[record]
                    groups[room].sizes[record] = entry.sizes[record]
                for room, user_id, client_id in clients:
                    groups[room].marks[(user_id, client_id)] = known[room].marks[
                        (user_id, client_id)
                    ]
            else:
                marks, stored = await tx.load(clients, keys)
                self._memory.rebase(tx.basis)
                groups = {room: _Group(head=tx.head(room)) for room, _, _ in clients}
                for room, collection, key in keys:
                    text = stored.get((room, collection, key))
                    state = merge.load_state(text)
                    groups[room].states[(collection, key)] = state
                    groups[room].views[(collection, key)] = merge.view(state)
                    groups[room].sizes[(collection, key)] = len(text) if text else 0
                for room, user_id, client_id in clients:
                    # 0: no mark stored (recorded, so that a later group can skip the read)
                    mark = marks.get((room, user_id, client_id), 0)
                    groups[room].marks[(user_id, client_id)] = mark
            heads = {room: group.head for room, group in groups.items()}
            outcomes: list[PushOutcome | SyncError] = []
            for batch in batches:
                try:
                    outcomes.append(await self._apply(tx, groups[batch.room], batch))
                except (BadRequest, TooLarge) as error:
                    outcomes.append(error)
            writes = [
                self._owed(group.write(room)) for room, group in groups.items() if group.committed
            ]
            if writes:
                try:
                    await tx.save(writes)
                except Contended:
                    if known is not None:
                        raise _Stale from None
                    raise
                for write in writes:
                    await self._compact(tx, write.room, heads[write.room], groups[write.room].head)
        if self._remember:
            self._memory.remember(groups, heads)
        if self._webhooks is not None and any(w.outbox for w in writes):
            self._webhooks.written()
        return groups, outcomes

    def _owed(self, write: RoomWrite) -> RoomWrite:
        """``write`` with the outbox rows its changes owe webhook endpoints."""
        if self._webhooks is None:
            return write
        owed = outbox.entries(self._webhooks.endpoints(write.room), write.changes)
        return replace(write, outbox=owed) if owed else write

    async def _apply(self, tx: RoomTransaction, group: _Group, batch: PushBatch) -> PushOutcome:
        """One batch of a group: dedupe it by its client's high-water mark, merge the rest."""
        client = (batch.user_id, batch.client_id)
        high_water = group.marks.get(client, 0)
        stale = [c.client_seq for c in batch.changes if c.client_seq <= high_water]
        fresh = [c for c in batch.changes if c.client_seq > high_water]
        originals: dict[int, int] = {}
        if stale:
            # A retry of a change committed earlier in this group is not in the log yet.
            for seq in stale:
                if (*client, seq) in group.logged:
                    originals[seq] = group.logged[(*client, seq)]
            rest = [seq for seq in stale if seq not in originals]
            if rest:
                originals.update(await tx.logged_seqs((batch.room, *client), rest))
        outcomes: dict[int, ChangeOutcome] = {
            seq: ChangeOutcome(seq, originals.get(seq, 0), True, 0, False) for seq in stale
        }
        committed: list[LoggedChange] = []
        if fresh and self._screen is not None and self._screen.active:
            committed = await self._screened_merge(self._screen, group, batch, fresh, outcomes)
        elif fresh:
            committed = self._merge(group, batch, fresh, outcomes)
        group.duplicates += len(stale)
        if committed:
            # A refused change raises no mark by itself (a retry is judged again); one
            # before a committed change is passed by it, as a client_seq the log lacks.
            group.marks[client] = committed[-1].client_seq
            group.raised[client] = None
        return PushOutcome(
            room=batch.room,
            results=tuple(outcomes[c.client_seq] for c in batch.changes),
            committed=tuple(committed),
            head=group.head,
        )

    def _merge(
        self,
        group: _Group,
        batch: PushBatch,
        fresh: list[IncomingChange],
        outcomes: dict[int, ChangeOutcome],
    ) -> list[LoggedChange]:
        """Merge ``fresh`` into the group's records; the group changes only if all merge."""
        run = self._batch_merge(group, batch, outcomes)
        for change in fresh:
            run.add(change)
        return self._absorb(group, batch, run)

    async def _screened_merge(
        self,
        screen: Screen,
        group: _Group,
        batch: PushBatch,
        fresh: list[IncomingChange],
        outcomes: dict[int, ChangeOutcome],
    ) -> list[LoggedChange]:
        """``_merge`` with each change judged first by the ``before_commit`` extensions
        (which may refuse or rewrite it) and its result checked against the record
        schemas: a refused change takes no seq, and the rest of the batch goes on."""
        run = self._batch_merge(group, batch, outcomes)
        check = screen.checker(batch.room)
        for change in fresh:
            judged = await screen.judge(batch, change, run.shown((change.collection, change.key)))
            if isinstance(judged, ChangeError):
                run.refuse(change, judged)
            else:
                run.add(judged, check)
        return self._absorb(group, batch, run)

    def _batch_merge(
        self, group: _Group, batch: PushBatch, outcomes: dict[int, ChangeOutcome]
    ) -> BatchMerge:
        return BatchMerge(
            group.states, group.views, group.head, batch, self._stamp, self._limits, outcomes
        )

    def _absorb(self, group: _Group, batch: PushBatch, run: BatchMerge) -> list[LoggedChange]:
        """A batch merged in full: its records, seqs and log entries join the group."""
        group.states.update(run.states)
        group.views.update(run.views)
        group.values.update(run.values)
        group.seqs.update(run.seqs)
        group.head = run.head
        group.committed.extend(run.committed)
        group.conflicts.extend(run.lost)
        group.logged.update(
            ((batch.user_id, batch.client_id, c.client_seq), c.seq) for c in run.committed
        )
        return run.committed

    async def _compact(self, tx: RoomTransaction, room: str, before: int, head: int) -> None:
        """Every ``retention.every`` seqs: cut the log to its tail, prune old conflicts."""
        every = self._retention.every
        if before // every == head // every:
            return
        keep = self._retention.log_changes
        floor = head - keep if keep else 0
        if self._holds is not None and floor > 0:
            floor = min(floor, await self._holds.floor(tx, room))
        await tx.compact(room, max(floor, 0), self._retention.conflicts)
        metrics.COMPACTIONS.inc()

    async def conflicts(self, room: str, before: int, limit: int) -> list[ConflictRow]:
        return await self._store.conflicts(room, before, limit)

    async def head(self, room: str) -> int:
        return await self._store.head(room)

    async def records_page(
        self,
        room: str,
        as_of: int,
        collection: str | None,
        after: RecordKey | None,
        limit: int,
    ) -> records.RecordsPage:
        """A page of the room's records as of seq ``as_of`` (0: its head); see
        ``accord.sync.records``."""
        async with self._store.reader(room) as reader:
            return await records.read_page(reader, as_of, collection, after, limit)

    async def record(self, room: str, collection: str, key: str) -> records.StoredRecord | None:
        """The record as it is now (None: never written); its value None when deleted."""
        async with self._store.reader(room) as reader:
            return await reader.row(collection, key)

    async def heads(self, rooms: Sequence[str]) -> dict[str, int]:
        return await self._store.heads(rooms)

    async def room_heads(self, rooms: Sequence[str]) -> dict[str, RoomHead]:
        """The head and epoch of each of ``rooms``."""
        return await self._store.room_heads(rooms)

    async def changes(self, room: str, after: int, until: int, limit: int) -> list[LoggedChange]:
        return await self._store.changes(room, after, until, limit)

    async def pull(
        self,
        room: str,
        since: int,
        until: int,
        page_size: int,
        changes_only: bool,
        epoch: str = "",
    ) -> AsyncGenerator[PullItem, None]:
        """Catch-up for one room; see docs/merge.md for when a snapshot is sent. A
        ``since`` read under another ``epoch`` than the room's (``RoomEpoch.accepts``)
        belongs to another history: it gets a snapshot, even an empty one."""
        page = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        async with self._store.snapshot(room) as snapshot:
            head, current = snapshot.head, snapshot.epoch.current
            foreign = since > 0 and not snapshot.epoch.accepts(epoch)
            if foreign and changes_only:
                raise OutOfRange(f"epoch {epoch!r} is not the epoch of room {room}")
            if not changes_only and (
                since == 0 or foreign or since > head or since < snapshot.floor
            ):
                yield PullHead(head, current)
                if head == 0 and since == 0:
                    return
                pending: list[RecordValue] | None = None
                async for records in snapshot.records(page):
                    for part in split_by_bytes(records, record_bytes):
                        if pending is not None:
                            yield SnapshotPage(head, pending, False)
                        pending = part
                yield SnapshotPage(head, pending or [], True)
                return
        if since > head:
            raise OutOfRange(f"since {since} is ahead of head {head}")
        target = until if 0 < until <= head else head
        yield PullHead(target, current)
        cursor = since
        while cursor < target:
            changes = await self._store.changes(room, cursor, target, page)
            if not changes or changes[0].seq != cursor + 1:
                raise OutOfRange(f"the log no longer holds seq {cursor + 1}")
            for run in split_by_bytes(changes, change_bytes):
                yield run
            cursor = changes[-1].seq

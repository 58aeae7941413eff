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
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from accord.sync import merge, metrics, outbox
from accord.sync.batchmerge import BatchMerge
from accord.sync.errors import BadRequest, SyncError, TooLarge
from accord.sync.hlc import HybridClock
from accord.sync.model import (
    ChangeError,
    ChangeOutcome,
    IncomingChange,
    Limits,
    LoggedChange,
    PushBatch,
    PushOutcome,
    Retention,
    RoomWrite,
    SnapshotPage,
)
from accord.sync.outbox import Routes
from accord.sync.reads import PullHead, PullItem, Reads, change_bytes, split_by_bytes
from accord.sync.room_memory import KNOWN_BYTES, _Group, _RoomMemory
from accord.sync.store import Contended, RoomTransaction, Store

if TYPE_CHECKING:
    from accord.sync.dispatch import Holds
    from accord.sync.extensions import Screen

# Defined in accord.sync.reads and accord.sync.model; imported from here too.
__all__ = ["Engine", "PullHead", "PullItem", "SnapshotPage", "change_bytes", "split_by_bytes"]

log = logging.getLogger(__name__)


class _Stale(Contended):
    """An optimistic group started from a remembered room that had moved on."""


LOCKED_AFTER_CONTENTION = 5.0
"""Seconds that groups run locked after an optimistic one was contended: rooms written
by several replicas at once are better served by waiting for the lock than by retrying."""


class Engine(Reads):
    """The push path; the reads come from ``Reads`` (``accord.sync.reads``)."""

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
        super().__init__(store)
        self._webhooks = webhooks
        """Who wants which room's committed changes (written to the outbox with them)."""
        self._clock = clock
        self._limits = limits
        self._retention = retention or Retention()
        self._locked_until = 0.0
        """After a contended optimistic group, groups run locked until then."""
        self._compactions: dict[str, int] = {}
        """Rooms owed a compaction (``compact_owed``), by the head the last one reached."""
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

    async def push_group(
        self, batches: Sequence[PushBatch], *, compact: bool = True
    ) -> list[PushOutcome | Exception]:
        """Merge ``batches`` (to any rooms) in order and commit them in one transaction.

        Each batch is judged on its own, exactly as if it had been pushed alone
        after the ones before it: a batch with a bad change (``BadRequest``,
        ``TooLarge``) gets that error in its place and leaves no trace, while the
        others commit. ``Unavailable`` (the store cannot be reached) fails the whole
        group. Should the database refuse the group's statements for any other
        reason (input validation missed), the batches are committed one at a time,
        so only the batch at fault gets that error.

        Compactions the group owes (``compact_owed``) run before it returns, unless
        ``compact`` is false: the committer answers the pushes first.
        """
        outcomes = await self._grouped(batches)
        if compact:
            await self.compact_owed()
        return outcomes

    async def _grouped(self, batches: Sequence[PushBatch]) -> list[PushOutcome | Exception]:
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
            self._owe_compaction(write.room, heads[write.room], groups[write.room].head)
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

    def _owe_compaction(self, room: str, before: int, head: int) -> None:
        """A committed group took ``room``'s head from ``before`` to ``head``: owed a
        compaction when that crossed a multiple of ``retention.every``."""
        every = self._retention.every
        if before // every != head // every:
            self._compactions[room] = head

    async def compact_owed(self) -> None:
        """Run the compactions committed groups owe, each in a locked transaction of its own
        (a room's compaction folds its record bases: tens of milliseconds in a busy room, so
        the committer runs this after answering the group). A failed one is logged; the next
        group that crosses a multiple compacts the room again."""
        while self._compactions:
            room, head = self._compactions.popitem()
            try:
                async with self._store.transaction([room]) as tx:
                    await self._compact(tx, room, head)
            except Exception as error:
                log.warning("compaction of room %s failed: %s", room, error)

    async def _compact(self, tx: RoomTransaction, room: str, head: int) -> None:
        """Cut the log to its tail behind ``head``, prune old conflicts."""
        keep = self._retention.log_changes
        floor = head - keep if keep else 0
        if self._holds is not None and floor > 0:
            floor = min(floor, await self._holds.floor(tx, room))
        await tx.compact(room, max(floor, 0), self._retention.conflicts)
        metrics.COMPACTIONS.inc()

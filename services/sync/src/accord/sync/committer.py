"""Group commit: the pushes that arrive while a commit is running share the next one.

One worker task per sync process takes everything queued (up to
``max_group_changes`` changes, any rooms), merges it in arrival order and
commits it in one transaction (``Engine.push_group``), publishes each room's
committed changes as one batch, then answers each push. Pushes that arrive
meanwhile form the next group. Under light load a group is one push and
nothing waits; under load the cost of a transaction, its commit and the bus
round trip is shared by the whole group, and subscribers get each room's
changes of a group in one message (which the edge sends as one frame per
client).

A push is committed even when its caller stops waiting (a cancelled gRPC
call), so the log never holds a change subscribers were not sent. When the
publish fails (the bus is down) the push is still acknowledged, since it is
committed, and ``on_unpublished`` is called: the replicas' subscribers re-check
their rooms against the log once the bus works again (``recheck.py``).

A push may come with an ``Inline`` target (a caller that also follows the room
on a Subscribe stream of this replica): before the group is published, the
target is offered the group's batch of each room the push committed to, and may
take it off its stream to answer it with the push (``servicer.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from accord.api.sync.v1 import sync_pb2 as pb
from accord.common.tasks import spawn
from accord.sync import metrics, wire
from accord.sync.bus import Bus
from accord.sync.engine import Engine
from accord.sync.errors import Unavailable
from accord.sync.model import LoggedChange, PushBatch, PushOutcome

log = logging.getLogger(__name__)

MAX_GROUP_CHANGES = 5000
"""A group takes more pushes while it has fewer changes than this (at least one push)."""


class Inline(Protocol):
    def offer(self, batch: pb.ChangeBatch) -> None:
        """A committed, not yet published batch of a room the push committed to (the
        group's whole batch of it; offered again for each such push of the group)."""
        ...


@dataclass
class _Waiting:
    batch: PushBatch
    future: asyncio.Future[PushOutcome]
    arrived: float
    inline: Inline | None = None


class Committer:
    def __init__(
        self,
        engine: Engine,
        bus: Bus,
        max_group_changes: int = MAX_GROUP_CHANGES,
        *,
        on_unpublished: Callable[[], None] = lambda: None,
        on_committed: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        self._engine = engine
        self._on_committed = on_committed
        self._bus = bus
        self._on_unpublished = on_unpublished
        self._max_changes = max_group_changes
        self._queue: deque[_Waiting] = deque()
        self._worker: asyncio.Task[None] | None = None

    async def push(self, batch: PushBatch) -> PushOutcome:
        """Commit ``batch`` (with whatever else is waiting); returns once committed and
        published. Raises the batch's own ``SyncError``, or the group's."""
        return await self.submit(batch)

    def submit(self, batch: PushBatch, inline: Inline | None = None) -> asyncio.Future[PushOutcome]:
        """Queue ``batch`` for the next group; the future is answered once it is committed
        and published. Batches submitted one after another keep their order. ``inline`` is
        offered the group's batches of the push's rooms before they are published (unless
        the future is done by then: its caller stopped waiting)."""
        worker = self._worker
        # While the worker runs, the loop is its loop: asking for the running loop again
        # costs a system call on Python 3.11 (a fork check), once per push.
        loop = asyncio.get_running_loop() if worker is None else worker.get_loop()
        waiting = _Waiting(batch, loop.create_future(), time.perf_counter(), inline)
        self._queue.append(waiting)
        if worker is None:
            self._worker = spawn(self._run(), name="committer")
        return waiting.future

    def _take(self) -> list[_Waiting]:
        queue = self._queue
        group = [queue.popleft()]
        changes = len(group[0].batch.changes)
        while queue and changes + len(queue[0].batch.changes) <= self._max_changes:
            changes += len(queue[0].batch.changes)
            group.append(queue.popleft())
        return group

    async def _run(self) -> None:
        try:
            while self._queue:
                await self._commit(self._take())
        finally:
            # Reached with an empty queue (no await since the check), or on cancellation.
            self._worker = None
            while self._queue:
                _answer(self._queue.popleft(), Unavailable("the sync service is shutting down"))

    async def _commit(self, group: list[_Waiting]) -> None:
        try:
            outcomes = await self._engine.push_group([w.batch for w in group], compact=False)
        except Exception as error:
            for waiting in group:
                _answer(waiting, error)
            return
        except BaseException:
            for waiting in group:
                _answer(waiting, Unavailable("the sync service is shutting down"))
            raise
        by_room: dict[str, list[LoggedChange]] = {}
        for outcome in outcomes:
            if isinstance(outcome, PushOutcome) and outcome.committed:
                by_room.setdefault(outcome.room, []).extend(outcome.committed)
        if by_room and self._on_committed is not None:
            self._on_committed(by_room)
        if by_room:
            batches: dict[str, pb.ChangeBatch] = {
                room: wire.change_batch(room, changes) for room, changes in by_room.items()
            }
            for waiting, outcome in zip(group, outcomes, strict=True):
                inline = waiting.inline
                if (
                    inline is not None
                    and isinstance(outcome, PushOutcome)
                    and outcome.committed
                    and not waiting.future.done()
                ):
                    inline.offer(batches[outcome.room])
            try:
                await self._bus.publish_many(list(batches.values()))
            except Unavailable as error:
                log.warning(
                    "%d rooms committed but not published (subscribers will re-check): %s",
                    len(batches),
                    error,
                )
                self._on_unpublished()
        done = time.perf_counter()
        for waiting, outcome in zip(group, outcomes, strict=True):
            metrics.PUSH_SECONDS.observe(done - waiting.arrived)
            _answer(waiting, outcome)
        # Answered first: a compaction of a busy room takes tens of milliseconds.
        await self._engine.compact_owed()


def _answer(waiting: _Waiting, outcome: PushOutcome | Exception) -> None:
    if waiting.future.done():  # the caller stopped waiting
        return
    if isinstance(outcome, PushOutcome):
        waiting.future.set_result(outcome)
    else:
        waiting.future.set_exception(outcome)

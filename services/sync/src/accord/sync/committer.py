"""Group commit: the pushes that arrive for a room while it is busy share one transaction.

Each room with pushes waiting has one worker task. It takes everything queued
for the room (up to ``max_group_changes`` changes), merges it in arrival order
and commits it in one transaction (``Engine.push_group``), publishes all of
the group's committed changes as one batch, then answers each push. Pushes
that arrive meanwhile form the next group. Under light load a group is one
push and nothing waits; under load, the cost of a transaction, a commit and a
bus message is shared by the whole group, and subscribers get the group's
changes in one message (which the edge sends as one frame per client).

A push is committed even when its caller stops waiting (a cancelled gRPC
call), so the log never holds a change subscribers were not sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from accord.common.tasks import spawn
from accord.sync import metrics, wire
from accord.sync.bus import Bus
from accord.sync.engine import Engine
from accord.sync.errors import Unavailable
from accord.sync.model import PushBatch, PushOutcome

log = logging.getLogger(__name__)

MAX_GROUP_CHANGES = 2000
"""A group takes more pushes while it has fewer changes than this (at least one push)."""


@dataclass
class _Waiting:
    batch: PushBatch
    future: asyncio.Future[PushOutcome]
    arrived: float


class Committer:
    def __init__(
        self, engine: Engine, bus: Bus, max_group_changes: int = MAX_GROUP_CHANGES
    ) -> None:
        self._engine = engine
        self._bus = bus
        self._max_changes = max_group_changes
        self._queues: dict[str, deque[_Waiting]] = {}

    async def push(self, batch: PushBatch) -> PushOutcome:
        """Commit ``batch`` (with whatever else is waiting for its room); returns once committed
        and published. Raises the batch's own ``SyncError``, or the group's."""
        waiting = _Waiting(batch, asyncio.get_running_loop().create_future(), time.perf_counter())
        queue = self._queues.get(batch.room)
        if queue is None:
            queue = self._queues[batch.room] = deque()
            spawn(self._run(batch.room, queue), name=f"commit-{batch.room}")
        queue.append(waiting)
        return await waiting.future

    def _take(self, queue: deque[_Waiting]) -> list[_Waiting]:
        group = [queue.popleft()]
        changes = len(group[0].batch.changes)
        while queue and changes + len(queue[0].batch.changes) <= self._max_changes:
            changes += len(queue[0].batch.changes)
            group.append(queue.popleft())
        return group

    async def _run(self, room: str, queue: deque[_Waiting]) -> None:
        try:
            while queue:
                await self._commit(room, self._take(queue))
        finally:
            # Reached with an empty queue (no await since the check), or on cancellation.
            del self._queues[room]
            for waiting in queue:
                _answer(waiting, Unavailable("the sync service is shutting down"))

    async def _commit(self, room: str, group: list[_Waiting]) -> None:
        try:
            outcomes = await self._engine.push_group(room, [w.batch for w in group])
        except BaseException as error:
            for waiting in group:
                _answer(
                    waiting, error if isinstance(error, Exception) else Unavailable("cancelled")
                )
            if not isinstance(error, Exception):
                raise
            return
        committed = [c for o in outcomes if isinstance(o, PushOutcome) for c in o.committed]
        if committed:
            try:
                await self._bus.publish(wire.change_batch(room, committed))
            except Unavailable as error:
                # Subscribers find the gap at the room's next batch and read it from the log.
                log.warning("room %s: committed but not published: %s", room, error)
        done = time.perf_counter()
        for waiting, outcome in zip(group, outcomes, strict=True):
            metrics.PUSH_SECONDS.observe(done - waiting.arrived)
            _answer(waiting, outcome)


def _answer(waiting: _Waiting, outcome: PushOutcome | Exception) -> None:
    if waiting.future.done():  # the caller stopped waiting
        return
    if isinstance(outcome, PushOutcome):
        waiting.future.set_result(outcome)
    else:
        waiting.future.set_exception(outcome)

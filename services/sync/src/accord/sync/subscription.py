"""One Subscribe stream: the rooms it follows and their batches, gapless and in order.

Adding a room subscribes on the bus, then reads the room's head H; the stream
then sends an empty ``ChangeBatch`` for the room (the confirmation: every change
after H follows on this stream) and from there on each committed change with
seq > H exactly once, in seq order. Replicas may publish a room's batches out
of order and a bus may drop one (Redis restart), so each room remembers the
last seq it sent: older changes are dropped, and a gap is filled from the
store's log before the batch that revealed it. A gap the log no longer holds
(compacted) ends the stream with ``OutOfRange``: the caller resubscribes and
catches up with a snapshot, rather than ever seeing a hole.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from accord.api.sync.v1 import sync_pb2 as pb
from accord.sync import metrics, wire
from accord.sync.bus import Bus
from accord.sync.engine import Engine, change_bytes, split_by_bytes
from accord.sync.errors import OutOfRange

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
DRAIN = 500
BACKFILL_PAGE = 500


@dataclass(frozen=True)
class _Added:
    room: str
    head: int
    token: int
    epoch: str = ""


@dataclass
class _Room:
    token: int
    last: int | None = None
    """The last seq sent; None until the subscription is confirmed."""
    early: list[pb.ChangeBatch] | None = None
    """Batches that arrived before the confirmation."""


class RoomStream:
    def __init__(self, bus: Bus, engine: Engine, queue_size: int = QUEUE_SIZE) -> None:
        self._bus = bus
        self._engine = engine
        self._rooms: dict[str, _Room] = {}
        self._queue: asyncio.Queue[pb.ChangeBatch | _Added] = asyncio.Queue(maxsize=queue_size)
        self._tokens = itertools.count(1)
        self.overflowed = asyncio.Event()
        self.batched = False
        """The caller takes several batches per response (SubscribeRequest.batched)."""

    @property
    def rooms(self) -> set[str]:
        return set(self._rooms)

    def _enqueue(self, item: pb.ChangeBatch | _Added) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed.set()

    def _deliver(self, batch: pb.ChangeBatch) -> None:
        if batch.room in self._rooms:
            self._enqueue(batch)

    async def add(self, room: str) -> None:
        """Follow ``room`` (again: re-confirm it); returns once confirmation is queued."""
        await self.add_many([room])

    async def add_many(self, rooms: Sequence[str]) -> None:
        """``add`` each of ``rooms`` with one bus subscription and one read of the heads."""
        states: dict[str, _Room] = {}
        new: list[str] = []
        for room in dict.fromkeys(rooms):
            state = self._rooms.get(room)
            if state is None:
                state = self._rooms[room] = _Room(token=next(self._tokens), early=[])
                metrics.SUBSCRIBERS.inc()
                new.append(room)
            states[room] = state
        if new:
            await self._bus.subscribe_many(new, self._deliver)
        heads = await self._engine.room_heads(list(states))
        for room, state in states.items():
            if self._rooms.get(room) is state:
                read = heads[room]
                self._enqueue(_Added(room, read.head, state.token, read.epoch.current))

    async def remove(self, room: str) -> None:
        if self._rooms.pop(room, None) is None:
            return
        metrics.SUBSCRIBERS.dec()
        await self._bus.unsubscribe(room, self._deliver)

    async def close(self) -> None:
        for room in list(self._rooms):
            try:
                await self.remove(room)
            except Exception:
                log.exception("cannot unsubscribe from room %s", room)

    async def next(self) -> list[pb.ChangeBatch]:
        """The next batches to send: those of the next queued item and of whatever else is
        queued already, up to ``DRAIN`` items (possibly none, when they held only old changes).
        """
        out = await self._next(await self._queue.get())
        for _ in range(DRAIN):
            if self._queue.empty():
                break
            out.extend(await self._next(self._queue.get_nowait()))
        return out

    async def _next(self, item: pb.ChangeBatch | _Added) -> list[pb.ChangeBatch]:
        state = self._rooms.get(item.room)
        if state is None:
            return []
        if isinstance(item, _Added):
            if item.token != state.token:
                return []
            out = [pb.ChangeBatch(room=item.room, epoch=item.epoch)]
            if state.last is None:
                state.last = item.head
                early, state.early = state.early or [], None
                for batch in early:
                    out.extend(await self._ordered(batch, state))
            return out
        if state.last is None:
            assert state.early is not None
            state.early.append(item)
            return []
        return await self._ordered(item, state)

    async def _ordered(self, batch: pb.ChangeBatch, state: _Room) -> list[pb.ChangeBatch]:
        room, last = batch.room, state.last
        assert last is not None
        fresh = [c for c in batch.changes if c.seq > last]
        if not fresh:
            return []
        out: list[pb.ChangeBatch] = []
        if last < fresh[0].seq - 1:
            metrics.BACKFILLS.inc()
        while last < fresh[0].seq - 1:
            missing = await self._engine.changes(room, last, fresh[0].seq - 1, BACKFILL_PAGE)
            if not missing or missing[0].seq != last + 1:
                raise OutOfRange(
                    f"room {room}: seqs {last + 1}..{fresh[0].seq - 1} are no longer in the log"
                )
            out.extend(
                wire.change_batch(room, part) for part in split_by_bytes(missing, change_bytes)
            )
            last = missing[-1].seq
        out.append(pb.ChangeBatch(room=room, changes=fresh))
        state.last = fresh[-1].seq
        return out

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

A gap is only noticed at the room's next batch, which in a quiet room may never
come. So the stream can also be re-checked (``recheck``, asked by
``recheck.Rechecker`` when the bus may have lost batches): it reads the heads
of its confirmed rooms (one query) and sends what the log holds beyond each
room's last sent seq, read exactly as a gap is. The re-check travels through
the same queue as the batches, so order and exactly-once hold.

A batch may also be taken off the stream before it is published (``claim``):
the caller of a push answers it to the stream's client in the push's response
(``PushManyResponse.batches``). The stream then counts it as sent, so its copy
from the bus is dropped like any old change. Only the next batch of a room
whose every earlier output has been written (``written``) and whose gap fill is
not under way can be claimed: the client gets the room's batches in seq order
and each once, whichever way each travels.
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


@dataclass(frozen=True)
class _Recheck:
    pass


_RECHECK = _Recheck()

_Item = pb.ChangeBatch | _Added | _Recheck


@dataclass
class _Room:
    token: int
    last: int | None = None
    """The last seq sent; None until the subscription is confirmed."""
    early: list[pb.ChangeBatch] | None = None
    """Batches that arrived before the confirmation."""
    unsent: bool = False
    """Output of the room (or a gap fill of it) is under way and not written yet."""
    claimed: int = 0
    """The last seq of the last batch claimed (``RoomStream.claim``); 0: none."""


class RoomStream:
    def __init__(self, bus: Bus, engine: Engine, queue_size: int = QUEUE_SIZE) -> None:
        self._bus = bus
        self._engine = engine
        self._rooms: dict[str, _Room] = {}
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=queue_size)
        self._tokens = itertools.count(1)
        self._recheck_queued = False
        self.overflowed = asyncio.Event()
        self.batched = False
        """The caller takes several batches per response (SubscribeRequest.batched)."""
        self.subscriber = ""
        """The caller's id for this stream (SubscribeRequest.subscriber); empty: none."""

    @property
    def rooms(self) -> set[str]:
        return set(self._rooms)

    def _enqueue(self, item: _Item) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed.set()

    def _deliver(self, batch: pb.ChangeBatch) -> None:
        state = self._rooms.get(batch.room)
        if state is None:
            return
        if state.claimed and batch.changes and batch.changes[-1].seq <= state.claimed:
            return  # the copy of a claimed batch (or older): it would be dropped when dequeued
        self._enqueue(batch)

    def claim(self, batch: pb.ChangeBatch) -> bool:
        """Take a just committed, not yet published batch of a room (a commit group's whole
        batch of it) off this stream, for the caller to deliver it instead: True when the
        room is confirmed, everything before the batch has been sent and written, and no
        gap fill of the room is under way; the batch then counts as sent. False: the stream
        sends it, as without the claim."""
        state = self._rooms.get(batch.room)
        if state is None or state.last is None or state.unsent or not batch.changes:
            return False
        if batch.changes[0].seq != state.last + 1:
            return False
        state.last = state.claimed = batch.changes[-1].seq
        return True

    def written(self, batches: Sequence[pb.ChangeBatch]) -> None:
        """``batches`` (the last output of ``next``) have been written to the caller."""
        rooms = self._rooms
        for batch in batches:
            state = rooms.get(batch.room)
            if state is not None:
                state.unsent = False

    def recheck(self) -> None:
        """Bring every confirmed room up to the log's head, in turn with the queued batches
        (at most one re-check waits in the queue)."""
        if not self._recheck_queued:
            self._recheck_queued = True
            self._enqueue(_RECHECK)

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

    async def _next(self, item: _Item) -> list[pb.ChangeBatch]:
        if isinstance(item, _Recheck):
            return await self._recheck()
        state = self._rooms.get(item.room)
        if state is None:
            return []
        if isinstance(item, _Added):
            if item.token != state.token:
                return []
            out = [pb.ChangeBatch(room=item.room, epoch=item.epoch)]
            state.unsent = True
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
            out = await self._backfill(room, state, fresh[0].seq - 1)
        out.append(pb.ChangeBatch(room=room, changes=fresh))
        state.last = fresh[-1].seq
        state.unsent = True
        return out

    async def _recheck(self) -> list[pb.ChangeBatch]:
        self._recheck_queued = False
        confirmed = {room: state for room, state in self._rooms.items() if state.last is not None}
        if not confirmed:
            return []
        heads = await self._engine.heads(list(confirmed))
        out: list[pb.ChangeBatch] = []
        recovered: dict[str, int] = {}
        for room, state in confirmed.items():
            last = state.last
            assert last is not None
            head = heads.get(room, 0)
            if head > last and self._rooms.get(room) is state:
                out.extend(await self._backfill(room, state, head))
                recovered[room] = head - last
        if recovered:
            total = sum(recovered.values())
            metrics.RECHECK_RECOVERED.inc(total)
            log.info(
                "re-check sent %d changes the bus had not delivered, in %d rooms (%s)",
                total,
                len(recovered),
                ", ".join(sorted(recovered)[:5]) + (", ..." if len(recovered) > 5 else ""),
            )
        return out

    async def _backfill(self, room: str, state: _Room, until: int) -> list[pb.ChangeBatch]:
        """The room's changes after its last sent seq up to ``until``, read from the log."""
        last = state.last
        assert last is not None
        state.unsent = True
        out: list[pb.ChangeBatch] = []
        while last < until:
            missing = await self._engine.changes(room, last, until, BACKFILL_PAGE)
            if not missing or missing[0].seq != last + 1:
                raise OutOfRange(f"room {room}: seqs {last + 1}..{until} are no longer in the log")
            out.extend(
                wire.change_batch(room, part) for part in split_by_bytes(missing, change_bytes)
            )
            last = missing[-1].seq
        state.last = last
        return out

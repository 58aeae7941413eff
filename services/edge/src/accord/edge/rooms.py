"""Per-room fan-out of committed changes to this edge's subscribers.

One Subscribe stream to sync carries every room this edge has subscribers
in. Each room keeps the last seq it dispatched; a batch that skips ahead
triggers a backfill from the log before it is dispatched, so subscribers see
every seq once, in order, with no gap. A new subscriber first catches up
through Pull while live batches collect in its buffer, then turns live.
Every batch is encoded once per encoding and the same bytes go to every
subscriber's socket.

Each room also knows its epoch (the history its seqs belong to), from the
stream's confirmation of the room. A client resuming with another epoch is
caught up through Pull, which answers with a snapshot when the epoch is not the
room's; when a re-confirmation brings a new epoch (``accord epoch renew`` and a
restart of sync), every subscriber is caught up again from its position under
the epoch it was last sent, which gets it a snapshot of the new history.

Sync may also answer this edge's pushes with the batches its Subscribe stream
would have sent (``PushManyResponse.batches``, for the stream named by
``Hub.subscriber``, a fresh id per Subscribe call): they take the same path
(``Hub.take``) and the stream does not send them. A push exchange that failed
may have lost such batches, so its rooms are caught up from the log
(``Hub.lost``). A batch that arrives both ways (after a reconnect) is dropped by
the seq checks like any other old batch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

import grpc
from accord.api.sync.v1 import sync_pb2 as spb
from accord.common.tasks import spawn, until_set
from accord.edge import metrics
from accord.edge.feed import Feed
from accord.edge.protocol import ChangesOut, Out

log = logging.getLogger(__name__)


def after(
    position: int, changes: list[spb.CommittedChange]
) -> tuple[list[spb.CommittedChange], int]:
    """What of ``changes`` (in seq order) is news at ``position``: the changes after it,
    and the seq up to which the log must fill a gap before them (0: no gap).

    The one rule of the room's stream (``Room.accept``), of a subscriber that read
    ahead of it (``Room.dispatch``) and of a catch-up's buffer (``Hub.catch_up``).
    Sync's own stream (``RoomStream._ordered``) applies the same rule but awaits its
    backfill inline, one room message at a time, where these queue behind it.
    """
    fresh = (
        changes
        if changes and changes[0].seq > position
        else [c for c in changes if c.seq > position]
    )
    if not fresh:
        return fresh, 0
    return fresh, fresh[0].seq - 1 if fresh[0].seq > position + 1 else 0


class SyncSource(Protocol):
    """What the hub needs of sync (``backends.SyncClient``; a fake in unit tests)."""

    def subscribe(self, requests: Any) -> Any: ...

    def pull(
        self, room: str, since: int, until: int = 0, changes_only: bool = False, epoch: str = ""
    ) -> AsyncIterator[spb.PullResponse]: ...

    async def pull_changes(
        self, room: str, since: int, until: int = 0, epoch: str = ""
    ) -> list[spb.CommittedChange]: ...


class Subscriber(Protocol):
    @property
    def session_id(self) -> str: ...

    def send(self, out: Out) -> None: ...


class Subscription:
    __slots__ = ("buffer", "closed", "epoch", "live", "position", "room", "session")

    def __init__(self, room: Room, session: Subscriber) -> None:
        self.room = room
        self.session = session
        self.position = 0
        self.epoch = ""  # the epoch the subscriber was last told (subscribed or snapshot)
        self.live = False
        self.closed = False
        self.buffer: list[spb.CommittedChange] = []


class Room:
    def __init__(self, hub: Hub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.subs: set[Subscription] = set()
        self.position: int | None = None
        self.epoch = ""  # as the stream last confirmed the room
        self.confirmed = asyncio.Event()
        self.backfilling = False
        self.recheck_owed = False
        self.pending: list[list[spb.CommittedChange]] = []

    def accept(self, changes: list[spb.CommittedChange]) -> None:
        if self.backfilling:
            self.pending.append(changes)
            return
        if self.position is not None:
            changes, gap = after(self.position, changes)
            if not changes:
                return
            if gap:
                self.pending.append(changes)
                self.start_backfill(gap)
                return
        self.dispatch(changes)

    def start_backfill(self, until: int) -> None:
        if self.position is None or self.backfilling:
            return
        self.backfilling = True
        metrics.GAP_BACKFILLS.inc()
        spawn(self._backfill(self.position, until))

    async def _backfill(self, since: int, until: int) -> None:
        try:
            changes = await self.hub.sync.pull_changes(self.name, since, until, self.epoch)
            if changes:
                self.dispatch(changes)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.OUT_OF_RANGE:
                # The gap fell off the compacted log (or the room's epoch is no
                # longer ours): every subscriber catches up again from its
                # position, which gets it a snapshot.
                log.warning(
                    "room %s: (%d, %d] was compacted; resyncing (or the room's epoch changed)",
                    self.name,
                    since,
                    until,
                )
                self.resync_all()
            else:  # the next batch or reconnect retries
                log.warning(
                    "backfill of room %s (%d, %d] failed: %s", self.name, since, until, error
                )
        except Exception as error:  # the next batch or reconnect retries
            log.warning("backfill of room %s (%d, %d] failed: %s", self.name, since, until, error)
        finally:
            self.backfilling = False
            pending, self.pending = self.pending, []
            for batch in pending:
                self.accept(batch)
            if self.recheck_owed and not self.backfilling:
                self.recheck()

    def recheck(self) -> None:
        """Bring the room up to the log's head (after a backfill under way, if one is)."""
        if self.backfilling:
            self.recheck_owed = True
            return
        self.recheck_owed = False
        self.start_backfill(0)

    def resync_all(self) -> None:
        self.position = None
        self.pending.clear()
        for sub in self.subs:
            if sub.live:
                sub.live = False
                sub.buffer.clear()
                spawn(self.hub.resync(sub))

    def dispatch(self, changes: list[spb.CommittedChange]) -> None:
        first, last = changes[0].seq, changes[-1].seq
        self.position = last
        out = ChangesOut(self.name, changes)
        now_us = time.time() * 1e6
        metrics.FANOUT_LATENCY.observe(max(0.0, (now_us - changes[-1].ts) / 1e6))
        for sub in self.subs:
            if not sub.live:
                sub.buffer.extend(changes)
            elif sub.position == first - 1:
                sub.session.send(out)
                sub.position = last
            elif sub.position < last:
                # A subscriber whose catch-up read further than the stream has reached.
                rest, gap = after(sub.position, changes)
                if not gap:
                    sub.session.send(ChangesOut(self.name, rest))
                    sub.position = last
                else:
                    log.error(
                        "subscriber of %s at %d cannot take %d..%d",
                        self.name,
                        sub.position,
                        first,
                        last,
                    )


async def _named(
    subscriber: str, requests: AsyncIterator[spb.SubscribeRequest]
) -> AsyncIterator[spb.SubscribeRequest]:
    """``requests``, the first one carrying ``subscriber``."""
    async for request in requests:
        if subscriber:
            request.subscriber, subscriber = subscriber, ""
        yield request


class Hub:
    def __init__(self, sync: SyncSource, confirm_timeout: float) -> None:
        self.sync = sync
        self.confirm_timeout = confirm_timeout
        self.rooms: dict[str, Room] = {}
        self.subscriber = ""
        """The id of the current Subscribe call (``SubscribeRequest.subscriber``)."""
        self.feed: Feed[spb.SubscribeResponse] = Feed(
            "sync",
            self._subscribe,
            lambda add, remove: spb.SubscribeRequest(add=add, remove=remove, batched=True),
            self._on_message,
            self._on_reconnect,
        )

    async def __aenter__(self) -> Hub:
        await self.feed.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.feed.__aexit__(*exc)

    def _subscribe(self, requests: AsyncIterator[spb.SubscribeRequest]) -> Any:
        """Open a Subscribe call with a fresh id, sent on its first request."""
        subscriber = self.subscriber = secrets.token_urlsafe(18)
        return self.sync.subscribe(_named(subscriber, requests))

    def take(self, batches: Sequence[spb.ChangeBatch]) -> None:
        """Batches sync answered a push with instead of sending them on the stream."""
        for batch in batches:
            if batch.changes:
                self._on_batch(batch)

    def lost(self, rooms: Sequence[str]) -> None:
        """A push exchange failed: batches of ``rooms`` it may have been answered with are
        read from the log."""
        for name in dict.fromkeys(rooms):
            room = self.rooms.get(name)
            if room is not None and room.position is not None:
                room.recheck()

    def _on_message(self, message: spb.SubscribeResponse) -> None:
        if message.HasField("changes"):
            self._on_batch(message.changes)
        for batch in message.batches:
            self._on_batch(batch)

    def _on_batch(self, batch: spb.ChangeBatch) -> None:
        room = self.rooms.get(batch.room)
        if room is None:
            return
        if not batch.changes:
            # The stream confirms each added room with an empty batch: from here
            # on nothing committed to the room can miss this edge.
            changed = bool(room.epoch) and batch.epoch != room.epoch
            room.epoch = batch.epoch
            room.confirmed.set()
            if room.position is None:
                return
            if changed:
                # Another history (a restore and `accord epoch renew`): what was
                # dispatched belongs to the old one.
                log.warning("room %s has a new epoch; resyncing its subscribers", room.name)
                room.resync_all()
            else:
                room.start_backfill(0)
            return
        room.accept(list(batch.changes))

    async def _on_reconnect(self) -> None:
        for room in self.rooms.values():
            room.confirmed.clear()

    def open(self, name: str, session: Subscriber) -> Subscription:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(self, name)
            metrics.ROOMS.set(len(self.rooms))
            self.feed.add(name)
        sub = Subscription(room, session)
        room.subs.add(sub)
        return sub

    def close(self, sub: Subscription) -> None:
        sub.closed = True
        room = sub.room
        room.subs.discard(sub)
        if not room.subs and self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            metrics.ROOMS.set(len(self.rooms))
            self.feed.remove(room.name)

    async def resync(self, sub: Subscription) -> None:
        try:
            await self.catch_up(sub, sub.position, sub.epoch, lambda head, epoch: None)
        except Exception:
            log.exception("resync of a subscriber of %s failed", sub.room.name)

    async def catch_up(
        self, sub: Subscription, since: int, epoch: str, on_head: Callable[[int, str], None]
    ) -> None:
        """Send ``sub`` what it missed since ``since`` (read under ``epoch``; "": not
        checked), then turn it live.

        ``on_head(head, epoch)`` is called once the head and the room's epoch are
        known (to send ``subscribed``) before any snapshot or change is sent.
        """
        room = sub.room
        await until_set(room.confirmed, self.confirm_timeout)
        if (
            since == room.position
            and epoch in ("", room.epoch)
            and not room.backfilling
            and not room.pending
        ):
            # Live here and the client has everything dispatched so far (an empty
            # room and a new client, or a reconnect with nothing missed): no Pull.
            # Every later change reaches it from the stream, in order.
            sub.epoch = room.epoch
            on_head(since, room.epoch)
            sub.buffer.clear()
            sub.position = since
            sub.live = True
            metrics.CATCHUP_SKIPPED.inc()
            return
        head = 0
        position = since
        async for item in self.sync.pull(room.name, since, epoch=epoch):
            if sub.closed:
                return
            kind = item.WhichOneof("item")
            if kind == "head":
                head = item.head
                sub.epoch = item.epoch
                on_head(head, item.epoch)
                if room.position is None:
                    room.position = head
            elif kind == "snapshot":
                chunk = item.snapshot
                records = [
                    {"collection": r.collection, "key": r.key, "value": json.loads(r.value_json)}
                    for r in chunk.records
                ]
                sub.session.send(
                    Out(
                        {
                            "type": "snapshot",
                            "room": room.name,
                            "seq": chunk.seq,
                            "last": chunk.last,
                            "records": records,
                            "epoch": sub.epoch,
                        }
                    )
                )
                position = chunk.seq
            elif kind == "changes" and item.changes.changes:
                changes = list(item.changes.changes)
                sub.session.send(ChangesOut(room.name, changes))
                position = changes[-1].seq
        sub.position = position
        while sub.buffer and not sub.closed:
            buffered, sub.buffer = sub.buffer, []
            fresh, gap = after(sub.position, buffered)
            if not fresh:
                continue
            if gap:
                missing = await self.sync.pull_changes(room.name, sub.position, gap, sub.epoch)
                if missing:
                    sub.session.send(ChangesOut(room.name, missing))
            sub.session.send(ChangesOut(room.name, fresh))
            sub.position = fresh[-1].seq
        sub.live = True

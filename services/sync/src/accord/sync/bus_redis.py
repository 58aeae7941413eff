"""The Redis bus: ``PUBLISH {prefix}:sync:{shard}`` with a serialized ``BusMessage``.

Rooms are spread over ``shards`` channels (CRC-32 of the room name). A commit
group publishes one message per shard it touched, carrying that shard's room
batches, so a group of pushes to a thousand rooms costs a handful of messages
instead of a thousand. Each replica holds one pub/sub connection, subscribed to
the shards of the rooms it has listeners for, and hands each batch to the
room's listeners locally (batches of rooms it does not follow are skipped).
Every replica must use the same number of shards.

A replica's own commits reach its own listeners as it publishes them, not by
way of Redis: each message starts with the replica's ``origin`` (random, new at
each start), and a message coming back with this replica's own origin is passed
over without being parsed. Batches of a room committed by several replicas may
then reach a listener out of seq order; the listeners (``subscription.RoomStream``)
fill such a gap from the log and drop what they have sent already, as they do
for a batch the bus lost.

A replica publishes nothing to a shard no other replica listens to. ``PUBLISH``
answers how many connections took the message; when that was this replica's own
alone (its copy came back with the message's ``serial``) or nobody's, the shard goes
quiet: later batches of it are handed to this replica's listeners only. A replica
that subscribes to shards says so on ``{prefix}:sync:join`` (``BusMessage.joined``)
once Redis has confirmed them, and a quiet shard named there is published to again.
A quiet shard is also published to again ``QUIET_SECONDS`` after it went quiet, so a
listener that said nothing (a replica of an older version, a join Redis lost) is
found within that time at the shard's next commit. Whenever a shard this replica
skipped batches of turns out to be heard elsewhere, every replica is asked to
re-check (``on_recheck_owed``): what was skipped is in the log. ``skip_unheard=False``
(``BUS_SKIP_UNHEARD=false``) publishes everything.

Each replica also subscribes to ``{prefix}:sync:recheck`` from the start: a
message there (``request_recheck``, any payload) calls every replica's loss
listeners. When the pub/sub connection drops, the client reconnects and
subscribes to every channel again; once Redis has confirmed them all the loss
listeners are called with ``reconnected``, since whatever was published in
between reached nobody here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import redis.asyncio as aioredis
from accord.api.sync.v1 import sync_pb2 as pb
from accord.common.tasks import Backoff, spawn, stop
from accord.sync import metrics
from accord.sync.bus import Listener, LossListener, LossReason
from accord.sync.errors import Unavailable
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 5.0
POLL_SECONDS = 1.0
DEFAULT_SHARDS = 16
QUIET_SECONDS = 1.0
"""A quiet shard's next batch after this long is published again, to find listeners
that did not announce themselves on the join channel."""
_SERIAL_TAG = b"\x19"
"""``BusMessage.serial`` (field 3, fixed64) on the wire: this byte and 8 little-endian."""


class RedisBus:
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        shards: int = DEFAULT_SHARDS,
        skip_unheard: bool = True,
    ) -> None:
        self._client = client
        self._pubsub = client.pubsub()
        self._prefix = f"{prefix}:sync:"
        self._recheck_channel = f"{prefix}:sync:recheck"
        self._join_channel = f"{prefix}:sync:join"
        self._shards = shards
        self._skip_unheard = skip_unheard
        self._serial = 0
        self._quiet: dict[int, float] = {}
        """Shard -> when it went quiet: published to by nobody, as nobody else listens."""
        self._skipped: set[int] = set()
        """Quiet shards whose batches were not published since the last re-check owed."""
        self._joins = 0
        """Joins and reconnections seen: a message sent before one proves nothing after it."""
        self._probes: dict[int, tuple[int, int]] = {}
        """Shard -> (serial, joins when sent) of the last message Redis said reached one
        connection, this replica's own copy of which has not come back yet."""
        self._echoes: dict[int, int] = {}
        """Shard -> serial of this replica's last own message back before Redis answered."""
        self._recheck_owed: list[Callable[[], None]] = []
        self._announcing: asyncio.Task[None] | None = None
        self._rooms: dict[str, list[Listener]] = {}
        self._followed: dict[int, int] = {}
        """Shard -> how many of its rooms have listeners here."""
        self._ready: dict[str, asyncio.Future[None]] = {}
        """Channel -> confirmed by Redis; one entry per channel subscribed here."""
        self._resubscribing: set[str] | None = None
        """After a connection loss: the channels Redis has not confirmed again yet."""
        self._loss_listeners: list[LossListener] = []
        self._reader: asyncio.Task[None] | None = None
        self._own = pb.BusMessage(origin=os.urandom(8)).SerializeToString()
        """The start of every message this replica publishes (its ``origin`` field)."""

    @classmethod
    @asynccontextmanager
    async def open(
        cls, url: str, prefix: str, shards: int = DEFAULT_SHARDS, skip_unheard: bool = True
    ) -> AsyncIterator[RedisBus]:
        client = aioredis.from_url(url, socket_connect_timeout=5.0, health_check_interval=30)
        try:
            try:
                await client.ping()
            except (RedisError, OSError) as error:
                raise Unavailable(f"cannot reach Redis: {error}") from error
            bus = cls(client, prefix, shards, skip_unheard)
            try:
                await bus._subscribe_channels([bus._recheck_channel, bus._join_channel])
                yield bus
            finally:
                await bus._close()
        finally:
            await client.aclose()

    def shard(self, room: str) -> int:
        return zlib.crc32(room.encode()) % self._shards

    def channel(self, shard: int) -> str:
        return f"{self._prefix}{shard}"

    async def publish(self, batch: pb.ChangeBatch) -> None:
        await self.publish_many([batch])

    async def publish_many(self, batches: Sequence[pb.ChangeBatch]) -> None:
        # This replica's listeners first, whether or not Redis takes the batches.
        self._hand(batches)
        by_shard: dict[int, list[pb.ChangeBatch]] = {}
        for batch in batches:
            by_shard.setdefault(self.shard(batch.room), []).append(batch)
        quiet = self._quiet
        if quiet:
            now = time.monotonic()
            for shard in list(by_shard):
                since = quiet.get(shard)
                if since is None:
                    continue
                if now - since < QUIET_SECONDS:
                    del by_shard[shard]
                    self._skipped.add(shard)
                    metrics.BUS_UNPUBLISHED.inc()
                else:
                    del quiet[shard]  # published again: who listens now?
        if not by_shard:
            return
        own = self._own
        sent: list[tuple[int, int, bool]] = []
        messages: list[tuple[str, bytes]] = []
        for shard, group in by_shard.items():
            self._serial += 1
            channel = self.channel(shard)
            sent.append((shard, self._serial, self._following(channel)))
            # Serialized messages one after the other parse as their merge.
            messages.append(
                (
                    channel,
                    own
                    + _SERIAL_TAG
                    + self._serial.to_bytes(8, "little")
                    + pb.BusMessage(batches=group).SerializeToString(),
                )
            )
        joins = self._joins
        counts = await self._publish(messages)
        if self._skip_unheard:
            for (shard, serial, following), count in zip(sent, counts, strict=True):
                self._heard(shard, serial, following, joins, count)

    def _following(self, channel: str) -> bool:
        """Redis has confirmed this replica's subscription to ``channel``, still held."""
        ready = self._ready.get(channel)
        return ready is not None and ready.done() and self._resubscribing is None

    def _heard(self, shard: int, serial: int, following: bool, joins: int, count: int) -> None:
        """Redis answered that message ``serial`` to ``shard`` reached ``count`` connections."""
        if following != self._following(self.channel(shard)):
            return  # subscribed or unsubscribed meanwhile: the count is not telling
        others = count - 1 if following else count
        if others > 0 or count < 0:
            self._probes.pop(shard, None)
            if shard in self._skipped:
                self._owe_recheck()
            return
        if joins != self._joins:
            return  # a replica joined since the message went: it may not be counted
        if not following:
            self._go_quiet(shard)
        elif self._echoes.get(shard) == serial:
            self._go_quiet(shard)  # the one connection was this replica's own
        else:
            self._probes[shard] = (serial, joins)

    def _echo(self, shard: int, data: bytes) -> None:
        """This replica's own message ``data`` came back on ``shard``'s channel."""
        start = len(self._own)
        if data[start : start + 1] != _SERIAL_TAG:
            return
        serial = int.from_bytes(data[start + 1 : start + 9], "little")
        probe = self._probes.get(shard)
        if probe is None:
            self._echoes[shard] = serial
        elif probe == (serial, self._joins):
            del self._probes[shard]
            self._go_quiet(shard)

    def _go_quiet(self, shard: int) -> None:
        self._quiet[shard] = time.monotonic()
        self._echoes.pop(shard, None)

    def _joined(self, shards: Sequence[int]) -> None:
        """Another replica subscribed to ``shards`` (or this one reconnected: ``shards``
        is every shard): publish to them again."""
        self._joins += 1
        owed = False
        for shard in shards:
            self._quiet.pop(shard, None)
            self._probes.pop(shard, None)
            self._echoes.pop(shard, None)
            owed = owed or shard in self._skipped
        if owed:
            self._owe_recheck()

    def _owe_recheck(self) -> None:
        """Batches of a quiet shard were not published and someone listens there: every
        replica re-checks its subscribers against the log (which holds them)."""
        self._skipped.clear()
        log.info("a shard this replica did not publish to has listeners now; asking for a re-check")
        for listener in list(self._recheck_owed):
            try:
                listener()
            except Exception:
                log.exception("bus re-check listener failed")

    def on_recheck_owed(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when batches this bus did not publish (nobody else listened)
        may be wanted after all: it should ask every replica to re-check."""
        self._recheck_owed.append(listener)

    async def _publish(self, messages: list[tuple[str, bytes]]) -> list[int]:
        """PUBLISH each (channel, payload) in one round trip; how many connections took
        each. Once more when Redis had closed the pooled connection (a restart): a batch
        that arrives twice is dropped by its seqs."""
        for attempt in (1, 2):
            try:
                if len(messages) == 1:
                    return [_count(await self._client.publish(*messages[0]))]
                async with self._client.pipeline(transaction=False) as pipe:
                    for channel, payload in messages:
                        pipe.publish(channel, payload)
                    return [_count(count) for count in await pipe.execute()]
            except RedisConnectionError as error:
                if attempt == 2:
                    raise Unavailable(f"cannot publish to Redis: {error}") from error
            except (RedisError, OSError) as error:
                raise Unavailable(f"cannot publish to Redis: {error}") from error
        raise AssertionError("unreachable")

    async def subscribe(self, room: str, listener: Listener) -> None:
        await self.subscribe_many([room], listener)

    async def subscribe_many(self, rooms: Sequence[str], listener: Listener) -> None:
        shards: set[int] = set()
        for room in dict.fromkeys(rooms):
            listeners = self._rooms.get(room)
            if listeners is None:
                listeners = self._rooms[room] = []
                shard = self.shard(room)
                self._followed[shard] = self._followed.get(shard, 0) + 1
            if listener not in listeners:
                listeners.append(listener)
            shards.add(self.shard(room))
        await self._subscribe_channels([self.channel(shard) for shard in sorted(shards)])

    async def _subscribe_channels(self, channels: list[str]) -> None:
        """Subscribe to those of ``channels`` not subscribed yet; wait for all to be confirmed."""
        new = [channel for channel in channels if channel not in self._ready]
        for channel in new:
            self._ready[channel] = asyncio.get_running_loop().create_future()
        if new:
            try:
                await self._pubsub.subscribe(*new)
            except (RedisError, OSError) as error:
                for channel in new:
                    self._ready.pop(channel, None)
                raise Unavailable(f"cannot subscribe on Redis: {error}") from error
            if self._reader is None:
                self._reader = asyncio.create_task(self._read(), name="redis-bus-reader")
        waiting = [(channel, self._ready[channel]) for channel in channels]
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                for _, ready in waiting:
                    await asyncio.shield(ready)
        except TimeoutError:
            pending = [channel for channel, ready in waiting if not ready.done()]
            raise Unavailable(
                f"Redis did not confirm the subscription to channel {pending[0]}"
                + (f" and {len(pending) - 1} more" if len(pending) > 1 else "")
            ) from None
        await self._announce([channel for channel in new if channel in self._ready])

    def _shard_of(self, channel: str) -> int | None:
        suffix = channel[len(self._prefix) :]
        return int(suffix) if channel.startswith(self._prefix) and suffix.isdigit() else None

    async def _announce(self, channels: Sequence[str]) -> None:
        """Tell the other replicas that this one listens on ``channels`` now (the join
        channel), so that they publish there again. Not sent, they find out within
        ``QUIET_SECONDS`` of their next batch there, and the re-check owed then brings
        what they skipped."""
        shards = [shard for shard in map(self._shard_of, channels) if shard is not None]
        if not shards:
            return
        payload = self._own + pb.BusMessage(joined=shards).SerializeToString()
        try:
            await self._publish([(self._join_channel, payload)])
        except Unavailable as error:
            log.warning("cannot tell the other replicas about %d shards: %s", len(shards), error)

    async def unsubscribe(self, room: str, listener: Listener) -> None:
        listeners = self._rooms.get(room)
        if not listeners or listener not in listeners:
            return
        listeners.remove(listener)
        if listeners:
            return
        del self._rooms[room]
        shard = self.shard(room)
        self._followed[shard] -= 1
        if self._followed[shard]:
            return
        del self._followed[shard]
        self._ready.pop(self.channel(shard), None)
        self._confirmed(self.channel(shard))
        try:
            await self._pubsub.unsubscribe(self.channel(shard))
        except (RedisError, OSError) as error:
            log.warning("cannot unsubscribe from %s: %s", self.channel(shard), error)

    def on_loss(self, listener: LossListener) -> None:
        self._loss_listeners.append(listener)

    async def request_recheck(self) -> None:
        await self._publish([(self._recheck_channel, b"")])

    def _lost(self, reason: LossReason) -> None:
        for listener in list(self._loss_listeners):
            try:
                listener(reason)
            except Exception:
                log.exception("bus loss listener failed")

    async def _read(self) -> None:
        backoff = Backoff(0.1, 2.0)
        while True:
            try:
                message = await self._pubsub.get_message(timeout=POLL_SECONDS)
            except (RedisError, OSError) as error:
                if self._resubscribing is None:
                    log.warning("redis bus connection lost, retrying: %s", error)
                # Whatever was published until every channel is subscribed again is lost.
                self._resubscribing = set(self._ready)
                await backoff.wait()
                continue
            backoff.reset()
            if message is not None:
                self._dispatch(message)

    def _confirmed(self, channel: str) -> None:
        """``channel`` is subscribed (again), or no longer wanted."""
        pending = self._resubscribing
        if pending is None:
            return
        pending.discard(channel)
        if not pending:
            self._resubscribing = None
            log.info("redis bus subscriptions restored; re-checking subscribers")
            # Joins may have gone by meanwhile; and the others, while this replica was
            # away, may have stopped publishing to the shards it follows.
            self._joined(range(self._shards))
            self._lost("reconnected")
            self._announcing = spawn(self._announce(list(self._ready)), name="redis-bus-announce")

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if message["type"] == "subscribe":
            ready = self._ready.get(name)
            if ready is not None and not ready.done():
                ready.set_result(None)
            self._confirmed(name)
            return
        if message["type"] != "message":
            return
        if name == self._recheck_channel:
            self._lost("requested")
            return
        data = message["data"]
        if name == self._join_channel:
            if not data.startswith(self._own):
                try:
                    joined: Sequence[int] = pb.BusMessage.FromString(data).joined
                except Exception:
                    log.exception("undecodable join message")
                    joined = range(self._shards)  # whatever it meant: publish again
                self._joined([shard for shard in joined if shard < self._shards])
            return
        if data.startswith(self._own):
            # This replica's own: handed to its listeners when it was published.
            shard = self._shard_of(name) if self._skip_unheard else None
            if shard is not None:
                self._echo(shard, data)
            return
        try:
            batches = pb.BusMessage.FromString(data).batches
        except Exception:
            log.exception("undecodable bus message on %s", name)
            return
        self._hand(batches)

    def _hand(self, batches: Sequence[pb.ChangeBatch]) -> None:
        """Each batch to its room's listeners here."""
        rooms = self._rooms
        for batch in batches:
            listeners = rooms.get(batch.room)
            if not listeners:
                continue
            for listener in list(listeners):
                try:
                    listener(batch)
                except Exception:
                    log.exception("bus listener failed for room %s", batch.room)

    async def _close(self) -> None:
        await stop(self._announcing)
        await stop(self._reader)
        with suppress(RedisError, OSError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8.2


def _count(answer: object) -> int:
    """PUBLISH's answer, the number of connections that took the message; -1: unknown."""
    return answer if isinstance(answer, int) else -1

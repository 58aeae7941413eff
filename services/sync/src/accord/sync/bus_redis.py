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
import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import redis.asyncio as aioredis
from accord.api.sync.v1 import sync_pb2 as pb
from accord.common.tasks import Backoff
from accord.sync.bus import Listener, LossListener, LossReason
from accord.sync.errors import Unavailable
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 5.0
POLL_SECONDS = 1.0
DEFAULT_SHARDS = 16


class RedisBus:
    def __init__(self, client: aioredis.Redis, prefix: str, shards: int = DEFAULT_SHARDS) -> None:
        self._client = client
        self._pubsub = client.pubsub()
        self._prefix = f"{prefix}:sync:"
        self._recheck_channel = f"{prefix}:sync:recheck"
        self._shards = shards
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
        cls, url: str, prefix: str, shards: int = DEFAULT_SHARDS
    ) -> AsyncIterator[RedisBus]:
        client = aioredis.from_url(url, socket_connect_timeout=5.0, health_check_interval=30)
        try:
            try:
                await client.ping()
            except (RedisError, OSError) as error:
                raise Unavailable(f"cannot reach Redis: {error}") from error
            bus = cls(client, prefix, shards)
            try:
                await bus._subscribe_channels([bus._recheck_channel])
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
        own = self._own
        await self._publish(
            [
                # Two serialized messages, one after the other, parse as their merge.
                (self.channel(shard), own + pb.BusMessage(batches=group).SerializeToString())
                for shard, group in by_shard.items()
            ]
        )

    async def _publish(self, messages: list[tuple[str, bytes]]) -> None:
        """PUBLISH each (channel, payload) in one round trip. Once more when Redis had closed
        the pooled connection (a restart): a batch that arrives twice is dropped by its seqs."""
        for attempt in (1, 2):
            try:
                if len(messages) == 1:
                    await self._client.publish(*messages[0])
                    return
                async with self._client.pipeline(transaction=False) as pipe:
                    for channel, payload in messages:
                        pipe.publish(channel, payload)
                    await pipe.execute()
                return
            except RedisConnectionError as error:
                if attempt == 2:
                    raise Unavailable(f"cannot publish to Redis: {error}") from error
            except (RedisError, OSError) as error:
                raise Unavailable(f"cannot publish to Redis: {error}") from error

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
            self._lost("reconnected")

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
        if data.startswith(self._own):
            return  # this replica's own: handed to its listeners when it was published
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
        if self._reader is not None:
            self._reader.cancel()
            with suppress(asyncio.CancelledError):
                await self._reader
        with suppress(RedisError, OSError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

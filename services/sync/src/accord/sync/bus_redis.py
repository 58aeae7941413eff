"""The Redis bus: ``PUBLISH {prefix}:sync:{room}`` with the serialized ChangeBatch.

Each replica holds one pub/sub connection, subscribed to the channels of the
rooms it has listeners for, and fans messages out to those listeners locally.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import redis.asyncio as aioredis
from accord.api.sync.v1 import sync_pb2 as pb
from accord.sync.bus import Listener
from accord.sync.errors import Unavailable
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 5.0
POLL_SECONDS = 1.0


class RedisBus:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._pubsub = client.pubsub()
        self._prefix = f"{prefix}:sync:"
        self._rooms: dict[str, list[Listener]] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, prefix: str) -> AsyncIterator[RedisBus]:
        client = aioredis.from_url(url, socket_connect_timeout=5.0, health_check_interval=30)
        try:
            try:
                await client.ping()
            except (RedisError, OSError) as error:
                raise Unavailable(f"cannot reach Redis: {error}") from error
            bus = cls(client, prefix)
            try:
                yield bus
            finally:
                await bus._close()
        finally:
            await client.aclose()

    def channel(self, room: str) -> str:
        return self._prefix + room

    async def publish(self, batch: pb.ChangeBatch) -> None:
        try:
            await self._client.publish(self.channel(batch.room), batch.SerializeToString())
        except (RedisError, OSError) as error:
            raise Unavailable(f"cannot publish to Redis: {error}") from error

    async def publish_many(self, batches: Sequence[pb.ChangeBatch]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for batch in batches:
                    pipe.publish(self.channel(batch.room), batch.SerializeToString())
                await pipe.execute()
        except (RedisError, OSError) as error:
            raise Unavailable(f"cannot publish to Redis: {error}") from error

    async def subscribe(self, room: str, listener: Listener) -> None:
        await self.subscribe_many([room], listener)

    async def subscribe_many(self, rooms: Sequence[str], listener: Listener) -> None:
        waiting: list[tuple[str, asyncio.Future[None]]] = []
        new: list[str] = []
        for room in dict.fromkeys(rooms):
            listeners = self._rooms.setdefault(room, [])
            if listener not in listeners:
                listeners.append(listener)
            ready = self._ready.get(room)
            if ready is None:
                ready = self._ready[room] = asyncio.get_running_loop().create_future()
                new.append(room)
            waiting.append((room, ready))
        if new:
            try:
                await self._pubsub.subscribe(*(self.channel(room) for room in new))
            except (RedisError, OSError) as error:
                for room in new:
                    self._ready.pop(room, None)
                raise Unavailable(f"cannot subscribe on Redis: {error}") from error
            if self._reader is None:
                self._reader = asyncio.create_task(self._read(), name="redis-bus-reader")
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                for _, ready in waiting:
                    await asyncio.shield(ready)
        except TimeoutError:
            pending = [room for room, ready in waiting if not ready.done()]
            raise Unavailable(
                f"Redis did not confirm the subscription to {pending[0]}"
                + (f" and {len(pending) - 1} more rooms" if len(pending) > 1 else "")
            ) from None

    async def unsubscribe(self, room: str, listener: Listener) -> None:
        listeners = self._rooms.get(room)
        if not listeners or listener not in listeners:
            return
        listeners.remove(listener)
        if listeners:
            return
        del self._rooms[room]
        self._ready.pop(room, None)
        try:
            await self._pubsub.unsubscribe(self.channel(room))
        except (RedisError, OSError) as error:
            log.warning("cannot unsubscribe from %s: %s", room, error)

    async def _read(self) -> None:
        backoff = 0.1
        while True:
            try:
                message = await self._pubsub.get_message(timeout=POLL_SECONDS)
            except (RedisError, OSError) as error:
                log.warning("redis bus connection lost, retrying: %s", error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.1
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        room = name.removeprefix(self._prefix)
        if message["type"] == "subscribe":
            ready = self._ready.get(room)
            if ready is not None and not ready.done():
                ready.set_result(None)
            return
        if message["type"] != "message":
            return
        try:
            batch = pb.ChangeBatch.FromString(message["data"])
        except Exception:
            log.exception("undecodable batch on %s", name)
            return
        for listener in list(self._rooms.get(room, ())):
            try:
                listener(batch)
            except Exception:
                log.exception("bus listener failed for room %s", room)

    async def _close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with suppress(asyncio.CancelledError):
                await self._reader
        with suppress(RedisError, OSError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

"""The shared store: presence in Redis, events across replicas over pub/sub.

Keys, all under ``{prefix}:presence:``:

- ``room:{room}``      hash  session id → peer JSON
- ``members:{room}``   zset  session ids at score 0, so List pages by lex cursor
- ``session:{id}``     set   the rooms a session is in
- ``sessions``         hash  session id → edge id (every known session)
- ``deadlines``        zset  session id → expiry time (Redis clock, ms)
- ``users:{room}``     hash  user key → the user's sessions in the room
- ``session_users``    hash  session id → user key (every known session)
- ``users``            hash  user key → the user's sessions (in any room)

(The user key is :func:`~accord.presence.model.user_key`.)

Each change is one Lua script: it checks, writes, and publishes the resulting
event on ``{prefix}:presence:{room}`` atomically, so events leave in the order
the changes happened and the sweep that claims an expired session is the only
one that publishes its ``leave (timeout)``, however many replicas sweep. The
scripts use the Redis server's clock, so replicas need not agree on time. They
build key names from the prefix rather than taking them in ``KEYS``: fine on a
single Redis (or a primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

import redis.asyncio as aioredis
from accord.common.tasks import Backoff
from accord.presence import store_redis_lua as lua
from accord.presence.codec import CodecError, decode_event, decode_peer, encode_event, encode_peer
from accord.presence.hub import Hub, Subscription
from accord.presence.model import (
    Counts,
    Event,
    EventKind,
    LeaveReason,
    NotPresent,
    Page,
    Peer,
    TooManyRooms,
    UserMismatch,
    broadcast_event,
    join_event,
    user_key,
)
from accord.presence.store import Changed, StoreUnavailable, ignore_changes
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

HEARTBEAT_CHUNK = 1000
SWEEP_BATCH = 500
# Bounds pub/sub commands so that no Watch set-up or teardown waits forever.
COMMAND_TIMEOUT = 5.0


def _decoded(texts: Sequence[str]) -> list[Event]:
    """The events a script returned (as it published them); malformed ones skipped."""
    events = []
    for text in texts:
        try:
            events.append(decode_event(text))
        except CodecError:
            log.warning("ignoring a malformed presence event a script returned")
    return events


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as error:
        raise StoreUnavailable(f"redis: {error}") from error


class _Channels:
    """This replica's pub/sub connection: one channel per locally watched room."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._pubsub = client.pubsub()
        self._prefix = prefix
        self.hub = Hub(self)
        # A channel that is never published to keeps the connection subscribed
        # (and so readable) while no room is watched; '~' is not a room char.
        self._idle_channel = prefix + "~"
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        # PubSub connects lazily on its first command; two concurrent first
        # commands would each open a connection, and one would go unread.
        self._commands = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="presence-pubsub")

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8.2
        except TimeoutError:
            log.warning("presence pub/sub connection did not close in time")

    async def subscribe(self, rooms: Sequence[str]) -> None:
        channels = [self._prefix + room for room in rooms]
        loop = asyncio.get_running_loop()
        confirmations = [loop.create_future() for _ in channels]
        self._confirmations.update(zip(channels, confirmations, strict=True))
        try:
            with _unavailable():
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    async with self._commands:
                        await self._pubsub.subscribe(*channels)
                    # Events published before Redis confirms would not reach us.
                    for confirmed in confirmations:
                        await confirmed
        finally:
            for channel in channels:
                self._confirmations.pop(channel, None)

    async def unsubscribe(self, room: str) -> None:
        with _unavailable():
            async with asyncio.timeout(COMMAND_TIMEOUT), self._commands:
                await self._pubsub.unsubscribe(self._prefix + room)

    async def _read(self) -> None:
        backoff = Backoff(0.1, 5.0)
        while True:
            try:
                if not self._pubsub.subscribed:
                    async with self._commands:
                        await self._pubsub.subscribe(self._idle_channel)
                message = await self._pubsub.get_message(timeout=None)
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                log.warning("presence pub/sub connection lost (%s); retrying", error)
                # Events published while disconnected are gone: watchers must
                # start over (watch again, list again) rather than miss them.
                self.hub.fail_all(StoreUnavailable(f"redis pub/sub lost: {error}"))
                await backoff.wait()
                continue
            backoff.reset()
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "subscribe":
            confirmed = self._confirmations.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
        elif kind == "message":
            try:
                event = decode_event(message["data"])
            except CodecError:
                log.warning("ignoring malformed presence event on %s", channel)
                return
            self.hub.deliver(event)


class RedisStore:
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        ttl: float,
        max_rooms: int,
        changed: Changed = ignore_changes,
    ) -> None:
        self._client = client
        self._changed = changed
        self._p = f"{prefix}:presence:"
        self._ttl_ms = max(1, round(ttl * 1000))
        self._max_rooms = max_rooms
        self._join = client.register_script(lua.COMMON + lua.JOIN)
        self._update = client.register_script(lua.COMMON + lua.UPDATE)
        self._leave = client.register_script(lua.COMMON + lua.LEAVE)
        self._heartbeat = client.register_script(lua.COMMON + lua.HEARTBEAT)
        self._sweep = client.register_script(lua.COMMON + lua.SWEEP)
        self._list = client.register_script(lua.LIST)
        self._counts = client.register_script(lua.COUNTS)
        self._channels = _Channels(client, self._p)

    def start(self) -> None:
        self._channels.start()

    async def aclose(self) -> None:
        await self._channels.aclose()

    async def join(self, room: str, peer: Peer, edge_id: str) -> Event:
        args = [self._p, room, peer.session_id, encode_peer(peer), edge_id]
        with _unavailable():
            outcome = await self._join(args=[*args, self._ttl_ms, self._max_rooms, user_key(peer)])
        if outcome == 0:
            raise TooManyRooms(f"session {peer.session_id} is already in {self._max_rooms} rooms")
        if outcome == -1:
            raise UserMismatch(f"session {peer.session_id} is present as another user")
        event = join_event(room, peer, rejoined=outcome == 2)
        self._changed([event])
        return event

    async def update(self, room: str, session_id: str, state_json: str) -> Event:
        with _unavailable():
            text = await self._update(args=[self._p, room, session_id, state_json, self._ttl_ms])
        if text is None:
            raise NotPresent(f"session {session_id} is not in room {room}")
        event = Event(room, EventKind.UPDATE, decode_peer(text))
        self._changed([event])
        return event

    async def update_many(
        self, updates: Sequence[tuple[str, str, str]]
    ) -> list[Event | NotPresent]:
        if not updates:
            return []
        with _unavailable():
            async with self._client.pipeline(transaction=False) as pipe:
                for room, session_id, state_json in updates:
                    await self._update(
                        args=[self._p, room, session_id, state_json, self._ttl_ms], client=pipe
                    )
                texts = await pipe.execute()
        results: list[Event | NotPresent] = []
        for (room, session_id, _), text in zip(updates, texts, strict=True):
            if text is None:
                results.append(NotPresent(f"session {session_id} is not in room {room}"))
            else:
                results.append(Event(room, EventKind.UPDATE, decode_peer(text)))
        self._changed([r for r in results if isinstance(r, Event)])
        return results

    async def leave(self, session_id: str, room: str | None, reason: LeaveReason) -> list[str]:
        with _unavailable():
            rooms, left = await self._leave(args=[self._p, session_id, room or "", reason.value])
        self._changed(_decoded(left))
        return [str(r) for r in rooms]

    async def heartbeat(self, edge_id: str, session_ids: Sequence[str]) -> list[str]:
        unknown: list[str] = []
        for start in range(0, len(session_ids), HEARTBEAT_CHUNK):
            chunk = session_ids[start : start + HEARTBEAT_CHUNK]
            with _unavailable():
                found = await self._heartbeat(args=[self._p, edge_id, self._ttl_ms, *chunk])
            unknown.extend(str(sid) for sid in found)
        return unknown

    async def list(self, room: str, limit: int, cursor: str) -> Page:
        with _unavailable():
            count, next_cursor, texts, users = await self._list(args=[self._p, room, cursor, limit])
        peers = tuple(decode_peer(text) for text in texts if text is not None)
        return Page(peers, str(next_cursor), int(count), int(users))

    async def counts(self, room: str) -> Counts:
        with _unavailable():
            sessions, users = await self._counts(args=[self._p, room])
        return Counts(int(sessions), int(users))

    async def broadcast(
        self, room: str, from_session_id: str, data_json: str, channel: str = ""
    ) -> None:
        event = broadcast_event(room, from_session_id, data_json, channel)
        with _unavailable():
            await self._client.publish(self._p + room, encode_event(event))

    async def sweep(self) -> tuple[int, int]:
        sessions = leaves = 0
        while True:
            with _unavailable():
                expired, count, left = await self._sweep(args=[self._p, SWEEP_BATCH])
            self._changed(_decoded(left))
            sessions += int(expired)
            leaves += int(count)
            if int(expired) < SWEEP_BATCH:
                return sessions, leaves

    async def count_sessions(self) -> int:
        with _unavailable():
            return int(await self._client.hlen(self._p + "sessions"))

    async def count_users(self) -> int:
        with _unavailable():
            return int(await self._client.hlen(self._p + "users"))

    def subscription(self, max_queue: int) -> AbstractAsyncContextManager[Subscription]:
        return self._channels.hub.subscription(max_queue)


@asynccontextmanager
async def open_redis_store(
    url: str, prefix: str, ttl: float, max_rooms: int, changed: Changed = ignore_changes
) -> AsyncIterator[RedisStore]:
    client = aioredis.from_url(
        url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=5.0
    )
    store = RedisStore(client, prefix, ttl, max_rooms, changed)
    store.start()
    try:
        yield store
    finally:
        await store.aclose()
        await client.aclose()

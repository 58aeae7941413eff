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

# Helpers prepended to every script that changes presence.
_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function event(room, kind, peer, reason)
  local text = '{"room":' .. cjson.encode(room) .. ',"kind":"' .. kind .. '"'
  if peer then text = text .. ',"peer":' .. peer end
  if reason then text = text .. ',"reason":"' .. reason .. '"' end
  return text .. '}'
end
local function remove(p, sid, room, reason)
  local room_key = p .. 'room:' .. room
  local peer = redis.call('HGET', room_key, sid)
  redis.call('HDEL', room_key, sid)
  redis.call('ZREM', p .. 'members:' .. room, sid)
  redis.call('SREM', p .. 'session:' .. sid, room)
  if not peer then return nil end
  local left = event(room, 'leave', peer, reason)
  redis.call('PUBLISH', p .. room, left)
  local user = redis.call('HGET', p .. 'session_users', sid)
  local users_key = p .. 'users:' .. room
  if user and redis.call('HINCRBY', users_key, user, -1) <= 0 then
    redis.call('HDEL', users_key, user)
    redis.call('PUBLISH', p .. room, event(room, 'user_offline', peer, reason))
  end
  return left
end
local function forget(p, sid)
  local user = redis.call('HGET', p .. 'session_users', sid)
  if user and redis.call('HINCRBY', p .. 'users', user, -1) <= 0 then
    redis.call('HDEL', p .. 'users', user)
  end
  redis.call('HDEL', p .. 'session_users', sid)
  redis.call('DEL', p .. 'session:' .. sid)
  redis.call('HDEL', p .. 'sessions', sid)
  redis.call('ZREM', p .. 'deadlines', sid)
end
"""

# ARGV: prefix, room, session id, peer JSON, edge id, ttl ms, max rooms, user key.
# Returns 1 joined, 2 re-joined (state replaced), 0 too many rooms, -1 another user's session.
_JOIN = """
local p, room, sid, peer, edge = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ttl, max_rooms, user = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local room_key = p .. 'room:' .. room
local session_key = p .. 'session:' .. sid
local known = redis.call('HGET', p .. 'session_users', sid)
if known and known ~= user then return -1 end
local rejoined = redis.call('HEXISTS', room_key, sid) == 1
if not rejoined and redis.call('SCARD', session_key) >= max_rooms then return 0 end
redis.call('HSET', room_key, sid, peer)
redis.call('ZADD', p .. 'members:' .. room, 0, sid)
redis.call('SADD', session_key, room)
redis.call('HSET', p .. 'sessions', sid, edge)
redis.call('ZADD', p .. 'deadlines', now_ms() + ttl, sid)
if not known then
  redis.call('HSET', p .. 'session_users', sid, user)
  redis.call('HINCRBY', p .. 'users', user, 1)
end
if rejoined then
  redis.call('PUBLISH', p .. room, event(room, 'update', peer, nil))
  return 2
end
redis.call('PUBLISH', p .. room, event(room, 'join', peer, nil))
if redis.call('HINCRBY', p .. 'users:' .. room, user, 1) == 1 then
  redis.call('PUBLISH', p .. room, event(room, 'user_online', peer, nil))
end
return 1
"""

# ARGV: prefix, room, session id, state JSON, ttl ms. Returns the new peer JSON or nil.
_UPDATE = """
local p, room, sid, state, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local room_key = p .. 'room:' .. room
local text = redis.call('HGET', room_key, sid)
if not text then return false end
local peer = cjson.decode(text)
peer['state'] = state
text = cjson.encode(peer)
redis.call('HSET', room_key, sid, text)
redis.call('ZADD', p .. 'deadlines', now_ms() + ttl, sid)
redis.call('PUBLISH', p .. room, event(room, 'update', text, nil))
return text
"""

# ARGV: prefix, session id, room ('' for every room), reason.
# Returns {the rooms left, their leave events}.
_LEAVE = """
local p, sid, room, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local session_key = p .. 'session:' .. sid
local rooms = {}
if room == '' then
  rooms = redis.call('SMEMBERS', session_key)
  table.sort(rooms)
elseif redis.call('SISMEMBER', session_key, room) == 1 then
  rooms = {room}
end
local left = {}
for _, r in ipairs(rooms) do
  local e = remove(p, sid, r, reason)
  if e then left[#left + 1] = e end
end
if #rooms > 0 and redis.call('SCARD', session_key) == 0 then forget(p, sid) end
return {rooms, left}
"""

# ARGV: prefix, edge id, ttl ms, session ids... Returns the unknown session ids.
_HEARTBEAT = """
local p, edge = ARGV[1], ARGV[2]
local deadline = now_ms() + tonumber(ARGV[3])
local sessions = p .. 'sessions'
local unknown = {}
for i = 4, #ARGV do
  local sid = ARGV[i]
  if redis.call('HEXISTS', sessions, sid) == 1 then
    redis.call('ZADD', p .. 'deadlines', deadline, sid)
    if edge ~= '' then redis.call('HSET', sessions, sid, edge) end
  else
    unknown[#unknown + 1] = sid
  end
end
return unknown
"""

# ARGV: prefix, batch size. Returns {sessions expired, leave events published, those events}.
_SWEEP = """
local p, limit = ARGV[1], tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', p .. 'deadlines', '-inf', now_ms(), 'LIMIT', 0, limit)
local leaves = 0
local left = {}
for _, sid in ipairs(expired) do
  local rooms = redis.call('SMEMBERS', p .. 'session:' .. sid)
  table.sort(rooms)
  for _, room in ipairs(rooms) do
    local e = remove(p, sid, room, 'timeout')
    if e then left[#left + 1] = e end
    leaves = leaves + 1
  end
  forget(p, sid)
end
return {#expired, leaves, left}
"""

# ARGV: prefix, room, cursor, limit (0: all).
# Returns {count, next cursor, {peer JSON...}, user count}.
_LIST = """
local p, room, cursor, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local members = p .. 'members:' .. room
local count = redis.call('ZCARD', members)
local users = redis.call('HLEN', p .. 'users:' .. room)
local min = '-'
if cursor ~= '' then min = '(' .. cursor end
local ids
if limit == 0 then
  ids = redis.call('ZRANGEBYLEX', members, min, '+')
else
  ids = redis.call('ZRANGEBYLEX', members, min, '+', 'LIMIT', 0, limit + 1)
end
local n = #ids
local next_cursor = ''
if limit > 0 and n > limit then
  n = limit
  next_cursor = ids[limit]
end
local room_key = p .. 'room:' .. room
local peers = {}
for i = 1, n do peers[#peers + 1] = redis.call('HGET', room_key, ids[i]) end
return {count, next_cursor, peers, users}
"""

# ARGV: prefix, room. Returns {sessions, users}.
_COUNTS = """
local p, room = ARGV[1], ARGV[2]
return {redis.call('ZCARD', p .. 'members:' .. room), redis.call('HLEN', p .. 'users:' .. room)}
"""


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
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
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
        backoff = 0.1
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
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
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
        self._join = client.register_script(_COMMON + _JOIN)
        self._update = client.register_script(_COMMON + _UPDATE)
        self._leave = client.register_script(_COMMON + _LEAVE)
        self._heartbeat = client.register_script(_COMMON + _HEARTBEAT)
        self._sweep = client.register_script(_COMMON + _SWEEP)
        self._list = client.register_script(_LIST)
        self._counts = client.register_script(_COUNTS)
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

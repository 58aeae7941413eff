"""Where revocations (and admin disconnects) live: this edge's memory, or Redis for every edge.

Both stores keep a local ``Revocations`` (what sessions check on every
subscribe, push and server-API call) and tell their ``Listener`` when a user
lost access (to end that user's subscriptions here) or an operator asked to
disconnect sessions.

- ``MemoryStore``: one edge; the rules end with the process.
- ``RedisStore`` (``REDIS_URL`` on the edge): the rules sit in the hash
  ``{prefix}:edge:revocations`` (field: the JSON ``[user_id, room, access]``,
  value: ``{"expires_at": …}``) and every change is published on the channel
  ``{prefix}:edge:revocations:changes``. Each edge loads the hash at start (so a
  restarted edge enforces what was revoked before) and again whenever its
  subscription is restored after a lost connection, and applies the published
  changes as they come; an admin disconnect is published there too. The key
  ``{prefix}:edge:revocations:epoch`` names the hash's lifetime: when an edge finds
  it gone or changed on reconnecting (Redis restarted without persistence), it
  writes back (``HSETNX``, and publishes) the rules it enforces before reloading,
  so a Redis that lost its data does not silently lift revocations.

Expired rules are lifted by a sweep every ``SWEEP_SECONDS``: with Redis, the edge
whose ``HDEL`` removed the field publishes the lift (once, whichever edge).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import redis.asyncio as aioredis
from accord.common.config import ConfigError
from accord.common.tasks import Backoff, running
from accord.edge.revocations import Revocations, Rule
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0
POLL_SECONDS = 1.0


class StoreUnavailable(Exception):
    """The shared store could not be written (Redis unreachable)."""


class Listener(Protocol):
    async def revoked(self, user_id: str) -> None:
        """``user_id`` may have lost access: end the subscriptions it may no longer read."""
        ...

    def close_sessions(self, user_id: str | None, session_id: str | None) -> int:
        """Close the matching sessions here (4003); how many."""
        ...

    def lifted(self, rule: Rule) -> None:
        """``rule`` expired and was lifted (called on one edge only)."""
        ...


class Store(Protocol):
    @property
    def revocations(self) -> Revocations: ...

    @property
    def shared(self) -> bool:
        """True when revocations and disconnects reach every edge."""
        ...

    def listen(self, listener: Listener) -> None: ...

    async def add(self, rule: Rule, expires_at: float | None) -> None: ...

    async def remove(self, rule: Rule) -> bool: ...

    async def disconnect(self, user_id: str | None, session_id: str | None) -> None:
        """Tell the other edges (this edge closes its own sessions itself)."""
        ...


class _Base:
    def __init__(self) -> None:
        self._revocations = Revocations()
        self._listener: Listener | None = None

    @property
    def revocations(self) -> Revocations:
        return self._revocations

    def listen(self, listener: Listener) -> None:
        self._listener = listener

    async def _revoked(self, users: set[str]) -> None:
        if self._listener is None:
            return
        for user in sorted(users):
            try:
                await self._listener.revoked(user)
            except Exception:
                log.exception("enforcing a revocation for %s failed", user)

    @asynccontextmanager
    async def _sweeping(self) -> AsyncIterator[None]:
        async def sweep() -> None:
            while True:
                await asyncio.sleep(SWEEP_SECONDS)
                for rule in self._revocations.expired():
                    try:
                        if await self._lift(rule) and self._listener is not None:
                            self._listener.lifted(rule)
                    except (RedisError, OSError) as error:
                        log.warning("cannot lift an expired revocation yet: %s", error)

        async with running(sweep(), "revocations-sweep"):
            yield

    async def _lift(self, rule: Rule) -> bool:
        return self._revocations.remove(*rule)


class MemoryStore(_Base):
    shared = False

    @classmethod
    @asynccontextmanager
    async def open(cls) -> AsyncIterator[MemoryStore]:
        store = cls()
        async with store._sweeping():
            yield store

    async def add(self, rule: Rule, expires_at: float | None) -> None:
        self._revocations.add(*rule, expires_at)

    async def remove(self, rule: Rule) -> bool:
        return self._revocations.remove(*rule)

    async def disconnect(self, user_id: str | None, session_id: str | None) -> None:
        return None


def _field(rule: Rule) -> str:
    return json.dumps(list(rule), separators=(",", ":"))


def _parse_rules(raw: Mapping[bytes | str, bytes | str]) -> dict[Rule, float | None]:
    rules: dict[Rule, float | None] = {}
    for field, value in raw.items():
        try:
            user, pattern, access = json.loads(field)
            expires = json.loads(value).get("expires_at")
            rules[(str(user), str(pattern), str(access))] = (
                None if expires is None else float(expires)
            )
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring a malformed revocation in Redis: %r", field)
    return rules


class RedisStore(_Base):
    shared = True

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        super().__init__()
        self._client = client
        self._hash = f"{prefix}:edge:revocations"
        self._channel = f"{prefix}:edge:revocations:changes"
        self._epoch_key = f"{prefix}:edge:revocations:epoch"
        self._epoch: bytes | str | None = None
        self._origin = uuid.uuid4().hex
        self._pubsub = client.pubsub()

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, prefix: str) -> AsyncIterator[RedisStore]:
        client = aioredis.from_url(url, socket_connect_timeout=5.0, health_check_interval=30)
        try:
            store = cls(client, prefix)
            try:
                await store._pubsub.subscribe(store._channel)
                await store._load()
            except (RedisError, OSError) as error:
                raise ConfigError(
                    f"REDIS_URL: cannot reach Redis for revocations: {error}"
                ) from None
            try:
                async with running(store._read(), "revocations-reader"), store._sweeping():
                    yield store
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await store._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8.2
        finally:
            await client.aclose()

    async def _load(self) -> None:
        client = self._client
        await client.set(self._epoch_key, uuid.uuid4().hex, nx=True)
        epoch = await client.get(self._epoch_key)
        if self._epoch is not None and epoch != self._epoch:
            held = self._revocations.rules()
            log.warning("revocations: Redis lost them; writing back the %d held here", len(held))
            for rule, expires in held.items():
                value = json.dumps({"expires_at": expires})
                if await client.hsetnx(self._hash, _field(rule), value):
                    await self._publish(self._rule_message("add", rule, expires_at=expires))
        self._epoch = epoch
        raw = await client.hgetall(self._hash)
        changed = self._revocations.replace(_parse_rules(raw))
        await self._revoked(changed)

    async def _read(self) -> None:
        backoff = Backoff(0.1, 2.0)
        reload = False
        while True:
            try:
                if reload:
                    await self._load()
                    reload = False
                message = await self._pubsub.get_message(timeout=POLL_SECONDS)
                if message is not None and message["type"] == "subscribe":
                    # (Re)subscribed: what was published while away reached nobody here.
                    reload = True
                elif message is not None and message["type"] == "message":
                    await self._apply(message["data"])
            except (RedisError, OSError) as error:
                log.warning("revocations: Redis connection lost, retrying: %s", error)
                await backoff.wait()
                continue
            backoff.reset()

    async def _apply(self, data: bytes) -> None:
        try:
            change: dict[str, Any] = json.loads(data)
            op = change["op"]
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring a malformed revocation message: %r", data[:200])
            return
        if change.get("origin") == self._origin:
            return
        if op == "disconnect":
            if self._listener is not None:
                self._listener.close_sessions(change.get("user_id"), change.get("session_id"))
            return
        rule = (str(change.get("user_id")), str(change.get("room")), str(change.get("access")))
        if op == "add":
            expires = change.get("expires_at")
            self._revocations.add(*rule, None if expires is None else float(expires))
            await self._revoked({rule[0]})
        elif op == "remove":
            self._revocations.remove(*rule)

    async def _publish(self, message: dict[str, Any]) -> None:
        await self._client.publish(self._channel, json.dumps({**message, "origin": self._origin}))

    def _rule_message(self, op: str, rule: Rule, **extra: Any) -> dict[str, Any]:
        user_id, room, access = rule
        return {"op": op, "user_id": user_id, "room": room, "access": access, **extra}

    async def add(self, rule: Rule, expires_at: float | None) -> None:
        try:
            value = json.dumps({"expires_at": expires_at, "created_at": time.time()})
            await self._client.hset(self._hash, _field(rule), value)
            await self._publish(self._rule_message("add", rule, expires_at=expires_at))
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"cannot store the revocation in Redis: {error}") from None
        self._revocations.add(*rule, expires_at)

    async def remove(self, rule: Rule) -> bool:
        try:
            removed = bool(await self._client.hdel(self._hash, _field(rule)))
            await self._publish(self._rule_message("remove", rule))
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"cannot remove the revocation from Redis: {error}") from None
        return self._revocations.remove(*rule) or removed

    async def _lift(self, rule: Rule) -> bool:
        self._revocations.remove(*rule)
        if not await self._client.hdel(self._hash, _field(rule)):
            return False  # another edge lifted it first
        await self._publish(self._rule_message("remove", rule))
        return True

    async def disconnect(self, user_id: str | None, session_id: str | None) -> None:
        try:
            await self._publish({"op": "disconnect", "user_id": user_id, "session_id": session_id})
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"cannot tell the other edges: {error}") from None


@asynccontextmanager
async def open_store(redis_url: str | None, prefix: str) -> AsyncIterator[Store]:
    if redis_url is None:
        async with MemoryStore.open() as memory:
            yield memory
    else:
        async with RedisStore.open(redis_url, prefix) as shared:
            yield shared

"""The Redis store across a Redis restart, on a private redis-server."""

from __future__ import annotations

import asyncio

import pytest
from accord.presence.model import EventKind, Peer
from accord.presence.store import StoreUnavailable
from accord.presence.store_redis import RedisStore, open_redis_store

from tests.support.redis_server import PrivateRedis

WAIT = 10.0

pytestmark = [
    pytest.mark.integration,
]


async def retry_join(store: RedisStore, session_id: str) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            try:
                await store.join("r", Peer(session_id), "e")
                return
            except StoreUnavailable:
                await asyncio.sleep(0.1)


async def test_restart_fails_watchers_then_presence_works_again(
    private_redis: PrivateRedis,
) -> None:
    async with open_redis_store(private_redis.url, "outage", 30.0, 10) as store:
        await retry_join(store, "s1")
        async with store.subscription(10) as watch:
            await watch.add(["r"])
            private_redis.stop()
            with pytest.raises(StoreUnavailable):
                await store.join("r", Peer("s2"), "e")
            # Events may be lost while Redis is away: the watch is ended, not left silent.
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(watch.next(), WAIT)
            private_redis.start()
            await retry_join(store, "s3")
        async with store.subscription(10) as watch:
            await watch.add(["r"])
            await store.join("r", Peer("s4"), "e")
            event = await asyncio.wait_for(watch.next(), WAIT)
            assert (event.kind, event.peer) == (EventKind.JOIN, Peer("s4"))
        # Redis came back empty: only sessions joined since are known.
        assert await store.heartbeat("e", ["s1", "s3"]) == ["s1"]

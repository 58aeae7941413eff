"""The quiet room: one change committed while Redis is down, then none.

Busy-room chaos cannot see this case: there, the next change reveals any gap and the
subscriber's replica backfills it. Here nothing comes after the change, so its live
subscribers depend on sync noticing by itself, once Redis is back, that they missed it.

The subscriber sits on the LAST edge and the pusher on the first, so in the production
shape (two sync replicas, two edges) the change is committed by one replica and must
reach a subscriber of the other through the bus.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tests.fault.client import FaultClient
from tests.fault.cluster import Cluster
from tests.fault.procs import redis_ready

ROOM = "quiet"
DELIVERY_DEADLINE = 10.0
"""Seconds after Redis answers again within which every subscriber must have the change."""


@dataclass
class QuietResult:
    acked_seq: int | None
    """The seq the change pushed while Redis was down was acknowledged at."""
    latency: dict[str, float | None] = field(default_factory=dict)
    """Per subscriber: seconds from Redis answering again to the change arriving (None: never)."""
    seqs: dict[str, list[int]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


async def quiet_room(cluster: Cluster, deadline: float = DELIVERY_DEADLINE) -> QuietResult:
    loop = asyncio.get_running_loop()
    last = len(cluster.ws_urls) - 1
    pusher = FaultClient("quiet-pusher", ROOM, cluster.ws_urls, home=0, seed="quiet:p")
    watcher = FaultClient("quiet-watcher", ROOM, cluster.ws_urls, home=last, seed="quiet:w")
    clients = (pusher, watcher)
    try:
        for client in clients:
            await client.connect(loop.time() + 30)
        first = pusher.next_change(keys=1)
        await pusher.push(first, loop.time() + 30)
        assert first.seq == 1, f"the first change was acknowledged as {first}"
        for client in clients:
            assert await client.until_seq(1, 30), f"{client.name} never got seq 1"

        cluster.redis.kill()
        quiet = pusher.next_change(keys=1)
        await pusher.push(quiet, loop.time() + 30)
        cluster.redis.start()
        await redis_ready(cluster.redis_port)
        back = loop.time()

        result = QuietResult(acked_seq=quiet.seq)

        async def arrival(client: FaultClient) -> None:
            arrived = await client.until_seq(2, deadline)
            result.latency[client.name] = round(loop.time() - back, 2) if arrived else None

        await asyncio.gather(*(arrival(c) for c in clients))
        # Nothing else is pushed; a marker round trip shows nothing more was on its way.
        for client in clients:
            await client.ping()
            result.seqs[client.name] = list(client.replica.seqs)
            result.violations.extend(client.violations)
        return result
    finally:
        for client in clients:
            await client.close()

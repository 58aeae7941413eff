"""Re-checks: no live subscriber stays behind when the bus loses batches.

A batch the bus lost (Redis down or restarting, a publish that failed, a
replica killed between commit and publish) is otherwise noticed only at the
room's next batch. The ``Rechecker`` of a replica knows its open Subscribe
streams and has every one re-read its rooms' heads (``RoomStream.recheck``,
one query per stream) and send what it missed from the log:

- when this replica's bus connection is back and subscribed again
  (``reconnected``);
- when any replica asks on the bus (``requested``): a replica asks at start-up
  (it may have been killed before publishing what it had committed) and after
  a publish of its own failed, as soon as the bus takes the request again, and
  when the bus finds a listener on a shard it had stopped publishing to
  (``Bus.on_recheck_owed``: nobody else was listening there);
- every ``interval`` seconds (``interval``; 0: never), as a safety net.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Literal

from accord.common.tasks import spawn
from accord.sync import metrics
from accord.sync.bus import Bus, LossReason
from accord.sync.errors import Unavailable
from accord.sync.subscription import RoomStream

log = logging.getLogger(__name__)

Reason = LossReason | Literal["interval"]

RETRY_FIRST = 0.1
RETRY_MAX = 2.0
"""Seconds between attempts to send a re-check request (doubling up to this)."""


class Rechecker:
    def __init__(self, bus: Bus, interval: float = 0.0) -> None:
        self._bus = bus
        self._interval = interval
        self._streams: set[RoomStream] = set()
        self._owed = False
        """A re-check request is to be sent to every replica."""
        self._requester: asyncio.Task[None] | None = None
        bus.on_loss(self.recheck)
        bus.on_recheck_owed(self.ask_every_replica)

    def follow(self, stream: RoomStream) -> None:
        self._streams.add(stream)

    def forget(self, stream: RoomStream) -> None:
        self._streams.discard(stream)

    def recheck(self, reason: Reason) -> None:
        """Re-check every followed stream (each queues at most one re-check at a time)."""
        metrics.RECHECKS.labels(reason).inc()
        for stream in self._streams:
            stream.recheck()

    def ask_every_replica(self) -> None:
        """Ask every replica (this one too) to re-check, as soon as the bus takes the
        request: a committed batch may have reached none of them."""
        self._owed = True
        if self._requester is None:
            self._requester = spawn(self._request(), name="recheck-request")

    async def _request(self) -> None:
        delay = RETRY_FIRST
        try:
            while self._owed:
                self._owed = False
                try:
                    await self._bus.request_recheck()
                except Unavailable as error:
                    self._owed = True
                    if delay == RETRY_FIRST:
                        log.warning("cannot ask the replicas to re-check yet, retrying: %s", error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
        finally:
            self._requester = None

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.recheck("interval")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Rechecker]:
        """Ask every replica to re-check now (this one may have stopped between a commit
        and its publish), and re-check every ``interval`` until the block ends."""
        self.ask_every_replica()
        periodic = None
        if self._interval:
            periodic = spawn(self._every_interval(), name="recheck-interval")
        try:
            yield self
        finally:
            for task in (periodic, self._requester):
                if task is not None:
                    task.cancel()
                    with suppress(asyncio.CancelledError):
                        await task

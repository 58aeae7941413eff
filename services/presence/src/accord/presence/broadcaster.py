"""Broadcasts through the throttle: published at once, held back, or refused.

Held-back broadcasts are published by one background task when they fall due.
They are ephemeral: a held-back broadcast that cannot be published (store
unreachable, replica stopping) is dropped, never retried. The throttle lives
in this replica, so the limits are per session per presence replica; a
session's broadcasts normally all come through its edge's one connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from accord.common.tasks import set_within
from accord.presence import metrics
from accord.presence.store import PresenceStore, StoreUnavailable
from accord.presence.throttle import Key, Outcome, RateLimited, Throttle

log = logging.getLogger(__name__)

# How often idle senders' limiter state is forgotten.
PRUNE_INTERVAL = 5.0


class Broadcaster:
    def __init__(
        self,
        store: PresenceStore,
        throttle: Throttle,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._throttle = throttle
        self._clock = clock
        self._wake = asyncio.Event()

    async def send(self, room: str, from_session_id: str, data_json: str, channel: str) -> bool:
        """Publish, or hold back (True); raises ``RateLimited``.

        A broadcast without a sender comes from an internal caller and is not limited.
        """
        if from_session_id:
            try:
                outcome = self._throttle.offer(
                    Key(from_session_id, room, channel), data_json, self._clock()
                )
            except RateLimited:
                metrics.BROADCASTS_REFUSED.inc()
                raise
            if outcome is not Outcome.SENT:
                metrics.BROADCASTS_DEFERRED.inc()
                if outcome is Outcome.REPLACED:
                    metrics.BROADCASTS_SUPERSEDED.inc()
                self._wake.set()
                return True
        await self._store.broadcast(room, from_session_id, data_json, channel)
        metrics.BROADCASTS.inc()
        return False

    async def flush_forever(self) -> None:
        next_prune = self._clock() + PRUNE_INTERVAL
        while True:
            self._wake.clear()
            now = self._clock()
            for due in self._throttle.due(now):
                key = due.key
                try:
                    await self._store.broadcast(
                        key.room, key.session_id, due.data_json, key.channel
                    )
                except StoreUnavailable as error:
                    log.warning("held-back broadcast dropped: %s", error)
                    continue
                except Exception:
                    log.exception("held-back broadcast dropped")
                    continue
                metrics.BROADCASTS.inc()
            if now >= next_prune:
                self._throttle.prune(now)
                next_prune = now + PRUNE_INTERVAL
            wait = next_prune - now
            next_due = self._throttle.next_due()
            if next_due is not None:
                wait = min(wait, max(0.0, next_due - self._clock()))
            await set_within(self._wake, wait)


@asynccontextmanager
async def broadcasting(store: PresenceStore, throttle: Throttle) -> AsyncIterator[Broadcaster]:
    broadcaster = Broadcaster(store, throttle)
    task = asyncio.create_task(broadcaster.flush_forever(), name="presence-broadcasts")
    try:
        yield broadcaster
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

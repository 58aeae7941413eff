"""The background task that expires sessions and samples the session and user counts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from accord.presence import metrics
from accord.presence.model import LeaveReason
from accord.presence.store import PresenceStore, StoreUnavailable

log = logging.getLogger(__name__)


async def sweep_once(store: PresenceStore) -> int:
    """Expire what is due; the number of sessions this replica expired."""
    sessions, leaves = await store.sweep()
    if sessions:
        metrics.EXPIRED.inc(sessions)
        metrics.LEAVES.labels(LeaveReason.TIMEOUT.value).inc(leaves)
        log.debug("expired %d sessions (%d rooms)", sessions, leaves)
    metrics.SESSIONS.set(await store.count_sessions())
    metrics.USERS.set(await store.count_users())
    return sessions


async def sweep_forever(store: PresenceStore, interval: float) -> None:
    while True:
        try:
            await sweep_once(store)
        except StoreUnavailable as error:
            log.warning("sweep skipped: %s", error)
        except Exception:
            log.exception("sweep failed")
        await asyncio.sleep(interval)


@asynccontextmanager
async def sweeping(store: PresenceStore, interval: float) -> AsyncIterator[None]:
    task = asyncio.create_task(sweep_forever(store, interval), name="presence-sweeper")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

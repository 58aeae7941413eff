"""Webhook delivery: claims batches from the outbox, POSTs them, records the outcome.

Every sync replica runs one ``Deliverer`` (unless ``WEBHOOK_CONCURRENCY`` is 0):
the work is in the database, so replicas share it through the outbox's leases
and any of them takes over what another left (see ``accord.sync.outbox``). It
runs beside the pushes and never in their way: a commit only wakes it, its
requests run in tasks of their own (at most ``concurrency`` at once, each with
its endpoint's timeout), and while that many are in flight it issues no claim.

Requests follow Standard Webhooks (``accord.common.webhook_http``): ``webhook-id``
is the batch's, the same on every retry.
A failed attempt is retried after an exponential backoff with jitter; a
``Retry-After`` (seconds) longer than that is honoured, up to the backoff's
maximum. After the endpoint's ``max_attempts`` the endpoint is parked.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from accord.common.tasks import set_within, spawn
from accord.common.webhook_http import backoff, next_delay, post, sign
from accord.sync import metrics
from accord.sync.errors import Unavailable
from accord.sync.outbox import LEASE_MARGIN_MS, Batch, Outbox
from accord.sync.webhooks import Endpoint, WebhookRouter

log = logging.getLogger(__name__)

STATS_INTERVAL = 10.0
"""Seconds between reads of the outbox's backlog for the gauges."""
MIN_CLAIM_INTERVAL = 0.02
"""Claims are at least this far apart, however often commits wake the loop."""
__all__ = ["Deliverer", "DeliveryOptions", "backoff", "sign"]


@dataclass(frozen=True)
class DeliveryOptions:
    concurrency: int = 8
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    poll_interval: float = 1.0


def _now_ms() -> int:
    return int(time.time() * 1000)


class Deliverer:
    def __init__(
        self,
        outbox: Outbox,
        router: WebhookRouter,
        options: DeliveryOptions,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._outbox = outbox
        self._router = router
        self._options = options
        self._rand = rand
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._shown: set[str] = set()
        self._http: aiohttp.ClientSession | None = None
        router.listen(self.wake)

    def wake(self) -> None:
        """Claim again now (a commit owes endpoints changes, or one was resumed)."""
        self._wake.set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Deliverer]:
        connector = aiohttp.TCPConnector(limit=max(self._options.concurrency, 1))
        async with aiohttp.ClientSession(connector=connector) as http:
            self._http = http
            loop = spawn(self._run(), name="webhook-delivery")
            try:
                yield self
            finally:
                loop.cancel()
                # Requests in flight are dropped: their leases run out and the batches
                # are sent again (by another replica, or this one restarted).
                for task in (loop, *self._inflight):
                    task.cancel()
                await asyncio.gather(loop, *self._inflight, return_exceptions=True)
                self._http = None

    async def _run(self) -> None:
        stats_due = 0.0
        while True:
            self._wake.clear()
            try:
                await self._claim()
                if time.monotonic() >= stats_due:
                    stats_due = time.monotonic() + STATS_INTERVAL
                    await self._refresh_gauges()
            except Unavailable as error:
                log.warning("webhook delivery: %s", error)
            except Exception:
                log.exception("webhook delivery loop failed; going on")
            await asyncio.sleep(MIN_CLAIM_INTERVAL)
            await set_within(self._wake, self._options.poll_interval)

    async def _claim(self) -> None:
        free = self._options.concurrency - len(self._inflight)
        endpoints = self._router.config.endpoints
        leases = {e.id: int(e.timeout * 1000) + LEASE_MARGIN_MS for e in endpoints}
        for batch in await self._outbox.claim(leases, _now_ms(), free):
            task = spawn(self._deliver(batch), name=f"webhook-{batch.endpoint}")
            self._inflight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self.wake()  # the room's next batch is due now, and a slot is free

    async def _deliver(self, batch: Batch) -> None:
        endpoint = self._router.config.endpoint(batch.endpoint)
        if endpoint is None:
            return  # removed from the file meanwhile: its lease runs out, the rows stay
        try:
            error = await self._post(endpoint, batch)
            if error is None:
                await self._outbox.delivered(batch)
                metrics.WEBHOOK_DELIVERIES.labels(endpoint.id, "delivered").inc()
                metrics.WEBHOOK_DELIVERED_CHANGES.labels(endpoint.id).inc(batch.count)
                return
            message = error[0]
            if batch.attempts >= endpoint.max_attempts:
                await self._outbox.park(batch, _now_ms(), message)
                metrics.WEBHOOK_DELIVERIES.labels(endpoint.id, "parked").inc()
                log.warning(
                    "webhook endpoint %s parked after %d attempts (room %s): %s",
                    endpoint.id,
                    batch.attempts,
                    batch.room,
                    message,
                )
                return
            options = self._options
            delay = next_delay(
                batch.attempts, error, options.backoff_base, options.backoff_max, self._rand
            )
            await self._outbox.failed(batch, _now_ms() + int(delay * 1000), message)
            metrics.WEBHOOK_DELIVERIES.labels(endpoint.id, "failed").inc()
            log.info(
                "webhook to %s (room %s) failed, attempt %d, again in %.1fs: %s",
                endpoint.id,
                batch.room,
                batch.attempts,
                delay,
                message,
            )
        except Unavailable as lost:
            log.warning("webhook to %s: outcome not recorded: %s", endpoint.id, lost)

    async def _post(self, endpoint: Endpoint, batch: Batch) -> tuple[str, str | None] | None:
        """None when the endpoint answered 2xx, else what went wrong and its Retry-After."""
        assert self._http is not None
        started = time.perf_counter()
        try:
            return await post(self._http, endpoint, batch.message_id, batch.body())
        finally:
            metrics.WEBHOOK_SECONDS.labels(endpoint.id).observe(time.perf_counter() - started)

    async def _refresh_gauges(self) -> None:
        now = _now_ms()
        seen = set()
        for backlog in await self._outbox.backlog():
            seen.add(backlog.endpoint)
            metrics.WEBHOOK_BACKLOG.labels(backlog.endpoint).set(backlog.changes)
            metrics.WEBHOOK_PARKED.labels(backlog.endpoint).set(1 if backlog.parked_at else 0)
            age = (now - backlog.oldest) / 1000 if backlog.oldest else 0.0
            metrics.WEBHOOK_OLDEST.labels(backlog.endpoint).set(max(age, 0.0))
        for gone in (self._shown | {e.id for e in self._router.config.endpoints}) - seen:
            metrics.WEBHOOK_BACKLOG.labels(gone).set(0)
            metrics.WEBHOOK_PARKED.labels(gone).set(0)
            metrics.WEBHOOK_OLDEST.labels(gone).set(0)
        self._shown = seen

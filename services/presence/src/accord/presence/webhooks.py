"""Presence webhooks: the join, update and leave events THIS replica caused, POSTed
to the endpoints whose ``events`` include ``presence`` and whose rooms match.

Which replica sends: the one whose store call made the change (a Join, Update or
Leave it served, or a sweep it won: the store tells it through ``changed``), so
each event is sent once however many replicas watch the room.

Delivery is in memory, at most once: presence has no database, so the events
queued or in flight when the process stops are lost. Per endpoint, one queue
(bounded: when full, the oldest event is dropped and counted) and one sender
that sends the events one at a time, in the order they happened, so each room's
events arrive in order. A failed attempt is retried as sync retries
(``WEBHOOK_BACKOFF_*``, the endpoint's ``max_attempts``) with the event's same
``webhook-id``; after the last attempt the event is dropped (counted) and the
next one goes. The body is the fixed core's, one event per request:
``{"type":"presence","room":R,"event":"join"|"update"|"leave","peer":peer}``
(a leave also carries ``reason``), as the edge sends it to clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from accord.common.tasks import spawn
from accord.common.webhook_http import new_message_id, next_delay, post
from accord.common.webhooks import PRESENCE, WebhookRouter
from accord.presence import metrics
from accord.presence.model import Event, EventKind, Peer

log = logging.getLogger(__name__)

SENT_KINDS = frozenset({EventKind.JOIN, EventKind.UPDATE, EventKind.LEAVE})


@dataclass(frozen=True)
class HookOptions:
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    queue_size: int = 10_000
    """Events waiting per endpoint; beyond, the oldest is dropped."""


@dataclass(frozen=True)
class Message:
    room: str
    message_id: str
    body: bytes


def _json(text: str) -> Any:
    return json.loads(text) if text else {}


def peer_json(peer: Peer) -> dict[str, Any]:
    """A peer as clients get it (``user`` and ``state`` as JSON values)."""
    return {
        "session_id": peer.session_id,
        "user_id": peer.user_id,
        "client_id": peer.client_id,
        "user": _json(peer.user_json),
        "state": _json(peer.state_json),
    }


def event_body(event: Event) -> bytes:
    assert event.peer is not None
    body: dict[str, Any] = {
        "type": "presence",
        "room": event.room,
        "event": event.kind.value,
        "peer": peer_json(event.peer),
    }
    if event.kind is EventKind.LEAVE and event.reason is not None:
        body["reason"] = event.reason.value
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class _Lane:
    """One endpoint's queue of events and the task that sends them."""

    def __init__(self, size: int) -> None:
        self.queue: deque[Message] = deque()
        self.size = size
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class PresenceWebhooks:
    def __init__(
        self,
        router: WebhookRouter,
        options: HookOptions,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._router = router
        self._options = options
        self._rand = rand
        self._lanes: dict[str, _Lane] = {}
        self._http: aiohttp.ClientSession | None = None

    def changed(self, events: Sequence[Event]) -> None:
        """Queue ``events`` (this replica's, in order) for the endpoints that want them."""
        for event in events:
            if event.kind not in SENT_KINDS or event.peer is None:
                continue
            endpoints = self._router.endpoints(event.room)
            if not endpoints:
                continue
            message = Message(event.room, new_message_id(), event_body(event))
            for endpoint_id in endpoints:
                self._put(endpoint_id, message)

    def queued(self, endpoint_id: str) -> int:
        lane = self._lanes.get(endpoint_id)
        return len(lane.queue) if lane else 0

    def _put(self, endpoint_id: str, message: Message) -> None:
        lane = self._lanes.get(endpoint_id)
        if lane is None:
            lane = self._lanes[endpoint_id] = _Lane(self._options.queue_size)
        if len(lane.queue) >= lane.size:
            lane.queue.popleft()
            metrics.WEBHOOK_OVERFLOWS.labels(endpoint_id).inc()
        lane.queue.append(message)
        metrics.WEBHOOK_QUEUED.labels(endpoint_id).set(len(lane.queue))
        lane.wake.set()
        self._start(endpoint_id, lane)

    def _start(self, endpoint_id: str, lane: _Lane) -> None:
        if self._http is not None and lane.task is None:
            lane.task = spawn(self._send_forever(endpoint_id, lane), name=f"webhook-{endpoint_id}")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[PresenceWebhooks]:
        async with aiohttp.ClientSession() as http:
            self._http = http
            for endpoint_id, lane in self._lanes.items():
                self._start(endpoint_id, lane)
            try:
                yield self
            finally:
                # What is queued or in flight is dropped: at most once.
                self._http = None
                tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for lane in self._lanes.values():
                    lane.task = None

    async def _send_forever(self, endpoint_id: str, lane: _Lane) -> None:
        while True:
            lane.wake.clear()
            if not lane.queue:
                await lane.wake.wait()
                continue
            message = lane.queue[0]
            try:
                await self._send(endpoint_id, lane, message)
            except Exception:
                log.exception("presence webhook to %s failed; event dropped", endpoint_id)
            if lane.queue and lane.queue[0] is message:
                lane.queue.popleft()
            metrics.WEBHOOK_QUEUED.labels(endpoint_id).set(len(lane.queue))

    async def _send(self, endpoint_id: str, lane: _Lane, message: Message) -> None:
        """Attempt ``message`` until it is delivered, abandoned, or pushed out of the queue."""
        attempts = 0
        while lane.queue and lane.queue[0] is message:
            endpoint = self._router.config.endpoint(endpoint_id)
            if endpoint is None or not endpoint.wants(message.room, PRESENCE):
                return  # no longer configured for it: dropped
            assert self._http is not None
            started = time.perf_counter()
            failure = await post(self._http, endpoint, message.message_id, message.body)
            metrics.WEBHOOK_SECONDS.labels(endpoint_id).observe(time.perf_counter() - started)
            if failure is None:
                metrics.WEBHOOK_DELIVERIES.labels(endpoint_id, "delivered").inc()
                return
            attempts += 1
            if attempts >= endpoint.max_attempts:
                metrics.WEBHOOK_DELIVERIES.labels(endpoint_id, "abandoned").inc()
                log.warning(
                    "presence webhook to %s (room %s) dropped after %d attempts: %s",
                    endpoint_id,
                    message.room,
                    attempts,
                    failure[0],
                )
                return
            options = self._options
            delay = next_delay(
                attempts, failure, options.backoff_base, options.backoff_max, self._rand
            )
            metrics.WEBHOOK_DELIVERIES.labels(endpoint_id, "failed").inc()
            log.info(
                "presence webhook to %s (room %s) failed, attempt %d, again in %.1fs: %s",
                endpoint_id,
                message.room,
                attempts,
                delay,
                failure[0],
            )
            await asyncio.sleep(delay)


@asynccontextmanager
async def delivering(
    router: WebhookRouter, options: HookOptions, poll_interval: float
) -> AsyncIterator[PresenceWebhooks]:
    """Presence webhooks sent for the block's duration, the file re-read as it changes."""
    hooks = PresenceWebhooks(router, options)
    async with hooks.running(), router.watching(poll_interval):
        yield hooks


__all__ = ["HookOptions", "PresenceWebhooks", "delivering", "event_body"]

"""A webhook receiver for tests: a real aiohttp server on loopback that records every
request, verifies its signature with the SDK, and answers as the test scripts it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accord.client.webhooks import WebhookVerificationError, verify
from aiohttp import web

from tests.support.ports import free_port


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Received:
    message_id: str
    timestamp: int
    body: bytes
    event: Any
    """The verified JSON body; None when the signature did not verify."""
    status: int
    """What the receiver answered."""
    started: float
    finished: float


class Receiver:
    def __init__(self, secret: str, port: int | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.requests: list[Received] = []
        self.script: deque[int] = deque()
        """Statuses to answer the next requests with; then 200."""
        self.delay = 0.0
        """Seconds to take before answering (a slow receiver)."""
        self.hold: asyncio.Event | None = None
        """When set to an unset event: requests wait for it before answering."""
        self.in_flight: dict[str, int] = {}
        self.overlaps: list[str] = []
        """webhook-ids (or rooms) that were being handled twice at once."""
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        body = await request.read()
        try:
            event = verify(self.secret, request.headers, body)
        except WebhookVerificationError:
            event = None
        room = event["room"] if isinstance(event, dict) else ""
        for key in (request.headers.get("webhook-id", ""), f"room:{room}"):
            if self.in_flight.get(key):
                self.overlaps.append(key)
            self.in_flight[key] = self.in_flight.get(key, 0) + 1
        try:
            if self.hold is not None:
                await self.hold.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            status = self.script.popleft() if self.script else 200
            if event is None:
                status = 400
        finally:
            for key in (request.headers.get("webhook-id", ""), f"room:{room}"):
                self.in_flight[key] -= 1
        self.requests.append(
            Received(
                request.headers.get("webhook-id", ""),
                int(request.headers.get("webhook-timestamp", "0")),
                body,
                event,
                status,
                started,
                time.monotonic(),
            )
        )
        self.arrived.set()
        return web.Response(status=status, text="ok" if status < 300 else "no")

    def delivered(self, room: str | None = None) -> list[Received]:
        """The requests answered 2xx (of ``room``), in the order they were answered."""
        return [
            r
            for r in self.requests
            if 200 <= r.status < 300 and (room is None or r.event["room"] == room)
        ]

    def seqs(self, room: str) -> list[int]:
        """The seqs of ``room``'s changes delivered, in delivery order (repeats kept)."""
        return [c["seq"] for r in self.delivered(room) for c in r.event["changes"]]

    async def wait_until(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the receiver never got what was expected: {self.summary()}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(left, 0.5))

    def summary(self) -> str:
        return json.dumps(
            [(r.message_id, r.status, r.body.decode(errors="replace")[:200]) for r in self.requests]
        )[:2000]

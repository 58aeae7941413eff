"""Drive a running edge with fuzz frames over a few long-lived WebSocket connections.

A ``Lane`` is one raw connection (hello'd and subscribed to the fuzzed room) that sends the
frames of its share of the corpus in small batches, each followed by a ``ping`` marker: every
message that arrives before the marker's ``pong`` answers that batch. Each answer must be a
reply the protocol defines or a typed ``error`` whose code is in the protocol's list and is not
``INTERNAL``; a closed connection must carry a documented close code, and the lane reconnects.
A batch with a bad answer is replayed frame by frame to name the input that caused it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from accord.api.edge.v1 import frames_pb2 as pb

from tests.fuzz.corpus import ROOM, Frame
from tests.support.binary import from_server_frame

ERROR_CODES = {
    "BAD_REQUEST",
    "UNAUTHENTICATED",
    "TOKEN_EXPIRED",
    "FORBIDDEN",
    "NOT_SUBSCRIBED",
    "RATE_LIMITED",
    "TOO_LARGE",
    "UNSUPPORTED",
    "UNAVAILABLE",
    "INTERNAL",
}
# Close codes docs/protocol.md documents as the server's answer to something. Not 1000 (the
# protocol never has the server close "normally") nor 1001 (an unanswered heartbeat: the lanes
# answer every ping).
CLOSE_CODES = {1009, 1012, 1013, 4001, 4008, 4009}
REPLY_TYPES = {
    "welcome",
    "pong",
    "refreshed",
    "subscribed",
    "unsubscribed",
    "snapshot",
    "changes",
    "ack",
    "presence",
    "presence_page",
    "broadcast",
    "error",
}
MARKER_BASE = 1 << 40  # ping ids far from the ids the corpus uses
ANSWER_TIMEOUT = 15.0


@dataclass
class Finding:
    frame: Frame
    answer: str

    def __str__(self) -> str:
        return f"{self.frame.show()}\n    -> {self.answer}"


@dataclass
class Stats:
    frames: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    closes: dict[int, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


class Closed(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


def problem(message: dict[str, Any]) -> str | None:
    """Why ``message`` is not an acceptable answer (None: it is)."""
    kind = message.get("type")
    if kind not in REPLY_TYPES:
        return f"unknown message type {kind!r}"
    if kind == "error":
        code = message.get("code")
        if code not in ERROR_CODES:
            return f"error code {code!r} is not in the protocol's list"
        if code == "INTERNAL":
            return "INTERNAL error"
    return None


class Lane:
    def __init__(self, url: str, token: str, name: str, stats: Stats) -> None:
        self.url = url
        self.token = token
        self.name = name
        self.stats = stats
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.marker = MARKER_BASE

    async def connect(self) -> None:
        await self.close()
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(self.url, autoping=True, max_msg_size=0)
        answers = await self.exchange(
            [], {"type": "hello", "token": self.token, "client_id": self.name}
        )
        assert any(a.get("type") == "welcome" for a in answers), answers
        answers = await self.exchange([], {"type": "subscribe", "room": ROOM, "since": 0})
        assert not [a for a in answers if a.get("type") == "error"], answers

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()
        self.ws = self.http = None

    async def send(self, frame: Frame) -> None:
        assert self.ws is not None
        if frame.wire == "binary":
            await self.ws.send_bytes(frame.payload)
        elif frame.wire == "text":
            await self.ws.send_str(frame.payload.decode())
        else:  # a text frame whose payload need not be UTF-8
            await self.ws.send_frame(frame.payload, aiohttp.WSMsgType.TEXT)

    async def exchange(
        self, frames: list[Frame], request: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Send ``frames`` (and ``request``), then a ping marker; every message up to its pong."""
        assert self.ws is not None
        for frame in frames:
            await self.send(frame)
        self.marker += 1
        marker = self.marker
        if request is not None:
            await self.ws.send_str(json.dumps({**request, "id": marker - MARKER_BASE}))
        await self.ws.send_str(json.dumps({"type": "ping", "id": marker}))
        answers: list[dict[str, Any]] = []
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while True:
                message = await self._receive()
                if message.get("type") == "pong" and message.get("id") == marker:
                    return answers
                answers.append(message)

    async def _receive(self) -> dict[str, Any]:
        assert self.ws is not None
        msg = await self.ws.receive()
        if msg.type == aiohttp.WSMsgType.TEXT:
            parsed: dict[str, Any] = json.loads(msg.data)
            return parsed
        if msg.type == aiohttp.WSMsgType.BINARY:
            server = pb.ServerFrame()
            server.ParseFromString(msg.data)
            return from_server_frame(server)
        if msg.type == aiohttp.WSMsgType.CLOSE:
            raise Closed(int(msg.data))
        raise Closed(self.ws.close_code)

    async def run(self, frames: list[Frame], batch: int) -> None:
        await self.connect()
        for start in range(0, len(frames), batch):
            chunk = frames[start : start + batch]
            self.stats.frames += len(chunk)
            await self.check(chunk, replay=batch > 1)
        await self.close()

    async def check(self, frames: list[Frame], replay: bool) -> None:
        """Send a batch and judge its answers; a bad batch is replayed one frame at a time."""
        try:
            answers = await self.exchange(frames)
        except Closed as closed:
            code = closed.code or 0
            self.stats.closes[code] = self.stats.closes.get(code, 0) + 1
            bad = None if code in CLOSE_CODES else f"closed with undocumented code {code}"
            await self.connect()
            if bad is None:
                return
            answers, why = [], bad
        except TimeoutError:
            await self.connect()
            answers, why = [], f"no answer within {ANSWER_TIMEOUT:.0f} s"
        else:
            why = next((p for a in answers if (p := problem(a)) is not None), None)
            for answer in answers:
                if answer.get("type") == "error":
                    code = str(answer.get("code"))
                    self.stats.errors[code] = self.stats.errors.get(code, 0) + 1
            if why is None:
                return
        if replay and len(frames) > 1:
            for frame in frames:
                await self.check([frame], replay=False)
            return
        shown = [a for a in answers if problem(a) is not None] or answers
        self.stats.findings.append(Finding(frames[0], f"{why}: {json.dumps(shown)[:300]}"))


async def first_frames(url: str, frames: list[Frame], stats: Stats) -> None:
    """Each frame as the first message of a new connection. The protocol's answers: a
    ``welcome`` (it was a valid hello), or a typed error and then close 4001, or close 1009
    (a frame over four times the size limit)."""
    for frame in frames:
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
            lane = Lane(url, "", "first", stats)
            lane.ws = ws
            await lane.send(frame)
            stats.frames += 1
            answers: list[dict[str, Any]] = []
            code: int | None = None
            try:
                async with asyncio.timeout(ANSWER_TIMEOUT):
                    while not answers or answers[-1].get("type") != "welcome":
                        answers.append(await lane._receive())
            except Closed as closed:
                code = closed.code or 0
                stats.closes[code] = stats.closes.get(code, 0) + 1
            except TimeoutError:
                code = -1
            why = next((p for a in answers if (p := problem(a)) is not None), None)
            errors = [a for a in answers if a.get("type") == "error"]
            if why is None and code is not None and code != 1009 and not (errors and code == 4001):
                why = "no welcome, nor an error then close 4001" + (
                    f" (closed with {code})" if code >= 0 else " (no close)"
                )
            if why is not None:
                stats.findings.append(Finding(frame, f"first frame: {why}: {answers}"))

"""Frame fuzzer (issue 19): over 10,000 generated frames against a running edge over a socket.

Three long-lived fuzz connections, each hello'd and subscribed to ``fuzz-room``, send their
share of the corpus (tests/fuzz/corpus.py): random bytes as text and binary frames, mutated
valid frames of every client type in JSON and protobuf, deep nesting, huge numbers, invalid
UTF-8, garbage protobuf, oversized frames. Each input is answered by a protocol reply, a typed
error (never INTERNAL), or a documented close code (tests/fuzz/lanes.py). Meanwhile a
well-behaved client subscribed to the same room pushes a change every 50 ms: every push is
acknowledged, and it sees every ``seq`` of the room with no gap. At the end ``/health`` is 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import pytest

from tests.fuzz.corpus import ROOM, build, oversized
from tests.fuzz.lanes import Finding, Lane, Stats, first_frames
from tests.support.suite import Suite
from tests.support.wsclient import Client, Replica, make_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(110)]

LANES = 3
SEEDS, MUTATIONS = 700, 14  # 700 hypothesis draws x (1 + 14 byte mutants) = 10,500 frames
FIRST_FRAMES = 150  # of them also sent as the first frame of a fresh connection
BATCH = 8
MAX_MESSAGE_SIZE = 65536
EDGE_ENV = {
    # Lift the rate limits so every frame is parsed and judged rather than RATE_LIMITED.
    "RATE_LIMIT": "1000000",
    "RATE_BURST": "1000000",
    "USER_RATE_LIMIT": "1000000",
    "USER_RATE_BURST": "1000000",
    "CONNECT_RATE": "1000",
    "CONNECT_BURST": "1000",
    "MAX_MESSAGE_SIZE": str(MAX_MESSAGE_SIZE),
}


class Observer:
    """The well-behaved client: pushes every 50 ms, applies every change, checks the acks."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.replica = Replica()
        self.pending: dict[int, int] = {}  # request id -> client_seq
        self.acked: dict[int, int] = {}  # client_seq -> seq
        self.problems: list[str] = []
        self.stop = asyncio.Event()

    async def read(self) -> None:
        while True:
            message = await self.client.recv(timeout=60)
            kind = message.get("type")
            if kind in ("snapshot", "changes"):
                try:
                    self.replica.apply(message)
                except AssertionError as error:
                    self.problems.append(f"replica: {error}")
            elif kind == "ack":
                client_seq = self.pending.pop(message["id"])
                (result,) = message["results"]
                if result["status"] != "applied" or result["client_seq"] != client_seq:
                    self.problems.append(f"push {client_seq}: {result}")
                self.acked[client_seq] = result["seq"]
            elif kind == "error":
                self.problems.append(f"error: {message}")

    async def push(self) -> None:
        client_seq = 0
        while not self.stop.is_set():
            client_seq += 1
            request_id = self.client.take_id()
            self.pending[request_id] = client_seq
            change = {
                "client_seq": client_seq,
                "collection": "observer",
                "key": f"k-{client_seq % 7}",
                "op": {"kind": "incr", "field": "n", "by": 1},
            }
            await self.client.send(
                {"type": "push", "id": request_id, "room": ROOM, "changes": [change]}
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.05)


async def head_of_room(suite: Suite) -> int:
    async with await suite.client() as checker:
        await checker.hello(make_token("u-checker"), client_id="checker")
        return int((await checker.subscribe(ROOM))["head"])


async def test_fuzzed_frames_get_typed_answers_and_harm_no_one(make_suite: Any) -> None:
    started = time.monotonic()
    suite: Suite = await make_suite(edge_env=EDGE_ENV)
    corpus = build(make_token("u-fuzz"), SEEDS, MUTATIONS) + oversized(MAX_MESSAGE_SIZE)
    assert len(corpus) >= 10_000

    observer = Observer(await suite.client())
    await observer.client.hello(make_token("u-observer"), client_id="observer")
    await observer.client.subscribe(ROOM)
    reader = asyncio.create_task(observer.read())
    pusher = asyncio.create_task(observer.push())

    stats = Stats()
    lanes = [
        Lane(suite.ws_url, make_token(f"u-fuzz-{n}"), f"fuzz-{n}", stats) for n in range(LANES)
    ]
    try:
        await asyncio.gather(
            *(lane.run(corpus[n::LANES], BATCH) for n, lane in enumerate(lanes)),
            first_frames(
                suite.ws_url, corpus[:: len(corpus) // FIRST_FRAMES][:FIRST_FRAMES], stats
            ),
        )
    finally:
        for lane in lanes:
            await lane.close()
        observer.stop.set()
        await pusher

    # Every push acknowledged, every seq seen once, in order, with no gap.
    async with asyncio.timeout(20):
        while observer.pending and not reader.done():  # noqa: ASYNC110 - the reader's state
            await asyncio.sleep(0.05)
        head = await head_of_room(suite)
        while observer.replica.seq < head and not reader.done():  # noqa: ASYNC110 - the reader's state
            await asyncio.sleep(0.05)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await observer.client.close()

    async with aiohttp.ClientSession() as http, http.get(f"{suite.http_url}/health") as response:
        health = response.status

    elapsed = time.monotonic() - started
    summary = (
        f"{stats.frames} frames in {elapsed:.1f} s; errors {dict(sorted(stats.errors.items()))};"
        f" closes {dict(sorted(stats.closes.items()))}; observer pushed {len(observer.acked)},"
        f" room head {head}"
    )
    print(summary)
    assert stats.frames >= 10_000, summary
    assert not observer.problems, observer.problems[:10]
    assert not observer.pending, f"unacknowledged pushes: {sorted(observer.pending.values())[:10]}"
    assert len(observer.acked) >= 10, summary
    assert observer.replica.seq == head, (observer.replica.seq, head)
    first = observer.replica.seqs[0] if observer.replica.seqs else head + 1
    assert observer.replica.seqs == list(range(first, head + 1))
    assert set(observer.acked.values()) <= set(observer.replica.seqs)
    assert health == 200
    # One example per kind of input and kind of bad answer, smallest input first.
    distinct: dict[tuple[str, str], Finding] = {}
    for finding in sorted(stats.findings, key=lambda f: len(f.frame.payload)):
        key = (finding.frame.label.split("~")[0], finding.answer.split(":")[0])
        distinct.setdefault(key, finding)
    shown = "\n".join(str(f) for f in distinct.values())
    assert not stats.findings, f"{len(stats.findings)} bad answers ({summary}):\n{shown}"

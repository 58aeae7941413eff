"""The HTTP fallback (docs/transport.md): what only it has — the stream's headers and padding,
POSTs and their answers, the per-session secret, its heartbeat and drops — and its
equivalents of the WebSocket-only protocol tests (server full, drain, the door)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.support.sseclient import SECRET_HEADER, SseClient, read_events, sse_url
from tests.support.suite import Suite
from tests.support.wsclient import Client, make_token

pytestmark = pytest.mark.e2e


async def sse_connected(suite: Suite, sub: str = "u-1", client_id: str = "c-1") -> SseClient:
    client = await SseClient.connect(suite.ws_url)
    await client.hello(make_token(sub), client_id=client_id)
    return client


def presence_event(event: str) -> Any:
    return lambda m: m.get("type") == "presence" and m.get("event") == event


def hello_body(**extra: Any) -> bytes:
    hello = {"type": "hello", "id": 1, "client_id": "c-raw", "token": make_token(), **extra}
    return json.dumps({"hello": hello}).encode()


async def test_the_stream_is_unbuffered_padded_and_starts_with_welcome(suite: Suite) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(sse_url(suite.ws_url), data=hello_body()) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"].startswith("no-cache")
        assert response.headers["X-Accel-Buffering"] == "no"
        first = await response.content.readline()
        assert first.startswith(b":") and len(first) > 2048  # the padding comment
        events = read_events(response)
        name, data = await anext(events)
        while name == ":":
            name, data = await anext(events)
        welcome = json.loads(data)
        assert (name, welcome["type"], welcome["id"]) == ("message", "welcome", 1)
        assert welcome["transport"]["name"] == "sse"
        assert len(welcome["transport"]["secret"]) >= 32


async def test_a_batch_is_handled_in_order_and_an_empty_post_is_liveness(suite: Suite) -> None:
    async with await sse_connected(suite) as client:
        batch = [
            {"type": "ping", "id": 10},
            {"type": "teleport", "id": 11},
            {"type": "ping", "id": 12},
        ]
        status, answer = await client.post(json.dumps(batch).encode())
        assert (status, answer) == (202, {"queued": 3})
        replies = [await client.recv() for _ in range(3)]
        assert [(r["id"], r["type"]) for r in replies] == [
            (10, "pong"),
            (11, "error"),
            (12, "pong"),
        ]
        assert (await client.post(b""))[0] == 202
        assert (await client.post(b"[]"))[0] == 202
        assert (await client.request({"type": "ping"}))["type"] == "pong"


async def test_a_full_inbox_refuses_the_whole_post(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"SSE_INBOX_SIZE": "2"})
    async with await sse_connected(suite) as client:
        pings = [{"type": "ping", "id": 20 + n} for n in range(3)]
        status, answer = await client.post(json.dumps(pings).encode())
        assert (status, answer["code"]) == (429, "RATE_LIMITED")
        assert answer["retry_after_ms"] > 0
        # Nothing of it was queued: the next reply is the marker's.
        assert await client.request({"type": "ping", "marker": 1}) == {"type": "pong", "id": 2}
        assert client.inbox == []


async def test_posts_to_an_unknown_session_are_not_found(suite: Suite) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{sse_url(suite.ws_url)}/s-0123456789abcdef"
        async with http.post(url, data=b'{"type":"ping"}', headers={SECRET_HEADER: "x"}) as r:
            assert r.status == 404
            assert (await r.json())["code"] == "NOT_FOUND"
    client = await sse_connected(suite)
    url = f"{sse_url(suite.ws_url)}/{client.session_id}"
    headers = {SECRET_HEADER: client.secret}
    await client.close()
    # The session ends with its stream (seen within the edge's watch interval): its id is
    # unknown from then on, even with the right secret.
    async with aiohttp.ClientSession() as http, asyncio.timeout(5):
        while True:
            async with http.post(url, data=b'{"type":"ping"}', headers=headers) as r:
                if r.status == 404:
                    break
                assert r.status == 202
            await asyncio.sleep(0.05)


async def test_a_post_without_the_sessions_secret_is_refused(suite: Suite) -> None:
    async with (
        await sse_connected(suite, "u-a", "c-a") as alice,
        await sse_connected(suite, "u-b", "c-b") as mallory,
    ):
        assert alice.secret != mallory.secret
        injected = json.dumps({"type": "subscribe", "id": 66, "room": "alice-only"}).encode()
        for secret in (mallory.secret, "", alice.secret[:-1]):
            status, answer = await alice.post(injected, secret=secret)
            assert (status, answer["code"]) == (403, "FORBIDDEN")
        # Nothing reached Alice's session: the marker's reply is the next thing she gets.
        assert (await alice.request({"type": "ping"}))["type"] == "pong"
        assert alice.inbox == []
        assert (await alice.post(b"[]"))[0] == 202


async def test_silence_ends_the_session_with_presence_leave_timeout(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"HEARTBEAT_INTERVAL": "0.3"})
    async with await Client.connect(suite.ws_url) as watcher, await sse_connected(suite) as quiet:
        await watcher.hello(make_token("u-w"), client_id="c-w")
        await watcher.subscribe("hb", presence={})
        await watcher.expect(presence_event("sync"))
        await quiet.subscribe("hb", presence={"here": True})
        await watcher.expect(presence_event("join"))
        # The quiet client reads the stream (its pings arrive) but POSTs nothing; the
        # watcher keeps reading (and so answering its own pings) meanwhile.
        leave = asyncio.create_task(watcher.expect(presence_event("leave"), timeout=5))
        assert await quiet.closed(timeout=5) == 1001
        assert quiet.comments >= 2  # the padding and at least one ": ping"
        assert (await leave)["reason"] == "timeout"


async def test_posting_keeps_a_session_alive(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"HEARTBEAT_INTERVAL": "0.2"})
    async with await sse_connected(suite) as client:
        for _ in range(8):  # 1.6 s: four times the silence limit
            await asyncio.sleep(0.2)
            assert (await client.post(b"[]"))[0] == 202
        assert (await client.request({"type": "ping"}))["type"] == "pong"


async def test_a_dropped_stream_leaves_presence_with_disconnect(suite: Suite) -> None:
    async with await Client.connect(suite.ws_url) as watcher:
        await watcher.hello(make_token("u-w"), client_id="c-w")
        await watcher.subscribe("drop", presence={})
        await watcher.expect(presence_event("sync"))
        dropping = await sse_connected(suite)
        await dropping.subscribe("drop", presence={})
        await watcher.expect(presence_event("join"))
        await dropping.close()  # the stream's connection goes away
        leave = await watcher.expect(presence_event("leave"), timeout=5)
        assert leave["reason"] == "disconnect"
        assert leave["peer"]["session_id"] == dropping.session_id


async def test_a_full_server_closes_the_stream_with_1013(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"MAX_CONNECTIONS": "1"})
    async with await sse_connected(suite) as first:
        async with await SseClient.connect(suite.ws_url) as second:
            await second.send({"type": "hello", "id": 1, "client_id": "c-2", "token": make_token()})
            assert await second.closed() == 1013
            assert second.inbox == []
        assert (await first.request({"type": "ping"}))["type"] == "pong"


async def test_drain_closes_streams_with_1012_and_refuses_new_ones(make_suite: Any) -> None:
    suite = await make_suite()
    async with await sse_connected(suite) as client:
        await client.subscribe("room-drain")
        drain = asyncio.create_task(suite.extra["edge"].drain())
        assert await client.closed() == 1012
        await drain
    async with (
        aiohttp.ClientSession() as http,
        http.post(sse_url(suite.ws_url), data=hello_body()) as response,
    ):
        assert response.status == 503


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "BAD_REQUEST"),
        (b'{"type":"hello"}', 400, "BAD_REQUEST"),
        (b"[1]", 400, "BAD_REQUEST"),
        (b'{"hello":{"type":"hello","pad":"' + b"x" * 9000 + b'"}}', 413, "TOO_LARGE"),
    ],
)
async def test_bad_opening_requests(make_suite: Any, body: bytes, status: int, code: str) -> None:
    suite = await make_suite(edge_env={"MAX_MESSAGE_SIZE": "2048"})
    async with (
        aiohttp.ClientSession() as http,
        http.post(sse_url(suite.ws_url), data=body) as response,
    ):
        assert response.status == status
        assert (await response.json())["code"] == code


async def test_origin_and_connect_rate_are_checked_as_for_the_websocket(make_suite: Any) -> None:
    suite = await make_suite(
        edge_env={
            "ALLOWED_ORIGINS": "https://app.example.com",
            "CONNECT_RATE": "0.1",
            "CONNECT_BURST": "1",
        }
    )
    url = sse_url(suite.ws_url)
    async with aiohttp.ClientSession() as http:
        evil = {"Origin": "https://evil.example.com"}
        async with http.post(url, data=hello_body(), headers=evil) as response:
            assert response.status == 403
        async with http.options(url, headers=evil) as response:
            assert response.status == 403
        good = {"Origin": "https://app.example.com"}
        async with http.options(url, headers=good) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
            assert SECRET_HEADER in response.headers["Access-Control-Allow-Headers"]
        async with http.post(url, data=hello_body(), headers=good) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        async with http.post(url, data=hello_body(), headers=good) as response:
            assert response.status == 429
            assert (await response.json())["code"] == "RATE_LIMITED"

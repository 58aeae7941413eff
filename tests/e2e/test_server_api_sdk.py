"""The Python SDK's server client (accord.client.server) against the in-process suite, and
the example of docs/sdk-python.md run verbatim."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from accord.client import Backoff, Forbidden, Gone, ServerClient
from accord.client.server import change
from aiohttp import web

from tests.support.suite import ROOT, Suite
from tests.support.wsclient import make_token

pytestmark = pytest.mark.e2e

TOKEN = make_token("billing", rooms=["todo-*"])
FAST = Backoff(initial=0.01, maximum=0.05)


def set_op(**fields: Any) -> dict[str, Any]:
    return {"kind": "set", "fields": fields}


class FlakyProxy:
    """A real HTTP server in front of the edge that spoils the first answers: ``lose`` of them
    forwarded and then cut off (the change stored, its answer lost), ``refuse`` answered 503."""

    def __init__(self, target: str, *, lose: int = 0, refuse: int = 0) -> None:
        self.target = target
        self.lose = lose
        self.refuse = refuse
        self.bodies: list[bytes] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.bodies.append(body)
        if self.refuse:
            self.refuse -= 1
            return web.json_response({"code": "UNAVAILABLE", "message": "try again"}, status=503)
        headers = {"Authorization": request.headers.get("Authorization", "")}
        if body:
            headers["Content-Type"] = "application/json"
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method, self.target + request.path_qs, data=body, headers=headers
            ) as answer,
        ):
            payload = await answer.read()
            status = answer.status
        if self.lose:
            self.lose -= 1
            assert request.transport is not None
            request.transport.close()  # stored, but the caller never hears so
            return web.Response(status=200)
        return web.Response(body=payload, status=status, content_type="application/json")


@pytest.fixture
async def proxy_url(suite: Suite) -> AsyncIterator[tuple[str, list[FlakyProxy]]]:
    proxies: list[FlakyProxy] = []
    current: dict[str, FlakyProxy] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        return await current["proxy"].handle(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def install(**kwargs: int) -> FlakyProxy:
        proxy = FlakyProxy(suite.http_url, **kwargs)
        current["proxy"] = proxy
        proxies.append(proxy)
        return proxy

    current["proxy"] = install()
    try:
        yield f"http://127.0.0.1:{port}", proxies
    finally:
        await runner.cleanup()


async def test_every_call_against_the_suite(suite: Suite) -> None:
    async with ServerClient(suite.http_url, token=TOKEN) as accord:
        results = await accord.push(
            "todo-sdk",
            [change("todos", f"t-{i}", set_op(n=i)) for i in range(7)]
            + [change("notes", "a/b c", set_op(text="slashes and spaces"))],
            client_id="billing-svc",
        )
        assert [r["status"] for r in results] == ["applied"] * 8
        assert [r["seq"] for r in results] == list(range(1, 9))
        keys = [r["key"] async for r in accord.records("todo-sdk", page_size=3)]
        assert keys == ["a/b c", *(f"t-{i}" for i in range(7))]
        todos = [r["value"]["n"] async for r in accord.records("todo-sdk", collection="todos")]
        assert todos == list(range(7))
        found = await accord.record("todo-sdk", "notes", "a/b c")
        assert found == {
            "collection": "notes",
            "key": "a/b c",
            "value": {"text": "slashes and spaces"},
            "seq": 8,
        }
        assert await accord.record("todo-sdk", "notes", "absent") is None
        log = await accord.changes("todo-sdk", since=6, limit=10)
        assert log["head"] == 8 and [c["seq"] for c in log["changes"]] == [7, 8]
        page = await accord.presence("todo-sdk")
        assert (page["count"], page["peers"]) == (0, [])
        await accord.broadcast("todo-sdk", {"hello": "room"}, channel="ops")
        with pytest.raises(Forbidden):
            await accord.push("chat-1", [change("c", "k", set_op(a=1))], client_id="x")


async def test_client_seqs_keep_increasing_across_clients(suite: Suite) -> None:
    async with ServerClient(suite.http_url, token=TOKEN) as first:
        await first.push("todo-seq", [change("todos", "a", set_op(n=1))], client_id="svc")
    # A restarted backend (a new client) still numbers above what it stored before.
    async with ServerClient(suite.http_url, token=TOKEN) as second:
        (result,) = await second.push(
            "todo-seq", [change("todos", "a", set_op(n=2))], client_id="svc"
        )
        assert result["status"] == "applied" and result["seq"] == 2


async def test_a_lost_answer_is_retried_with_the_same_client_seq_and_applied_once(
    suite: Suite, proxy_url: tuple[str, list[FlakyProxy]]
) -> None:
    url, proxies = proxy_url
    proxy = proxies[0]
    proxy.lose = 1
    async with ServerClient(url, token=TOKEN, backoff=FAST) as accord:
        (result,) = await accord.push(
            "todo-retry", [change("todos", "t", set_op(n=1))], client_id="svc"
        )
        assert (result["status"], result["seq"]) == ("duplicate", 1)
        assert len(proxy.bodies) == 2 and proxy.bodies[0] == proxy.bodies[1]
        proxy.refuse = 2
        (result,) = await accord.push(
            "todo-retry", [change("todos", "t", set_op(n=2))], client_id="svc"
        )
        assert (result["status"], result["seq"]) == ("applied", 2)
        assert len(proxy.bodies) == 5
    async with ServerClient(suite.http_url, token=TOKEN) as direct:
        log = await direct.changes("todo-retry")
        assert [c["seq"] for c in log["changes"]] == [1, 2]


async def test_a_gone_page_raises_gone(make_suite: Any) -> None:
    suite = await make_suite(sync_env={"LOG_RETENTION": "2"})
    async with ServerClient(suite.http_url, token=TOKEN) as accord:
        for i in range(6):
            await accord.push("todo-g", [change("todos", "t", set_op(n=i))], client_id="s")
        with pytest.raises(Gone):
            await accord.changes("todo-g", since=1)


def example() -> str:
    text = (ROOT / "docs" / "sdk-python.md").read_text()
    match = re.search(
        r"<!-- example: server-client[^>]*-->\n```python run secret\n(.*?)```", text, re.S
    )
    assert match, "docs/sdk-python.md lost its server-client example"
    return match.group(1)


async def test_the_documented_example_runs_verbatim(suite: Suite, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(example())
    env = {**os.environ, "ACCORD_HTTP_URL": suite.http_url, "ACCORD_TOKEN": TOKEN}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == "applied 1"
    assert lines[1] == "t-1 {'done': False, 'title': 'milk'}"
    assert lines[2].startswith("1 [")
    assert lines[3] == "0"

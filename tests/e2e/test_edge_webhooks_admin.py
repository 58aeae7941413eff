"""The edge's webhook admin routes over sync's Webhooks service, in a suite with a
WEBHOOKS_FILE: an endpoint whose receiver keeps failing is listed parked with its backlog,
a resume delivers the backlog, and both routes want ADMIN_TOKEN."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.suite import Suite
from tests.support.webhook_receiver import Receiver, new_secret
from tests.support.wsclient import make_token

pytestmark = pytest.mark.e2e

ADMIN = "admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
WAIT = 15.0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = await Receiver(new_secret()).start()
    yield made
    await made.stop()


@pytest.fixture
async def suite(make_suite: Any, tmp_path: Path, receiver: Receiver) -> Suite:
    hooks = tmp_path / "webhooks.json"
    endpoint = {
        "id": "app",
        "url": receiver.url,
        "rooms": ["doc:*"],
        "secret": receiver.secret,
        "max_attempts": 2,
    }
    hooks.write_text(json.dumps({"endpoints": [endpoint]}))
    sync_env = {
        "WEBHOOKS_FILE": str(hooks),
        "WEBHOOK_BACKOFF_BASE": "0.05",
        "WEBHOOK_BACKOFF_MAX": "0.2",
        "WEBHOOK_POLL_INTERVAL": "0.05",
        "WEBHOOK_TIMEOUT": "2",
    }
    made: Suite = await make_suite(sync_env=sync_env, edge_env={"ADMIN_TOKEN": ADMIN})
    return made


async def listed(http: aiohttp.ClientSession, suite: Suite) -> dict[str, dict[str, Any]]:
    async with http.get(f"{suite.http_url}/admin/webhooks", headers=AUTH) as answer:
        assert answer.status == 200
        body = await answer.json()
    return {e["id"]: e for e in body["endpoints"]}


async def test_a_parked_endpoint_is_listed_and_resumed_through_the_edge(
    suite: Suite, receiver: Receiver
) -> None:
    receiver.script.extend([500, 500])
    async with await suite.client() as client, aiohttp.ClientSession() as http:
        await client.hello(make_token())
        await client.subscribe("doc:1")
        change = {"client_seq": 1, "collection": "c", "key": "k", "op": {"kind": "delete"}}
        ack = await client.push("doc:1", [change])
        assert ack["results"][0]["status"] == "applied"
        deadline = time.monotonic() + WAIT
        while not (shown := (await listed(http, suite))["app"])["parked"]:
            assert time.monotonic() < deadline, shown
            await asyncio.sleep(0.05)
        assert (shown["parked_reason"], shown["attempts"], shown["backlog_changes"]) == (
            "HTTP 500",
            2,
            1,
        )
        assert (shown["url"], shown["rooms"], shown["configured"]) == (
            receiver.url,
            ["doc:*"],
            True,
        )
        url = f"{suite.http_url}/admin/webhooks/app/resume"
        async with http.post(url, headers=AUTH) as answer:
            assert answer.status == 200
            resumed = await answer.json()
        assert resumed["was_parked"] is True and resumed["endpoint"]["parked"] is False
        await receiver.wait_until(lambda: receiver.seqs("doc:1") == [1])
        async with http.post(f"{suite.http_url}/admin/webhooks/nobody/resume", headers=AUTH) as a:
            assert a.status == 404
            assert (await a.json())["error"] == "NOT_FOUND"


async def test_the_webhook_routes_want_the_admin_token(suite: Suite) -> None:
    async with aiohttp.ClientSession() as http:
        wrong = {"Authorization": "Bearer nope"}
        async with http.get(f"{suite.http_url}/admin/webhooks", headers=wrong) as answer:
            assert answer.status == 401
        async with http.post(f"{suite.http_url}/admin/webhooks/app/resume") as answer:
            assert answer.status == 401
        assert "app" in await listed(http, suite)

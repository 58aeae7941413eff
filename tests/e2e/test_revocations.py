"""Revocations and admin disconnects across edges (through Redis), restarts and expiry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from tests.support.edges import start_edge, urls
from tests.support.redis_server import PrivateRedis
from tests.support.wsclient import Client, make_token

pytestmark = pytest.mark.e2e

ADMIN = "admin-token-0123456789-abcdef"


async def call(
    edge: Any, method: str, path: str, body: Any = None, token: str = ADMIN
) -> tuple[int, Any]:
    _, http_url = urls(edge)
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, f"{http_url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


async def listing(edge: Any) -> list[dict[str, Any]]:
    status, body = await call(edge, "GET", "/admin/revocations")
    assert status == 200, body
    rules: list[dict[str, Any]] = body["revocations"]
    return rules


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.05)


def change(client_seq: int) -> dict[str, Any]:
    op = {"kind": "set", "fields": {"n": client_seq}}
    return {"client_seq": client_seq, "collection": "c", "key": "k", "op": op}


async def test_revocations_reach_every_edge_and_survive_a_restart(
    make_suite: Any, private_redis: PrivateRedis
) -> None:
    suite = await make_suite()
    env = {"ADMIN_TOKEN": ADMIN, "REDIS_URL": private_redis.url, "REDIS_PREFIX": "rv"}
    token = make_token("u-alice")
    async with AsyncExitStack() as stack:
        edge_a = await start_edge(stack, suite, env)
        b_stack = await stack.enter_async_context(AsyncExitStack())
        edge_b = await start_edge(b_stack, suite, env)
        alice = await Client.connect(urls(edge_b)[0])
        stack.push_async_callback(alice.close)
        await alice.hello(token)
        await alice.subscribe("secret-1")
        await alice.subscribe("public")

        # Revoked on A: the session on B loses the room.
        status, body = await call(
            edge_a, "POST", "/admin/revoke", {"user_id": "u-alice", "room": "secret-*"}
        )
        assert status == 200 and body["expires_at"] is None, body
        lost = await alice.expect(
            lambda m: m.get("type") == "error" and m.get("room") == "secret-1"
        )
        assert lost["code"] == "FORBIDDEN"
        assert (await alice.request({"type": "subscribe", "room": "secret-2"}))["code"] == (
            "FORBIDDEN"
        )
        assert (await alice.push("public", [change(1)]))["type"] == "ack"
        expected = [
            {"user_id": "u-alice", "room": "secret-*", "access": "read", "expires_at": None}
        ]
        assert await listing(edge_a) == expected
        assert await listing(edge_b) == expected

        # The server API on B refuses the revoked room too.
        _, http_b = urls(edge_b)
        async with aiohttp.ClientSession() as http:
            for room, status_expected in (("secret-1", 403), ("public", 200)):
                async with http.get(
                    f"{http_b}/api/v1/rooms/{room}/records",
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    assert response.status == status_expected, await response.text()

        # B restarts: it still lists and enforces the revocation.
        await alice.close()
        await b_stack.aclose()
        edge_b = await start_edge(stack, suite, env)
        assert await listing(edge_b) == expected
        alice = await Client.connect(urls(edge_b)[0])
        stack.push_async_callback(alice.close)
        await alice.hello(token)
        assert (await alice.request({"type": "subscribe", "room": "secret-1"}))["code"] == (
            "FORBIDDEN"
        )
        await alice.subscribe("public")

        # A revocation with a ttl is lifted on every edge when it expires.
        status, body = await call(
            edge_a,
            "POST",
            "/admin/revoke",
            {"user_id": "u-alice", "room": "public", "access": "write", "ttl": 1.5},
        )
        assert status == 200 and body["expires_at"].endswith("Z"), body

        async def forbidden_on_b() -> bool:
            return len(await listing(edge_b)) == 2

        await eventually(forbidden_on_b)
        assert (await alice.push("public", [change(2)]))["code"] == "FORBIDDEN"

        async def lifted() -> bool:
            return await listing(edge_a) == expected and await listing(edge_b) == expected

        await eventually(lifted)
        assert (await alice.push("public", [change(2)]))["type"] == "ack"

        # Lifted on B: gone on A too.
        status, body = await call(
            edge_b, "DELETE", "/admin/revoke", {"user_id": "u-alice", "room": "secret-*"}
        )
        assert (status, body) == (200, {"removed": True})

        async def empty_on_a() -> bool:
            return await listing(edge_a) == []

        await eventually(empty_on_a)
        await alice.subscribe("secret-1")

        # An admin disconnect on A closes the user's session on B with 4003.
        bob = await Client.connect(urls(edge_b)[0])
        stack.push_async_callback(bob.close)
        await bob.hello(make_token("u-bob"), client_id="c-bob")
        status, body = await call(edge_a, "POST", "/admin/disconnect", {"user_id": "u-alice"})
        assert (status, body) == (200, {"disconnected": 0, "other_edges": "told"})
        assert await alice.closed() == 4003
        assert (await bob.request({"type": "ping"}))["type"] == "pong"


async def test_expiry_and_validation_on_a_single_edge(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"ADMIN_TOKEN": ADMIN})
    edge = suite.extra["edge"]
    for bad in (
        {"user_id": "u", "room": "r", "ttl": 0},
        {"user_id": "u", "room": "r", "ttl": "soon"},
        {"user_id": "u", "room": "r", "ttl": 5, "expires_at": time.time() + 60},
        {"user_id": "u", "room": "r", "expires_at": time.time() - 1},
        {"user_id": "u", "room": "r", "expires_at": "2030-01-01T00:00:00"},  # no offset
    ):
        status, body = await call(edge, "POST", "/admin/revoke", bad)
        assert (status, body["error"]) == (400, "BAD_REQUEST"), bad
    assert await listing(edge) == []
    status, body = await call(
        edge,
        "POST",
        "/admin/revoke",
        {"user_id": "u-carol", "room": "r-*", "expires_at": "2999-01-01T00:00:00Z"},
    )
    assert (status, body["error"]) == (400, "BAD_REQUEST")  # beyond 10 years
    at = time.time() + 1.0
    status, body = await call(
        edge, "POST", "/admin/revoke", {"user_id": "u-carol", "room": "r-*", "expires_at": at}
    )
    assert status == 200, body
    status, whole = await call(edge, "GET", "/admin/revocations")
    assert whole["shared"] is False and len(whole["revocations"]) == 1
    async with await Client.connect(suite.ws_url) as carol:
        await carol.hello(make_token("u-carol"))
        assert (await carol.request({"type": "subscribe", "room": "r-1"}))["code"] == "FORBIDDEN"

        async def gone() -> bool:
            return await listing(edge) == []

        await eventually(gone)
        await carol.subscribe("r-1")


async def test_a_redis_that_lost_its_data_gets_the_revocations_back(
    make_suite: Any, private_redis: PrivateRedis
) -> None:
    suite = await make_suite()
    env = {"ADMIN_TOKEN": ADMIN, "REDIS_URL": private_redis.url}
    rule = {"user_id": "u-dave", "room": "vault", "access": "read"}
    async with AsyncExitStack() as stack:
        edge_a = await start_edge(stack, suite, env)
        edge_b = await start_edge(stack, suite, env)
        assert (await call(edge_a, "POST", "/admin/revoke", rule))[0] == 200
        expected = [{**rule, "expires_at": None}]
        # A restart of a Redis without persistence: it comes back empty.
        private_redis.stop()
        private_redis.start()
        await private_redis.ready()
        edge_c = await start_edge(stack, suite, env)

        async def listed_everywhere() -> bool:
            return all([await listing(edge) == expected for edge in (edge_a, edge_b, edge_c)])

        await eventually(listed_everywhere, timeout=20)
        async with await Client.connect(urls(edge_c)[0]) as dave:
            await dave.hello(make_token("u-dave"))
            assert (await dave.request({"type": "subscribe", "room": "vault"}))["code"] == (
                "FORBIDDEN"
            )

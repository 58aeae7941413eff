"""The edge with the application's own identity provider (JWKS_URL), end to end.

An IdP-shaped RS256 token subscribes within its grants; after the provider
rotates its keys, a token with the new ``kid`` works without a restart; an edge
that has never reached its provider says so on ``/ready``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from typing import Any

import aiohttp
import jwt
import pytest

from tests.support.idp import IdentityProvider, new_key
from tests.support.ports import free_port
from tests.support.suite import ACCORD, Suite
from tests.support.wsclient import SECRET

pytestmark = pytest.mark.e2e

AUDIENCE = "https://api.todo.example"


def grants(rooms: list[str]) -> dict[str, Any]:
    return {"aud": [AUDIENCE, "userinfo"], "app_metadata": {"accord": {"rooms": rooms}}}


async def first_reply(suite: Suite, message: dict[str, Any]) -> dict[str, Any]:
    async with await suite.client() as client:
        await client.send({**message, "id": 1})
        return await client.reply(1)


async def test_an_idp_token_subscribes_and_rotation_needs_no_restart(
    make_suite: Any, idp: IdentityProvider
) -> None:
    first = idp.add(new_key("2025-11"))
    suite = await make_suite(
        edge_env={
            "JWKS_URL": idp.jwks_url,
            "JWT_AUDIENCE": AUDIENCE,
            "JWT_ISSUER": idp.issuer,
            "JWT_ROOMS_CLAIM": "app_metadata.accord.rooms",
            "JWKS_REFETCH_INTERVAL": "0",
        }
    )
    async with await suite.client() as client:
        await client.hello(idp.token(first, {"sub": "auth0|ada", **grants(["todo-*"])}), "ada-1")
        assert (await client.subscribe("todo-ada"))["type"] == "subscribed"
        reply = await client.request({"type": "subscribe", "room": "admin"})
        assert reply["code"] == "FORBIDDEN"

    idp.remove("2025-11")
    second = idp.add(new_key("2026-01", "ES256"))
    async with await suite.client() as client:
        welcome = await client.hello(
            idp.token(second, {"sub": "auth0|bob", **grants(["todo-*"])}), "bob-1"
        )
        assert welcome["user_id"] == "auth0|bob"
        assert (await client.subscribe("todo-bob"))["type"] == "subscribed"

    stale = idp.token(first, {"sub": "auth0|ada", **grants(["todo-*"])})
    reply = await first_reply(suite, {"type": "hello", "client_id": "ada-2", "token": stale})
    assert reply["code"] == "UNAUTHENTICATED"
    wrong_audience = idp.token(second, {"sub": "x", **grants(["todo-*"]), "aud": "other"})
    reply = await first_reply(suite, {"type": "hello", "client_id": "x-1", "token": wrong_audience})
    assert reply["code"] == "UNAUTHENTICATED"


async def test_an_edge_that_never_reached_its_provider_is_not_ready_until_it_does(
    make_suite: Any, idp: IdentityProvider
) -> None:
    key = idp.add(new_key("k1"))
    idp.down = True
    port = free_port()
    env = {"JWKS_URL": idp.jwks_url, "WS_ADDR": f"127.0.0.1:{port}"}
    starting = asyncio.create_task(make_suite(edge_env=env))  # returns once /ready is 200
    body: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http, asyncio.timeout(20):
        while not body:
            try:
                async with http.get(f"http://127.0.0.1:{port}/ready") as response:
                    assert response.status == 503
                    body = await response.json()
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    assert body["jwks"] is False and body["sync"] is True
    assert not starting.done()
    idp.down = False
    suite: Suite = await asyncio.wait_for(starting, 20)
    async with await suite.client() as client:
        assert (await client.hello(idp.token(key, {"sub": "u-1"}), "c-1"))["user_id"] == "u-1"


def accord_token(*args: str, secret: str = SECRET) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JWT_SECRET": secret}
    return subprocess.run(
        [ACCORD, "token", *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


async def test_accord_token_mints_a_token_the_edge_accepts_with_its_grants(suite: Suite) -> None:
    minted = accord_token("--sub", "ada", "--rooms", "todo-*", "--write", "--ttl", "15m")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["rooms"] == ["todo-*"] and claims["write"] == []
    assert 899 <= claims["exp"] - claims["iat"] <= 900
    async with await suite.client() as client:
        assert (await client.hello(token, "ada-1"))["user_id"] == "ada"
        assert (await client.subscribe("todo-1"))["type"] == "subscribed"
        reply = await client.push(
            "todo-1",
            [
                {
                    "client_seq": 1,
                    "collection": "c",
                    "key": "k",
                    "op": {"kind": "set", "fields": {"a": 1}},
                }
            ],
        )
        assert reply["code"] == "FORBIDDEN"  # --write with no pattern: no write access
        assert (await client.request({"type": "subscribe", "room": "chat"}))["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("args", "secret", "fragment"),
    [
        (["--sub", "u"], "", "needs JWT_SECRET"),
        (["--sub", "u"], "short", "at least 32 bytes"),
        (["--sub", "u", "--ttl", "5y"], SECRET, "not a duration"),
        (["--sub", "u", "--ttl", "400d"], SECRET, "366 days"),
        (["--rooms", "x"], SECRET, "--sub"),
    ],
)
def test_accord_token_refuses_bad_input_with_one_line(
    args: list[str], secret: str, fragment: str
) -> None:
    result = accord_token(*args, secret=secret)
    assert result.returncode == 2
    assert result.stdout == ""
    assert fragment in result.stderr

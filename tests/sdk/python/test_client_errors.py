"""Protocol errors from the real edge arrive as their typed exceptions; tokens get refreshed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from accord.client import (
    AccordError,
    BadRequest,
    Client,
    Forbidden,
    NotSubscribed,
    RateLimited,
    RejectedChange,
    State,
    TokenExpired,
    TooLarge,
    Unauthenticated,
    Unavailable,
    Unsupported,
)

from tests.sdk.python.conftest import FAST, MakeClient, within
from tests.support.ports import free_port
from tests.support.suite import UNPROTECTED_GRPC, Suite
from tests.support.wsclient import make_token


async def test_bad_and_expired_tokens_fail_start(suite: Suite) -> None:
    with pytest.raises(Unauthenticated) as bad:
        async with Client(suite.ws_url, token="garbage", backoff=FAST):
            pass
    assert type(bad.value) is Unauthenticated
    client = Client(suite.ws_url, token=make_token(ttl=-10), backoff=FAST)
    with pytest.raises(TokenExpired):
        await client.start()
    assert client.status.state == State.FAILED
    await client.close()


async def test_requests_raise_their_typed_errors(suite: Suite, make_client: MakeClient) -> None:
    client = await make_client(suite.ws_url, client_id="errs")
    room = await client.join("room-e")
    with pytest.raises(BadRequest):
        await client.request({"type": "subscribe", "room": "room-e"})
    with pytest.raises(NotSubscribed) as not_subscribed:
        await client.request(
            {
                "type": "push",
                "room": "elsewhere",
                "changes": [
                    {"client_seq": 1, "collection": "c", "key": "k", "op": {"kind": "delete"}}
                ],
            }
        )
    assert not_subscribed.value.room == "elsewhere"
    with pytest.raises(Unsupported):
        await client.request({"type": "teleport"})
    with pytest.raises(TooLarge):
        await client.request({"type": "broadcast", "room": "room-e", "data": "x" * 70_000})
    assert (await client.request({"type": "ping"}))["type"] == "pong", "the session goes on"
    assert room.subscribed


async def test_forbidden_rooms_and_refused_changes(suite: Suite, make_client: MakeClient) -> None:
    errors: list[Exception] = []
    client = await make_client(
        suite.ws_url,
        token=make_token("u-1", rooms=["open", "read-*"], write=["open"]),
        on_error=errors.append,
    )
    with pytest.raises(Forbidden):
        await client.join("secret")
    assert "secret" not in client.rooms
    room = await client.join("read-only")
    await room.set("todos", "t", title="nope")
    assert room.get("todos", "t") == {"title": "nope"}, "shown optimistically"
    await within(room.wait_until(lambda: room.pending == 0))
    assert room.get("todos", "t") is None, "refused: gone from the view and the queue"
    rejected = [e for e in errors if isinstance(e, RejectedChange)]
    assert len(rejected) == 1 and isinstance(rejected[0].cause, Forbidden)
    assert rejected[0].change.key == "t"
    await within(client.wait_synced())


async def test_rate_limited_requests(make_suite: Any, make_client: MakeClient) -> None:
    suite = await make_suite(edge_env={"RATE_LIMIT": "1", "RATE_BURST": "3"})
    client = await make_client(suite.ws_url, client_id="greedy")
    with pytest.raises(RateLimited) as limited:
        for _ in range(6):
            await client.request({"type": "ping"})
    assert limited.value.retry_after_ms > 0


async def test_unavailable_when_sync_is_down(suite: Suite, make_client: MakeClient) -> None:
    from accord.edge.app import serve
    from accord.edge.settings import Settings

    edge_settings = suite.extra["edge"].edge.settings
    settings = Settings.from_env(
        {
            "WS_ADDR": "127.0.0.1:0",
            "SYNC_ADDR": f"127.0.0.1:{free_port()}",
            "PRESENCE_ADDR": edge_settings.presence_target,
            "JWT_SECRET": edge_settings.identity.secret or "",
            "RPC_TIMEOUT": "0.5",
            **UNPROTECTED_GRPC,
        }
    )
    async with serve(settings) as running:
        client = await make_client(f"ws://127.0.0.1:{running.port}/ws", client_id="unavail")
        with pytest.raises(Unavailable):
            await within(client.join("room-u"))
        assert client.rooms == {}


async def test_token_provider_refreshes_before_expiry_and_after_4001(
    suite: Suite, make_client: MakeClient
) -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return make_token("u-1", ttl=2)

    # The first token is already expired: the provider is asked for a new one.
    client = await make_client(
        suite.ws_url, token=make_token("u-1", ttl=-10), token_provider=provider
    )
    room = await client.join("room-t")
    assert calls == 1
    # Outlive several 2-second tokens: the client refreshes them on the session.
    await asyncio.sleep(4.5)
    assert calls >= 3
    assert client.status.state == State.SYNCED
    await room.set("todos", "t", ok=True)
    await within(client.wait_synced())
    assert room.seq == 1


async def test_an_expired_session_without_provider_fails_typed(
    suite: Suite, make_client: MakeClient
) -> None:
    errors: list[Exception] = []
    client = await make_client(suite.ws_url, token=make_token("u-1", ttl=3), on_error=errors.append)
    await client.join("room-x")
    with pytest.raises(AccordError):
        await within(client.wait_until(lambda: False))
    assert isinstance(client.error, TokenExpired)
    assert client.status.state == State.FAILED
    assert any(isinstance(e, TokenExpired) for e in errors)


HOOKED = {"EDGE_EXTENSIONS": "tests.support.edge_hooks:factory", "EXTENSION_TIMEOUT": "0.3"}


async def test_a_hello_the_server_fails_for_now_is_retried(
    make_suite: Any, make_client: MakeClient
) -> None:
    # on_authenticate raises for the first two hellos (INTERNAL, then the edge closes with 4001):
    # with a fixed token the client reconnects with backoff instead of giving up.
    suite = await make_suite(edge_env=HOOKED)
    errors: list[Exception] = []
    client = await within(
        make_client(suite.ws_url, token=make_token("u-flaky", fail_first=2), on_error=errors.append)
    )
    assert client.status.state in (State.SYNCED, State.SYNCING)
    assert [type(e).__name__ for e in errors] == ["Internal", "Internal"]
    room = await client.join("room-flaky")
    await room.set("todos", "t-1", title="after the outage")
    await within(client.wait_synced())


async def test_a_hello_refused_for_good_still_fails(make_suite: Any) -> None:
    suite = await make_suite(edge_env=HOOKED)
    client = Client(suite.ws_url, token=make_token("u-2", ban=True), backoff=FAST)
    with pytest.raises(Forbidden):
        await within(client.start())
    assert client.status.state == State.FAILED
    await client.close()

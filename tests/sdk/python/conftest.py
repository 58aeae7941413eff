"""Helpers for the Python SDK tests against the real suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from accord.client import Backoff, Client

from tests.support.wsclient import Client as RawClient
from tests.support.wsclient import Replica as RawReplica
from tests.support.wsclient import make_token, sync_until

FAST = Backoff(initial=0.05, maximum=0.5, multiplier=2.0, jitter=0.5, throttled=0.5)
WAIT = 30.0

MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """``await make_client(url, "u-a", client_id=..., **options)``: started, auto-closed."""
    async with AsyncExitStack() as stack:

        async def make(url: str, sub: str = "u-1", *, wait: bool = True, **options: Any) -> Client:
            options.setdefault("backoff", FAST)
            if "token" not in options and "token_provider" not in options:
                options["token"] = make_token(sub)
            client = Client(url, **options)
            stack.push_async_callback(client.close)
            await client.start(wait=wait)
            return client

        yield make


async def server_state(url: str, room: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """The room's head and records, read by a plain protocol client."""
    async with await RawClient.connect(url) as raw:
        await raw.hello(make_token("u-reader"), client_id="reader")
        head = (await raw.subscribe(room))["head"]
        replica = RawReplica()
        await sync_until(raw, replica, head)
        records: dict[str, dict[str, Any]] = {}
        for (collection, key), value in replica.records.items():
            records[f"{collection}/{key}"] = value
        return head, records


def flat(client_records: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {f"{c}/{k}": v for c, records in client_records.items() for k, v in records.items()}


def room_view(room: Any) -> dict[str, dict[str, Any]]:
    return flat({c: room.records(c) for c in room.collections()})


async def within(awaitable: Awaitable[Any], seconds: float = WAIT) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable

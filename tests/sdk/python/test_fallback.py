"""The Python SDK's HTTP fallback: through a proxy that refuses WebSocket upgrades it syncs
over SSE, moves back to the WebSocket once the proxy lets it through, and reports a
proxy that buffers the stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from accord.client import Fallback, State, StreamBuffered
from aiohttp import web

from tests.sdk.python.conftest import MakeClient, within
from tests.support.suite import Suite

HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}


class Proxy:
    """A reverse proxy to the edge that may refuse WebSocket upgrades (403, as some corporate
    proxies do) and may buffer whole responses before passing them on."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.block_websockets = True
        self.buffer = False
        self.refused = 0
        self.http = aiohttp.ClientSession()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if self.block_websockets:
                self.refused += 1
                return web.Response(status=403, text="WebSockets are not allowed here")
            return await self._websocket(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        upstream = await self.http.request(
            request.method,
            self.upstream + request.path_qs,
            data=await request.read(),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        back = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP}
        try:
            if self.buffer:  # the whole body first: a stream that never ends never comes
                return web.Response(
                    status=upstream.status, body=await upstream.read(), headers=back
                )
            response = web.StreamResponse(status=upstream.status, headers=back)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            return response
        finally:
            upstream.close()

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        down = web.WebSocketResponse()
        await down.prepare(request)
        url = self.upstream.replace("http://", "ws://") + request.path_qs
        async with self.http.ws_connect(url) as up:

            async def pump(source: Any, sink: Any) -> None:
                async for msg in source:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await sink.send_str(msg.data)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        await sink.send_bytes(msg.data)
                await sink.close()

            await asyncio.wait(
                [asyncio.create_task(pump(down, up)), asyncio.create_task(pump(up, down))],
                return_when=asyncio.FIRST_COMPLETED,
            )
        return down


@pytest.fixture
async def proxy(suite: Suite) -> AsyncIterator[Proxy]:
    proxy = Proxy(suite.http_url)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    proxy.url = f"ws://127.0.0.1:{port}/ws"
    try:
        yield proxy
    finally:
        await proxy.http.close()
        with contextlib.suppress(Exception):
            await runner.cleanup()


async def test_refused_websockets_fall_back_to_sse_sync_and_move_back(
    suite: Suite, proxy: Proxy, make_client: MakeClient
) -> None:
    fallback = Fallback(after=2, websocket_retry=0.5)
    alice = await make_client(proxy.url, "u-a", client_id="fb-alice", fallback=fallback)
    assert proxy.refused >= 2
    assert alice.status.transport == "sse"
    bob = await make_client(suite.ws_url, "u-b", client_id="fb-bob")
    assert bob.status.transport == "websocket"
    ra = await alice.join("fb-room", presence={"who": "alice"})
    rb = await bob.join("fb-room")
    await ra.set("todos", "t-1", title="over sse")
    await within(rb.wait_until(lambda: rb.get("todos", "t-1") == {"title": "over sse"}))
    await rb.set("todos", "t-2", title="to sse")
    await within(ra.wait_until(lambda: ra.get("todos", "t-2") == {"title": "to sse"}))
    await within(alice.wait_synced())
    assert alice.status.state == State.SYNCED and alice.status.transport == "sse"

    proxy.block_websockets = False
    await within(alice.wait_until(lambda: alice.status.transport == "websocket"))
    await within(alice.wait_synced())
    await ra.set("todos", "t-3", title="over the websocket again")
    await within(rb.wait_until(lambda: rb.get("todos", "t-3") is not None))
    await rb.set("todos", "t-4", title="and back")
    await within(ra.wait_until(lambda: ra.get("todos", "t-4") is not None))
    assert alice.status.transport == "websocket"


async def test_only_websocket_never_falls_back(proxy: Proxy, make_client: MakeClient) -> None:
    client = await make_client(
        proxy.url, wait=False, fallback=Fallback(transports=["websocket"], after=1)
    )
    await within(client.wait_until(lambda: proxy.refused >= 3))
    assert client.status.state in (State.CONNECTING, State.OFFLINE)
    assert client.status.transport is None


async def test_a_buffering_proxy_is_reported_and_the_client_reconnects(
    proxy: Proxy, make_client: MakeClient
) -> None:
    proxy.buffer = True
    errors: list[Exception] = []
    client = await make_client(
        proxy.url,
        wait=False,
        on_error=errors.append,
        fallback=Fallback(transports=["sse"], stream_timeout=0.5),
    )
    await within(client.wait_until(lambda: bool(errors)), seconds=5)
    assert isinstance(errors[0], StreamBuffered)
    assert "stream buffered by a proxy" in str(errors[0])
    assert client.status.state in (State.CONNECTING, State.OFFLINE)  # not FAILED: it retries
    proxy.buffer = False  # the proxy is fixed: the next attempt gets through
    await within(client.wait_until(lambda: client.status.transport == "sse"))
    room = await client.join("buffered")
    await room.set("todos", "t", title="through")
    await within(client.wait_synced())


async def test_the_guides_fallback_example_runs() -> None:
    """docs/sdk-python.md's example, verbatim: the options it shows are what a client takes."""
    import re

    from tests.support.suite import ROOT

    text = (ROOT / "docs" / "sdk-python.md").read_text()
    section = text.split("## Transports and the HTTP fallback", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/sdk-python.md lost its fallback example"
    scope: dict[str, Any] = {"url": "ws://127.0.0.1:9/ws", "token": "t"}
    exec(match.group(1), scope)
    assert scope["client"]._transports.fallback_after == 1
    assert scope["client"]._transports.websocket_retry == 60
    assert scope["only_ws"]._transports.choose() == "websocket"
    with pytest.raises(ValueError):
        Fallback(transports=["carrier-pigeon"])

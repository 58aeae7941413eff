"""More edges beside an in-process suite: the same sync and presence, an edge's own settings."""

from __future__ import annotations

import asyncio
import ssl
import time
from contextlib import AsyncExitStack
from typing import Any

import aiohttp

from tests.support.suite import UNPROTECTED_GRPC, Suite
from tests.support.wsclient import SECRET


async def start_edge(
    stack: AsyncExitStack,
    suite: Suite,
    env: dict[str, str],
    ssl_context: ssl.SSLContext | None = None,
) -> Any:
    """Another edge (its ``Running``) on a free port, against ``suite``'s sync and presence;
    ready when this returns. With ``ssl_context`` (a client's, trusting the edge's CA) it is
    asked for ``/ready`` over https."""
    from accord.edge.app import serve
    from accord.edge.settings import Settings

    settings = Settings.from_env(
        {
            "WS_ADDR": "127.0.0.1:0",
            "SYNC_ADDR": f"127.0.0.1:{suite.extra['sync'].port}",
            "PRESENCE_ADDR": f"127.0.0.1:{suite.extra['presence'].port}",
            "JWT_SECRET": SECRET,
            **UNPROTECTED_GRPC,
            **env,
        }
    )
    edge = await stack.enter_async_context(serve(settings))
    scheme = "https" if ssl_context is not None else "http"
    await wait_ready(f"{scheme}://127.0.0.1:{edge.port}", ssl_context)
    return edge


async def wait_ready(
    url: str, ssl_context: ssl.SSLContext | None = None, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{url}/ready", ssl=ssl_context or True) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} never became ready")


def urls(edge: Any, tls: bool = False) -> tuple[str, str]:
    """The edge's WebSocket and HTTP base URLs."""
    secure = "s" if tls else ""
    return f"ws{secure}://127.0.0.1:{edge.port}/ws", f"http{secure}://127.0.0.1:{edge.port}"

"""``accord dev --one-process``: edge, sync and presence in this one process, on one event
loop, with the environments ``accord dev`` validated for its children.

Nothing crosses a process boundary between the three: the edge's pushes go over the push
socket within the process, its reads and Subscribe streams over loopback gRPC. On one
core that saves the wake-ups of three processes (docs/benchmarks.md, "One process"); it
also uses one core at most, and a crash takes all three down together. The sync and
presence metrics ports are not opened: the edge's ``/metrics`` serves the process's one
registry, every service's metrics in it. Stopping drains the edge first, then stops
presence and sync, as ``accord dev`` stops its children.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from accord.common import config, lifecycle
from accord.common.logs import setup_logging


@asynccontextmanager
async def serve_all(envs: Mapping[str, Mapping[str, str]]) -> AsyncIterator[int]:
    """Sync, presence, then the edge, served until the block ends; the edge's port."""
    from accord.edge.app import serve as serve_edge
    from accord.edge.settings import Settings as EdgeSettings
    from accord.presence.app import serve as serve_presence
    from accord.presence.settings import Settings as PresenceSettings
    from accord.sync.app import serve as serve_sync
    from accord.sync.settings import Settings as SyncSettings

    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            serve_sync(SyncSettings.from_env({**envs["sync"], "METRICS_ADDR": ""}))
        )
        await stack.enter_async_context(
            serve_presence(PresenceSettings.from_env({**envs["presence"], "METRICS_ADDR": ""}))
        )
        edge = await stack.enter_async_context(serve_edge(EdgeSettings.from_env(envs["edge"])))
        yield edge.port


def run(envs: Mapping[str, Mapping[str, str]]) -> int:
    """Serve all three until SIGTERM or SIGINT; the exit code (2: a bad setting or address)."""
    from accord.edge.settings import Settings as EdgeSettings

    edge = EdgeSettings.from_env(envs["edge"])
    setup_logging("accord", edge.log_level, edge.log_format)
    host = config.get_addr(envs["edge"], "WS_ADDR", "0.0.0.0:8080")[0]

    async def until_stopped(stopping: lifecycle.Stopping) -> None:
        async with serve_all(envs) as port:
            stopping.started()
            print(
                f"accord dev: running in one process: ws://{config.address_shown(host, port)}/ws"
                "  (Ctrl-C stops it)",
                file=sys.stderr,
                flush=True,
            )
            await stopping.event.wait()
            print("accord dev: stopping", file=sys.stderr, flush=True)

    lifecycle.run(until_stopped, edge.drain_timeout)
    return 0

"""Process lifecycle: signals, event loop policy, and the shutdown contract.

Every service runs ``main`` as ``run(serve)``, where ``serve(stop)`` starts
everything, waits for ``stop`` (set on SIGTERM or SIGINT), then tears down in
reverse order through its ``AsyncExitStack``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from accord.common.config import ConfigError

log = logging.getLogger(__name__)

S = TypeVar("S")


def run(serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    try:
        _run_loop(main())
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        sys.exit(2)


def load_settings(factory: Callable[[], S]) -> S:
    """Build a settings object, or stop the process with one clear line."""
    try:
        return factory()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        sys.exit(2)


GC_THRESHOLDS = (50_000, 20, 100)
"""The cyclic collector's thresholds in the services (CPython's default: 700, 10, 10).

A service allocates short-lived objects by the million (frames, protobuf
messages, futures) and frees nearly all of them by reference counting; with
the defaults the collector ran so often that it took 5-15 % of the sync and
edge processes' CPU under load (py-spy --native). Cycles are still collected,
in fewer, larger passes.
"""


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    tune_gc()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main)
        return
    uvloop.run(main)

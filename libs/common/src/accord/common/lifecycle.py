"""Process lifecycle: signals, event loop policy, and the shutdown contract.

Every service's ``__main__`` has one shape: load its settings (one clear line
and exit 2 when they are bad), set up logging, then ``serve_until_stopped``,
which enters the service's ``serve(settings)`` context, waits for SIGTERM or
SIGINT, and tears down in reverse order through its ``AsyncExitStack``. A
service that cannot bind its address raises ``BindError``: one line, exit 2.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from accord.common.config import ConfigError
from accord.common.logs import setup_logging

log = logging.getLogger(__name__)

S = TypeVar("S")


class BindError(OSError):
    """A service cannot listen on its address (in use, not local, not permitted)."""

    def __init__(self, setting: str, addr: str, reason: str) -> None:
        super().__init__(f"cannot listen on {setting}={addr}: {reason}")


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
    except BindError as error:
        print(error, file=sys.stderr)
        sys.exit(2)


class ServiceSettings(Protocol):
    """What ``serve_until_stopped`` reads of a service's settings."""

    @property
    def log_level(self) -> str: ...

    @property
    def log_format(self) -> str: ...


Settings = TypeVar("Settings", bound=ServiceSettings)


def serve_until_stopped(
    service: str,
    settings: Settings,
    serve: Callable[[Settings], AbstractAsyncContextManager[Any]],
) -> None:
    """Run ``serve(settings)`` until SIGTERM or SIGINT (the body of every ``__main__``)."""
    setup_logging(service, settings.log_level, settings.log_format)

    async def until_stopped(stop: asyncio.Event) -> None:
        async with serve(settings):
            await stop.wait()
            log.info("%s stopping", service)

    run(until_stopped)


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

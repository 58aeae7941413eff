"""Process lifecycle: signals, event loop policy, and the shutdown contract.

Every service's ``__main__`` has one shape: load its settings (one clear line
and exit 2 when they are bad), set up logging, then ``serve_until_stopped``,
which enters the service's ``serve(settings)`` context, waits for SIGTERM or
SIGINT, and tears down in reverse order through its ``AsyncExitStack``. A
service that cannot bind its address raises ``BindError``: one line, exit 2.

A signal always ends the process: one that comes while the service is still
starting cancels the start (nothing is serving yet, so nothing needs draining);
a second signal, or a teardown still running ``STOP_DEADLINE`` seconds after the
drain should have ended, exits at once with code 1.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
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


STOP_DEADLINE = 30.0
"""Seconds a stopping service may take beyond its drain before the process is ended."""


class Stopping:
    """What ``run``'s signal handler knows: whether the service is serving yet."""

    def __init__(self, drain: float) -> None:
        self.event = asyncio.Event()
        self.serving = False
        self._deadline = drain + STOP_DEADLINE
        self._main: asyncio.Task[Any] | None = None

    def started(self) -> None:
        self.serving = True

    def signalled(self) -> None:
        if self.event.is_set():
            log.warning("second stop signal: exiting now")
            os._exit(1)
        self.event.set()
        # A teardown that hangs (a peer that never answers) must not keep the process alive.
        watchdog = threading.Timer(self._deadline, self._expired)
        watchdog.daemon = True
        watchdog.start()
        if not self.serving and self._main is not None:
            self._main.cancel()

    def _expired(self) -> None:
        log.error("still stopping after %.0f s: exiting now", self._deadline)
        os._exit(1)


def run(serve: Callable[[Stopping], Awaitable[None]], drain: float = 0.0) -> None:
    async def main() -> None:
        stopping = Stopping(drain)
        stopping._main = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.signalled)
        try:
            await serve(stopping)
        except asyncio.CancelledError:
            if stopping.serving:
                raise
            log.info("stopped while starting")

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

    async def until_stopped(stopping: Stopping) -> None:
        async with serve(settings):
            stopping.started()
            await stopping.event.wait()
            log.info("%s stopping", service)

    run(until_stopped, float(getattr(settings, "drain_timeout", 0.0)))


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

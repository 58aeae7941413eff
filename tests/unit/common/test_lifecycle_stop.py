"""A stop signal always ends a service's process: while it starts, while it serves, and when
its teardown hangs (a second signal). Real processes, real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

SERVICE = textwrap.dedent(
    """
    import asyncio, sys
    from contextlib import asynccontextmanager
    from dataclasses import dataclass
    from accord.common.lifecycle import serve_until_stopped

    @dataclass(frozen=True)
    class Settings:
        log_level: str = "info"
        log_format: str = "text"
        drain_timeout: float = 0.0

    HANG = sys.argv[1]

    @asynccontextmanager
    async def serve(settings):
        if HANG == "start":
            print("starting", flush=True)
            await asyncio.sleep(3600)
        print("serving", flush=True)
        try:
            yield
        finally:
            if HANG == "stop":
                print("stopping", flush=True)
                await asyncio.sleep(3600)

    serve_until_stopped("test", Settings(), serve)
    """
)


def start(hang: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVICE, hang],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()  # a marker: the service reached this point
    assert first in ("starting", "serving"), first
    return proc


def stop_within(proc: subprocess.Popen[str], seconds: float) -> int:
    began = time.monotonic()
    try:
        code = proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"still running {seconds} s after the signal")
    assert time.monotonic() - began < seconds
    return code


def test_a_signal_while_serving_stops_cleanly() -> None:
    proc = start("none")
    proc.send_signal(signal.SIGTERM)
    assert stop_within(proc, 10) == 0


def test_a_signal_while_starting_cancels_the_start() -> None:
    proc = start("start")
    proc.send_signal(signal.SIGTERM)
    assert stop_within(proc, 10) == 0
    assert proc.stdout is not None
    assert "stopped while starting" in proc.stdout.read()


def test_a_second_signal_ends_a_hanging_teardown() -> None:
    proc = start("stop")
    assert proc.stdout is not None
    proc.send_signal(signal.SIGINT)
    lines = [proc.stdout.readline().strip() for _ in range(2)]  # the log line, the marker
    assert "stopping" in lines  # the teardown hangs from here on
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    assert stop_within(proc, 10) == 1

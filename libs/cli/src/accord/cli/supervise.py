"""The children of ``accord dev``: started, watched, their output held or relayed, stopped.

A child's stderr is held while the suite starts. Once the edge is ready every
child's held lines are written out and the rest is relayed as it comes; if a child
dies during start-up, ``accord dev`` reports that child alone (its one-line
``BindError``, say) and the others' output, which is only their shutdown, is dropped.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from accord.common.config import format_addr

HELD_LINES = 2000
"""The most start-up lines held per child (the latest are kept)."""

BIND_ERROR = re.compile(r"^cannot listen on (?P<setting>[A-Z_]+)=(?P<addr>\S+): (?P<reason>.*)$")

DEV_SETTINGS = {
    "sync": {"METRICS_ADDR": "SYNC_METRICS_ADDR"},
    "presence": {"METRICS_ADDR": "PRESENCE_METRICS_ADDR"},
}
"""A child's setting under the name ``accord dev`` reads it by."""


class StopRequest:
    """SIGINT and SIGTERM: the first asks for an orderly stop, a second for SIGKILL."""

    def __init__(self) -> None:
        self.requested = False
        self.forced = False

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.forced = self.requested
        self.requested = True


class Child:
    """One service (``accord.<name>``) in its own process group, its stderr piped to us."""

    def __init__(self, name: str, env: Mapping[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(  # noqa: S603 - argv is this interpreter and fixed modules
            [sys.executable, "-m", "accord.cli.child", str(os.getpid()), f"accord.{name}"],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            process_group=0,
        )
        self._lock = threading.Lock()
        self._held: deque[bytes] = deque(maxlen=HELD_LINES)
        self._live = False
        self._reader = threading.Thread(target=self._relay, name=f"relay-{name}", daemon=True)
        self._reader.start()

    def _relay(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                if self._live:
                    _write(line)
                else:
                    self._held.append(line)

    def go_live(self) -> None:
        """Write what was held, then relay each line as it comes."""
        with self._lock:
            for line in self._held:
                _write(line)
            self._held.clear()
            self._live = True

    def held(self, timeout: float = 5.0) -> list[str]:
        """What the child wrote before it exited (call once it has)."""
        self._reader.join(timeout)
        with self._lock:
            return [line.decode(errors="replace").rstrip("\n") for line in self._held]

    def mute(self) -> None:
        with self._lock:
            self._live = False
            self._held = deque(maxlen=0)

    @property
    def exit_code(self) -> int | None:
        return self.proc.poll()

    def failure(self) -> tuple[int, str]:
        """Exit code and message for a child that died while the suite started."""
        code = self.proc.returncode
        lines = [line for line in self.held() if line.strip()]
        if code == 2 and lines:
            return 2, f"{self.name}: {describe_bind_error(self.name, lines[-1])}"
        for line in lines:
            print(line, file=sys.stderr)
        return 1, f"{self.name} exited with code {code} while starting"


def describe_bind_error(name: str, line: str) -> str:
    """A child's ``BindError`` line, naming the setting ``accord dev`` reads."""
    match = BIND_ERROR.match(line)
    if match is None:
        return line
    setting = DEV_SETTINGS.get(name, {}).get(match["setting"], match["setting"])
    return bind_message(setting, match["addr"], match["reason"])


def bind_message(setting: str, addr: str, reason: str) -> str:
    return f"cannot listen on {setting}={addr} ({reason}); set {setting} to a free port"


def unavailable_listener(listeners: Iterable[tuple[str, tuple[str, int]]]) -> str | None:
    """The first ``(setting, (host, port))`` that cannot be bound now, as a message.

    ``accord dev`` checks before it starts a child: a port another server holds
    would otherwise answer our health checks as if it were the child. Binding
    with SO_REUSEADDR, as the services do, a port in TIME_WAIT counts as free.
    """
    for setting, (host, port) in listeners:
        if port == 0:
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                reason = error.strerror or str(error)
                return bind_message(setting, format_addr(host, port), reason)
    return None


def first_exited(children: Iterable[Child]) -> Child | None:
    return next((child for child in children if child.exit_code is not None), None)


def wait_for(
    ready: Callable[[], bool], children: Iterable[Child], stop: StopRequest, timeout: float
) -> Child | bool:
    """Poll ``ready`` until it holds (True), a child exits (that child) or we stop (False)."""
    watched = list(children)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.requested:
        exited = first_exited(watched)
        if exited is not None:
            exited.proc.wait()
            return exited
        if ready():
            return True
        time.sleep(0.1)
    return False


def stop_in_order(
    stages: Iterable[tuple[list[Child], float]], stop: StopRequest, say: Callable[[str], None]
) -> None:
    """SIGTERM each stage's children together and wait for them (at most its timeout)."""
    for children, timeout in stages:
        running = [child for child in children if child.exit_code is None]
        for child in running:
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(child.exit_code is None for child in running):
            if stop.forced or time.monotonic() > deadline:
                for child in running:
                    if child.exit_code is None:
                        if not stop.forced:
                            say(f"{child.name} did not stop in {timeout:.0f} s; killing it")
                        child.proc.kill()
                break
            time.sleep(0.05)
        for child in running:
            child.proc.wait()


def _write(line: bytes) -> None:
    sys.stderr.buffer.write(line)
    sys.stderr.buffer.flush()

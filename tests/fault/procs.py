"""The processes a fault run starts, each stopped only by its own pid (or data directory).

``Service`` is one child process (an Accord service or a redis-server) that can be
SIGKILLed and started again on the same address; ``PrivatePostgres`` is a PostgreSQL
cluster of the run's own (``initdb`` + ``pg_ctl`` in a temporary directory), so that it
can be stopped fast or immediate without touching the machine's shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from accord.common.grpcutil import check_health, create_channel

from tests.support.suite import wait_ready

WAIT = 30.0


class Service:
    """One child process in its own process group, restartable with the same arguments."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.args,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(WAIT)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)
        self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def accord_service(name: str, command: str, env: dict[str, str], logs: Path) -> Service:
    return Service(name, [sys.executable, "-m", f"accord.{command}"], env, logs)


def redis_service(port: int, logs: Path) -> Service:
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    return Service("redis", [*args, "--appendonly", "no"], dict(os.environ), logs)


async def grpc_healthy(addr: str, timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout), create_channel(addr) as channel:
        while not await check_health(channel, ""):  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(0.1)


async def http_ready(addr: str, timeout: float = WAIT) -> None:
    await wait_ready(f"http://{addr}", timeout)


async def redis_ready(port: int, timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"PING\r\n")
                await writer.drain()
                line = await reader.readline()
                writer.close()
                if line.startswith(b"+PONG"):
                    return
            await asyncio.sleep(0.05)


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found")
    return Path(pg_ctl).parent


def postgres_available() -> bool:
    try:
        _pg_bin()
    except RuntimeError:
        return False
    return True


class PrivatePostgres:
    """A PostgreSQL cluster of the fault run's own on a loopback port.

    Run as root, the server runs as the ``postgres`` user (it refuses root) from a
    temporary directory that user owns."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self.bin = _pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="accord-fault-pg-"))
        self.data = self.root / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        self.pg_log = self.root / "server.log"
        self.starts = 0

    async def _run(self, *args: str, timeout: float = 60.0) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self._as,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(args)}\n".encode() + out)
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {out.decode()[-500:]}")

    async def init(self) -> None:
        await self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    async def start(self) -> None:
        self.starts += 1
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        await self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.pg_log), "-w", "-t", "60", "start",
        )  # fmt: skip

    async def stop(self, mode: str) -> None:
        """``mode``: ``fast`` (clean shutdown) or ``immediate`` (no checkpoint: crash recovery)."""
        await self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop the server if it runs (immediate) and remove its directory."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                 "-w", "stop"],
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)

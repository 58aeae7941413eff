"""Systems under test: start pinned to the server core, find every process, measure, stop.

Every system runs under ``taskset -c <server core>`` in its own session
(process group); stopping kills the whole group. For Accord's durable profile
the system PostgreSQL and Redis (already running, not ours) are pinned to the
same core with ``taskset -a -p`` for the run and restored afterwards, and
their processes are counted in the system's CPU and memory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PEERS = ROOT / "bench" / "peers"
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/accord_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVER_CORE = os.environ.get("BENCH_SERVER_CORE", "0")
# Optional priority for everything the bench runs (system and generator alike), to shield a
# measurement from other work on a shared machine: BENCH_NICE=-10 (root only). 0: off.
NICE = int(os.environ.get("BENCH_NICE", "0"))


def niced(cmd: list[str]) -> list[str]:
    return ["nice", "-n", str(NICE), *cmd] if NICE else cmd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} never opened")


def children(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
                parent_of[int(entry)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, frontier = [pid], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent_of.items() if pp == p]
        out += kids
        frontier += kids
    return [p for p in out if os.path.exists(f"/proc/{p}")]


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rfind(b")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pidof_listening(port: int) -> int | None:
    """The pid of the process listening on a TCP port (for external services)."""
    try:
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for part in out.split("pid=")[1:]:
        return int(part.split(",")[0])
    return None


@dataclass
class System:
    name: str  # e.g. accord, pycrdt-websocket
    profile: str  # memory | durable
    protocol: str  # bench.protocols key
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    external: dict[str, int] = field(default_factory=dict)  # label -> root pid (pinned for the run)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="accord-bench-")))
    log_path: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.name}/{self.profile}"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    # -- lifecycle
    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def prepare(self) -> None:
        """Fresh state before a start (never between a cold restart's stop and start)."""

    def ready(self) -> None:
        assert self.proc is not None
        wait_port(self.port, 60, self.proc)

    def start(self) -> None:
        self.log_path = self.workdir / "server.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            niced(["taskset", "-c", SERVER_CORE, *self.command()]),
            env=self.env(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pin_external()
        self.ready()

    def stop(self) -> None:
        if self.proc is not None:
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            # leftovers in the group (grandchildren that outlived the parent)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc = None
        self.unpin_external()

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        keep = os.environ.get("BENCH_KEEP_LOGS")
        if keep and self.log_path is not None and self.log_path.exists():
            # The system's own log (every process of it), for a run that went wrong.
            target = Path(keep) / f"{self.label.replace('/', '-')}-{time.strftime('%H%M%S')}.log"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.log_path, target)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def pin_external(self) -> None:
        for pid in self.external.values():
            for p in children(pid):
                subprocess.run(
                    ["taskset", "-a", "-p", "-c", SERVER_CORE, str(p)], capture_output=True
                )
                if NICE:
                    subprocess.run(["renice", "-n", str(NICE), "-p", str(p)], capture_output=True)

    def unpin_external(self) -> None:
        allc = f"0-{os.cpu_count() - 1}" if (os.cpu_count() or 1) > 1 else "0"
        for pid in self.external.values():
            for p in children(pid):
                subprocess.run(["taskset", "-a", "-p", "-c", allc, str(p)], capture_output=True)
                if NICE:
                    subprocess.run(["renice", "-n", "0", "-p", str(p)], capture_output=True)

    # -- measurement
    def process_label(self, pid: int) -> str:
        return self.name

    def processes(self) -> dict[int, str]:
        """Every process of the system, pid -> label."""
        out: dict[int, str] = {}
        if self.proc is not None and self.proc.poll() is None:
            for p in children(self.proc.pid):
                out[p] = self.process_label(p)
        for label, pid in self.external.items():
            for p in children(pid):
                out[p] = label
        return out

    def cpu_by_label(self, procs: dict[int, str] | None = None) -> dict[str, float]:
        """CPU seconds used so far per label (pass ``processes()`` to skip the /proc scan)."""
        split: dict[str, float] = {}
        for pid, label in (self.processes() if procs is None else procs).items():
            split[label] = split.get(label, 0.0) + cpu_seconds(pid)
        return split

    def pss_by_label(self) -> dict[str, int]:
        split: dict[str, int] = {}
        for pid, label in self.processes().items():
            split[label] = split.get(label, 0) + pss_bytes(pid)
        return split

    def describe(self) -> str:
        return " ".join(self.command())


class Relay(System):
    def __init__(self) -> None:
        super().__init__("floor-relay", "memory", "relay")

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.relay", str(self.port)]


class Accord(System):
    def __init__(self, profile: str) -> None:
        super().__init__("accord", profile, "accord")
        self.sync_port, self.presence_port = free_port(), free_port()
        self.run_tag = f"bench{os.getpid()}{int(time.time())}"
        if profile == "durable":
            pg = pidof_listening(5432)
            redis = pidof_listening(6379)
            if pg:
                self.external["postgresql"] = pg
            if redis:
                self.external["redis"] = redis

    def command(self) -> list[str]:
        # BENCH_ACCORD_DEV_ARGS=--one-process: the three services in one process.
        return [
            str(VENV_BIN / "accord"),
            "dev",
            *os.environ.get("BENCH_ACCORD_DEV_ARGS", "").split(),
        ]

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "REDIS_", "JWT_", "ALLOW_"))
        }
        env.update(
            WS_ADDR=f"127.0.0.1:{self.port}",
            SYNC_ADDR=f"127.0.0.1:{self.sync_port}",
            PRESENCE_ADDR=f"127.0.0.1:{self.presence_port}",
            SYNC_METRICS_ADDR=f"127.0.0.1:{free_port()}",
            PRESENCE_METRICS_ADDR=f"127.0.0.1:{free_port()}",
            ALLOW_ANONYMOUS="true",  # the bench sends no tokens (documented)
            CONNECT_RATE="1000000",
            CONNECT_BURST="1000000",  # one IP opens every connection
            MAX_CONNECTIONS="25000",
            LOG_LEVEL="warning",
        )
        if self.profile == "durable":
            env.update(DATABASE_URL=PG_URL, REDIS_URL=REDIS_URL, REDIS_PREFIX=self.run_tag)
        else:
            env.update(DATABASE_URL=f"sqlite:///{self.workdir}/accord.db")
        return env

    def prepare(self) -> None:
        if self.profile == "durable":
            recreate_database()
        else:
            for p in self.workdir.glob("accord.db*"):
                p.unlink()

    def ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"accord dev exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("accord never became ready")

    def process_label(self, pid: int) -> str:
        cmd = cmdline(pid)
        for name in ("edge", "sync", "presence"):
            if f"accord.{name}" in cmd:
                return name
        return "accord-dev"


class PycrdtWebsocket(System):
    def __init__(self, profile: str) -> None:
        super().__init__("pycrdt-websocket", profile, "yjs")

    def command(self) -> list[str]:
        return [
            sys.executable,
            str(PEERS / "pycrdt_server.py"),
            str(self.port),
            self.profile,
            str(self.workdir),
        ]

    def prepare(self) -> None:
        for p in self.workdir.glob("ystore.db*"):
            p.unlink()


class YWebsocket(System):
    def __init__(self, profile: str) -> None:
        super().__init__("y-websocket", profile, "yjs")

    def command(self) -> list[str]:
        return ["node", str(PEERS / "node_modules" / "y-websocket" / "bin" / "server.cjs")]

    def env(self) -> dict[str, str]:
        env = dict(os.environ, HOST="127.0.0.1", PORT=str(self.port))
        if self.profile == "durable":
            env["YPERSISTENCE"] = str(self.workdir / "leveldb")
        return env

    def prepare(self) -> None:
        shutil.rmtree(self.workdir / "leveldb", ignore_errors=True)


class Hocuspocus(System):
    def __init__(self, profile: str) -> None:
        super().__init__("hocuspocus", profile, "hocuspocus")
        if profile == "durable":
            pg = pidof_listening(5432)
            if pg:
                self.external["postgresql"] = pg

    def command(self) -> list[str]:
        return ["node", str(PEERS / "hocuspocus.mjs"), str(self.port), self.profile, PG_URL]

    def prepare(self) -> None:
        if self.profile == "durable":
            recreate_database()


async def fresh_database(name: str) -> str:
    """A fresh, empty database ``name`` on the benchmarks' server (``PG_URL``); its URL."""
    import asyncpg

    parts = urlsplit(PG_URL)
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return urlunsplit(parts._replace(path=f"/{name}"))


def recreate_database() -> None:
    """A fresh, empty benchmark database (never the tests' database)."""
    dbname = urlsplit(PG_URL).path.lstrip("/")  # a query (server settings) is not the name
    if dbname in ("test", "postgres"):
        raise RuntimeError("refusing to recreate the tests' database")
    base = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"]
    subprocess.run(
        [*base, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"], check=True, capture_output=True
    )
    subprocess.run([*base, f"CREATE DATABASE {dbname}"], check=True, capture_output=True)


def make(name: str) -> System:
    kind, _, profile = name.partition("/")
    profile = profile or "memory"
    if kind == "accord" and profile == "memory":
        profile = "embedded"
    if kind == "floor":
        return Relay()
    factories = {
        "accord": Accord,
        "pycrdt": PycrdtWebsocket,
        "y-websocket": YWebsocket,
        "hocuspocus": Hocuspocus,
    }
    return factories[kind](profile)

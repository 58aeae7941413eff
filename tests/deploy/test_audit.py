"""`make audit`'s checks (scripts/audit*.py, scripts/check_chart_security.py) catch what they
are for, and tell "the vulnerability database cannot be reached" apart from a finding."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import audit_deps, audit_secrets, check_chart_security
from tests.deploy.deploy_support import CHARTS
from tests.support.ports import free_port

# --- the chart check ---------------------------------------------------------------------


def test_the_chart_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_chart_security.main([]) == 0
    out = capsys.readouterr().out
    assert "chart (defaults): ok" in out and "chart (production): ok" in out


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        (
            "accord/templates/redis.yaml",
            "runAsNonRoot: true",
            "runAsNonRoot: false",
            "Deployment/rel-redis: container redis: runAsNonRoot is not true",
        ),
        (
            "accord/templates/postgresql.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
            "StatefulSet/rel-postgresql: container postgresql: readOnlyRootFilesystem is not true",
        ),
        (
            "accord/templates/redis.yaml",
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: true",
            "Deployment/rel-redis: container redis: allowPrivilegeEscalation is not false",
        ),
        (
            "accord-edge/templates/networkpolicy.yaml",
            None,
            None,
            "chart (production): Deployment/rel-edge: selected by no NetworkPolicy",
        ),
    ],
)
def test_the_chart_check_fails_on_an_insecure_chart(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    path: str,
    old: str | None,
    new: str | None,
    expected: str,
) -> None:
    charts = tmp_path / "charts"
    shutil.copytree(CHARTS, charts, symlinks=True)
    target = charts / path
    if old is None or new is None:
        target.unlink()
    else:
        text = target.read_text()
        assert old in text
        target.write_text(text.replace(old, new))
    assert check_chart_security.main(["--chart", str(charts / "accord")]) == 1
    assert expected in capsys.readouterr().out


# --- the secret scan ---------------------------------------------------------------------

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"  # pragma: allowlist secret (the scan's own test input)


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_the_secret_scan_fails_on_a_new_secret_until_it_is_allow_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "settings.py").write_text(f'KEY = "{AWS_KEY}"\n')
    root = ["--root", str(tmp_path)]
    assert audit_secrets.main(root) == 1  # no baseline yet
    assert audit_secrets.main([*root, "--update"]) == 0
    assert audit_secrets.main(root) == 1  # in the baseline, but nobody reviewed it
    assert "settings.py:1: AWS Access Key (in .secrets.baseline, not reviewed)" in (
        capsys.readouterr().out
    )
    baseline = json.loads((tmp_path / ".secrets.baseline").read_text())
    (entry,) = baseline["results"]["settings.py"]
    entry["is_secret"] = False  # reviewed: a test key
    (tmp_path / ".secrets.baseline").write_text(json.dumps(baseline))
    assert audit_secrets.main(root) == 0
    (tmp_path / "more.py").write_text(f'OTHER = "{AWS_KEY[:-1]}Q"\n')  # a new, untracked file
    capsys.readouterr()
    assert audit_secrets.main(root) == 1
    assert "more.py:1: AWS Access Key (not in .secrets.baseline)" in capsys.readouterr().out


def test_the_repository_passes_its_secret_scan() -> None:
    assert audit_secrets.main([]) == 0


# --- pip-audit: findings versus an unreachable database ----------------------------------

VULNERABLE = {
    "name": "requests",
    "version": "2.19.0",
    "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"], "aliases": []}],
}
SKIPPED = {"name": "idna", "skip_reason": "Dependency not found on PyPI and could not be audited"}


@pytest.mark.parametrize(
    ("stdout", "stderr", "code", "kind"),
    [
        (json.dumps({"dependencies": [VULNERABLE, SKIPPED], "fixes": []}), "", 1, "finding"),
        (json.dumps({"dependencies": [VULNERABLE], "fixes": []}), "ConnectionError", 1, "finding"),
        (json.dumps({"dependencies": [SKIPPED, SKIPPED], "fixes": []}), "", 0, "unreachable"),
        (
            json.dumps({"dependencies": [SKIPPED, {"name": "x", "version": "1", "vulns": []}]}),
            "",
            0,
            "error",
        ),
        (json.dumps({"dependencies": [{"name": "x", "version": "1", "vulns": []}]}), "", 0, "ok"),
        ("", "requests.exceptions.ConnectionError: Max retries exceeded", 1, "unreachable"),
        ("", "ValueError: something else went wrong", 1, "error"),
        ("not json", "", 0, "error"),
    ],
)
def test_pip_audit_verdicts(stdout: str, stderr: str, code: int, kind: str) -> None:
    assert audit_deps.classify_pip_audit(code, stdout, stderr).kind == kind


def test_pip_audit_through_a_dead_proxy_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(variable, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    for service in ("pypi", "osv"):
        verdict = audit_deps.pip_audit(["idna==3.7"], service=service)
        assert verdict.kind == "unreachable", (service, verdict)


def test_the_runtime_requirements_are_pinned_and_include_extras() -> None:
    pinned = dict(line.split("==") for line in audit_deps.runtime_requirements())
    assert {"grpcio", "aiohttp", "asyncpg", "redis", "pyjwt", "cryptography"} <= set(pinned)
    assert not [name for name in pinned if name.startswith("accord")]
    assert not {"pytest", "ruff", "mypy", "hypothesis"} & set(pinned)


# --- npm audit: a real run against a local advisory server -------------------------------

LOCKFILE = {
    "name": "t",
    "version": "1.0.0",
    "lockfileVersion": 3,
    "requires": True,
    "packages": {
        "": {"name": "t", "version": "1.0.0", "dependencies": {"lodash": "4.17.20"}},
        "node_modules/lodash": {"version": "4.17.20", "license": "MIT"},
    },
}
ADVISORY = {
    "lodash": [
        {
            "id": 1,
            "url": "https://advisories.example/1",
            "title": "Prototype Pollution",
            "severity": "high",
            "vulnerable_versions": "<4.17.21",
            "cwe": ["CWE-1321"],
            "cvss": {"score": 7.4, "vectorString": None},
        }
    ]
}


class Registry(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps(ADVISORY).encode() if self.status == 200 else b""
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed (make test installs Node.js: scripts/ensure-tools.sh)")
    (tmp_path / "package.json").write_text(json.dumps(LOCKFILE["packages"][""]))
    (tmp_path / "package-lock.json").write_text(json.dumps(LOCKFILE))
    return tmp_path


@pytest.fixture
def registry() -> Iterator[type[Registry]]:
    handler = type("Handler", (Registry,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler
    server.shutdown()
    server.server_close()


def test_npm_audit_reports_a_finding(project: Path, registry: type[Registry]) -> None:
    verdict = audit_deps.npm_audit(project, registry=registry.url)  # type: ignore[attr-defined]
    assert verdict.kind == "finding" and verdict.fails
    assert verdict.details == ("lodash: high: Prototype Pollution (<4.17.21)",)


@pytest.mark.parametrize("status", [405, 503])
def test_npm_audit_without_an_audit_endpoint_is_unreachable(
    project: Path, registry: type[Registry], status: int
) -> None:
    registry.status = status
    verdict = audit_deps.npm_audit(project, registry=registry.url)  # type: ignore[attr-defined]
    assert verdict.kind == "unreachable" and not verdict.fails, verdict


def test_npm_audit_with_no_registry_is_unreachable(project: Path) -> None:
    verdict = audit_deps.npm_audit(project, registry=f"http://127.0.0.1:{free_port()}/")
    assert verdict.kind == "unreachable" and not verdict.fails, verdict
    assert "ECONNREFUSED" in verdict.summary


def test_make_audit_runs_every_check() -> None:
    script = (Path(audit_deps.ROOT) / "scripts" / "audit.sh").read_text()
    for check in (
        "--select S",
        "audit_secrets.py",
        "hadolint",
        "check_chart_security.py",
        "audit_deps.py",
    ):
        assert check in script.replace("--extend-select S", "--select S"), check

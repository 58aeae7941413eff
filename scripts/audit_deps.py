"""Dependency vulnerability scans for `make audit`: pip-audit and npm audit.

pip-audit checks the runtime dependencies of Accord's Python packages, pinned to the versions
installed in this virtualenv (the closure of their ``Requires-Dist``, not the dev tools);
``--lock FILE`` only writes that list. npm audit checks the JavaScript SDK's lockfile
(clients/js/package-lock.json).

Each scan ends in one verdict: ``ok``, ``finding`` (a known vulnerability: fails),
``unreachable`` (the vulnerability database could not be reached: one line, no failure) or
``error`` (anything else, e.g. output this script does not understand: fails). A report that
lists a vulnerability is a finding whatever else happened; "unreachable" needs the tool's own
connection error (or a database that answered for no package at all), never just an exit code.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
JS_SDK = ROOT / "clients" / "js"
ACCORD_DISTRIBUTIONS = (
    "accord",
    "accord-common",
    "accord-sync",
    "accord-presence",
    "accord-edge",
    "accord-client",
)
TIMEOUT = 180.0  # seconds for a whole scan; each request has its own shorter timeout
REQUEST_TIMEOUT = 15

# How the tools say they could not connect (requests/urllib3 for pip-audit, npm's fetch).
PYTHON_CONNECTION_ERRORS = re.compile(
    r"ConnectionError|NameResolutionError|MaxRetryError|NewConnectionError|ConnectTimeout"
    r"|ReadTimeout|ProxyError|Temporary failure in name resolution|Name or service not known"
    r"|Connection refused|Network is unreachable|timed out"
)
NPM_NETWORK_CODES = {
    "ENOTFOUND",
    "EAI_AGAIN",
    "ECONNREFUSED",
    "ECONNRESET",
    "ETIMEDOUT",
    "ENETUNREACH",
    "EHOSTUNREACH",
    "ESOCKETTIMEDOUT",
}
NPM_NETWORK_MESSAGE = re.compile(r"\b(" + "|".join(sorted(NPM_NETWORK_CODES)) + r")\b")
# An audit endpoint that is not served (a registry mirror without it) or is down.
NPM_UNSERVED_STATUS = {404, 405, 501, 502, 503, 504}
PIP_AUDIT_UNREACHED = "could not be audited"


@dataclass(frozen=True)
class Verdict:
    kind: str  # ok | finding | unreachable | error
    summary: str
    details: tuple[str, ...] = ()

    @property
    def fails(self) -> bool:
        return self.kind in ("finding", "error")


# --- the runtime dependencies ------------------------------------------------------------


def runtime_requirements(roots: tuple[str, ...] = ACCORD_DISTRIBUTIONS) -> list[str]:
    """``name==version`` for every installed distribution Accord's packages need at run time
    (extras included where a requirement asks for them, e.g. ``pyjwt[crypto]``)."""
    own = {canonicalize_name(name) for name in roots}
    pinned: dict[str, str] = {}
    todo: list[tuple[str, str]] = [(name, "") for name in roots]
    seen: set[tuple[str, str]] = set()
    while todo:
        raw_name, extra = todo.pop()
        name = canonicalize_name(raw_name)
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed: run `make install` first") from None
        if name not in own:
            pinned[name] = dist.version
        for raw in dist.requires or []:
            requirement = Requirement(raw)
            marker = requirement.marker
            if marker is not None and not marker.evaluate({"extra": extra}):
                continue
            if extra and (marker is None or "extra" not in str(marker)):
                continue  # the base requirements were walked with extra ""
            todo.append((requirement.name, ""))
            todo.extend((requirement.name, wanted) for wanted in requirement.extras)
    return [f"{name}=={version}" for name, version in sorted(pinned.items())]


# --- pip-audit ---------------------------------------------------------------------------


def classify_pip_audit(returncode: int, stdout: str, stderr: str) -> Verdict:
    report = _json(stdout)
    if isinstance(report, dict) and isinstance(report.get("dependencies"), list):
        deps: list[dict[str, Any]] = [d for d in report["dependencies"] if isinstance(d, dict)]
        vulnerable = [d for d in deps if d.get("vulns")]
        if vulnerable:
            details = tuple(
                f"{d.get('name')} {d.get('version')}: "
                + ", ".join(
                    f"{v.get('id')} (fixed in {', '.join(v.get('fix_versions') or []) or '-'})"
                    for v in d["vulns"]
                )
                for d in vulnerable
            )
            return Verdict("finding", f"{len(vulnerable)} vulnerable package(s)", details)
        skipped = [d for d in deps if d.get("skip_reason")]
        if (
            deps
            and len(skipped) == len(deps)
            and all(PIP_AUDIT_UNREACHED in str(d["skip_reason"]) for d in skipped)
        ):
            return Verdict(
                "unreachable",
                f"the vulnerability service answered for none of the {len(deps)} packages",
            )
        if skipped:
            details = tuple(f"{d.get('name')}: {d['skip_reason']}" for d in skipped)
            return Verdict("error", f"{len(skipped)} package(s) could not be audited", details)
        if returncode != 0:
            return Verdict("error", f"pip-audit exited {returncode}", _tail(stderr))
        return Verdict("ok", f"no known vulnerabilities in {len(deps)} packages")
    if returncode != 0 and PYTHON_CONNECTION_ERRORS.search(stderr):
        return Verdict("unreachable", _last_error_line(stderr))
    return Verdict("error", f"pip-audit exited {returncode} without a report", _tail(stderr))


def pip_audit(requirements: list[str], service: str = "pypi") -> Verdict:
    with tempfile.TemporaryDirectory() as scratch:
        lock = Path(scratch) / "requirements-runtime.txt"
        lock.write_text("".join(f"{line}\n" for line in requirements))
        command = [
            str(Path(sys.executable).with_name("pip-audit")),
            "--requirement",
            str(lock),
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "--vulnerability-service",
            service,
            "--timeout",
            str(REQUEST_TIMEOUT),
            "--cache-dir",
            str(Path(scratch) / "cache"),
        ]
        return _run(command, classify_pip_audit, cwd=ROOT)


# --- npm audit ---------------------------------------------------------------------------


def classify_npm_audit(returncode: int, stdout: str, stderr: str) -> Verdict:
    report = _json(stdout)
    if isinstance(report, dict) and isinstance(report.get("vulnerabilities"), dict):
        found: dict[str, Any] = report["vulnerabilities"]
        counts = report.get("metadata", {}).get("vulnerabilities", {})
        total = counts.get("total", 0) if isinstance(counts, dict) else 0
        if found or total:
            details = tuple(
                f"{name}: {entry.get('severity', '?')}: {_npm_advisories(entry)}"
                for name, entry in sorted(found.items())
                if isinstance(entry, dict)
            )
            return Verdict("finding", f"{max(total, len(found))} vulnerable package(s)", details)
        if returncode != 0:
            return Verdict("error", f"npm audit exited {returncode}", _tail(stderr))
        deps = report.get("metadata", {}).get("dependencies", {})
        count = deps.get("total", 0) if isinstance(deps, dict) else 0
        return Verdict("ok", f"no known vulnerabilities in {count} dependencies")
    if returncode != 0 and isinstance(report, dict):
        error = report.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        message = str(report.get("message", ""))
        status = report.get("statusCode")
        if code in NPM_NETWORK_CODES or NPM_NETWORK_MESSAGE.search(message):
            return Verdict("unreachable", message or str(code))
        if isinstance(status, int) and status in NPM_UNSERVED_STATUS:
            return Verdict("unreachable", f"the audit endpoint answered HTTP {status}: {message}")
    if returncode != 0 and NPM_NETWORK_MESSAGE.search(stderr):
        return Verdict("unreachable", _last_error_line(stderr))
    return Verdict("error", f"npm audit exited {returncode} without a report", _tail(stderr))


def _npm_advisories(entry: dict[str, Any]) -> str:
    """The advisories behind one vulnerable package (``via``: advisories or other packages)."""
    via = entry.get("via") or []
    shown = [
        f"{v.get('title', '?')} ({v.get('range', '?')})" if isinstance(v, dict) else f"via {v}"
        for v in via
    ]
    return "; ".join(shown) or "?"


def npm_audit(directory: Path = JS_SDK, registry: str | None = None) -> Verdict:
    if not (directory / "package-lock.json").exists():
        return Verdict(
            "error",
            f"{directory}/package-lock.json is missing (npm install --package-lock-only)",
        )
    command = [
        "npm",
        "audit",
        "--json",
        "--omit=dev",
        "--fetch-retries=0",
        f"--fetch-timeout={REQUEST_TIMEOUT * 1000}",
    ]
    if registry is not None:
        command.append(f"--registry={registry}")
    return _run(command, classify_npm_audit, cwd=directory)


# --- shared ------------------------------------------------------------------------------


def _run(command: list[str], classify: Any, cwd: Path) -> Verdict:
    try:
        done = subprocess.run(  # noqa: S603 - a fixed command line of the audit tools
            command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return Verdict("unreachable", f"no answer within {TIMEOUT:.0f} s")
    except FileNotFoundError:
        return Verdict("error", f"{command[0]} is not installed")
    verdict: Verdict = classify(done.returncode, done.stdout, done.stderr)
    return verdict


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _tail(text: str, lines: int = 5) -> tuple[str, ...]:
    return tuple(line for line in text.strip().splitlines()[-lines:] if line.strip())


def _last_error_line(text: str) -> str:
    matching = [line.strip() for line in text.splitlines() if PYTHON_CONNECTION_ERRORS.search(line)]
    matching += [line.strip() for line in text.splitlines() if NPM_NETWORK_MESSAGE.search(line)]
    line = matching[-1] if matching else "connection failed"
    return line if len(line) <= 200 else line[:197] + "..."


def report(tool: str, verdict: Verdict) -> None:
    if verdict.kind == "unreachable":
        print(f"{tool}: vulnerability database unreachable, skipped ({verdict.summary})")
        return
    print(f"{tool}: {verdict.kind.upper() if verdict.fails else 'ok'}: {verdict.summary}")
    for line in verdict.details:
        print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, help="only write the pinned runtime list here")
    parser.add_argument("--skip-npm", action="store_true", help="no npm audit")
    args = parser.parse_args(argv)
    requirements = runtime_requirements()
    if args.lock is not None:
        args.lock.write_text("".join(f"{line}\n" for line in requirements))
        print(f"wrote {len(requirements)} runtime requirements to {args.lock}")
        return 0
    verdicts = [("pip-audit", pip_audit(requirements))]
    if not args.skip_npm:
        verdicts.append(("npm audit", npm_audit()))
    for tool, verdict in verdicts:
        report(tool, verdict)
    return 1 if any(v.fails for _, v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())

"""The JS SDK's TypeScript declarations, checked by ``tsc --noEmit`` against a usage file.

``clients/js/test/types/usage.ts`` is what a TypeScript app writes; it imports the
package by name, so ``tsc`` finds the declarations through package.json's
``exports``/``types`` conditions. TypeScript 5 comes from npm (``npm install --no-save``
into a folder of the test venv, reused by later runs); without npm or the registry
the tests fail saying so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "clients" / "js"
USAGE = PACKAGE / "test" / "types"
TOOLS = Path(sys.prefix) / "node-tools"
TYPESCRIPT = "typescript@5"


@pytest.fixture(scope="module")
def tsc() -> Path:
    """The ``tsc`` of TypeScript 5, installed on first use."""
    binary = TOOLS / "node_modules" / ".bin" / "tsc"
    if binary.exists() and _version(binary).startswith("Version 5."):
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed (`make test` runs scripts/ensure-tools.sh)")
    TOOLS.mkdir(parents=True, exist_ok=True)
    quiet = ["--no-save", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        installed = subprocess.run(
            [npm, "install", *quiet, "--prefix", str(TOOLS), TYPESCRIPT],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"npm install {TYPESCRIPT} took over 300 s (is the npm registry reachable?)")
    if installed.returncode != 0 or not binary.exists():
        pytest.fail(
            f"npm could not install {TYPESCRIPT} into {TOOLS} (the npm registry is needed"
            f" once):\n{installed.stderr.strip()}"
        )
    return binary


def _version(binary: Path) -> str:
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    return result.stdout.strip()


def check(tsc: Path, project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tsc), "--noEmit", "--pretty", "false", "-p", str(project)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_usage_file_type_checks_against_the_package(tsc: Path) -> None:
    result = check(tsc, USAGE)
    assert result.returncode == 0, result.stdout + result.stderr


def installed_app(tmp_path: Path, code: str) -> Path:
    """An app folder with the package in node_modules (as `npm install` leaves it)."""
    (tmp_path / "node_modules").mkdir(parents=True)
    (tmp_path / "node_modules" / "accord-sync-client").symlink_to(PACKAGE)
    (tmp_path / "package.json").write_text(json.dumps({"type": "module", "private": True}))
    shutil.copy(USAGE / "tsconfig.json", tmp_path / "tsconfig.json")
    (tmp_path / "usage.ts").write_text(code)
    return tmp_path


def test_an_installed_package_is_typed_and_a_wrong_use_is_an_error(
    tsc: Path, tmp_path: Path
) -> None:
    usage = (USAGE / "usage.ts").read_text()
    assert check(tsc, installed_app(tmp_path / "ok", usage)).returncode == 0
    wrong = usage + '\nexport const n: number = (await connect()).join("r");\n'
    result = check(tsc, installed_app(tmp_path / "wrong", wrong))
    assert result.returncode != 0
    lines = [line for line in result.stdout.splitlines() if "error TS" in line]
    assert len(lines) == 1, result.stdout
    assert "Promise<Room>" in lines[0] and "number" in lines[0], lines[0]


def test_the_package_ships_its_declarations() -> None:
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert manifest["types"] == "./src/accord.d.ts"
    for entry, target in manifest["exports"].items():
        if entry == "./package.json":
            continue
        declarations = PACKAGE / target["types"]
        assert declarations.exists(), entry
        assert declarations.with_name(declarations.name.replace(".d.ts", ".js")).exists()
        assert target["default"] == target["types"].replace(".d.ts", ".js")
    assert "src/*.d.ts" in manifest["files"]

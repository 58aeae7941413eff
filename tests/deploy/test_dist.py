"""Release artefacts: one version everywhere, full metadata, and `make dist` installs and runs.

The e2e test builds dist/ into a scratch directory with the Makefile's own recipe, installs
the wheels into a fresh (non-editable) venv — Accord's packages from dist/ only, their
dependencies from the machine's package index — runs `accord dev` from there on free
ports, and installs the npm tarball into a scratch npm project and imports it with node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from accord.common.version import __version__

from tests.browser.conftest import wait_http_ready
from tests.support.suite import DevProcess, dev_env
from tests.support.wsclient import Client

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "libs/common": "accord-common",
    "libs/cli": "accord",
    "services/sync": "accord-sync",
    "services/presence": "accord-presence",
    "services/edge": "accord-edge",
    "clients/python": "accord-client",
}
VERSION_FILE = ROOT / "libs/common/src/accord/common/version.py"
NPM_NAME = "accord-sync-client"


def pyproject(directory: str) -> dict[str, object]:
    with (ROOT / directory / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


# --- one version, full metadata (fast) --------------------------------------------------


def test_every_package_reads_the_one_version_file() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    for directory, name in PACKAGES.items():
        data = pyproject(directory)
        project = data["project"]
        assert isinstance(project, dict)
        assert project["name"] == name
        assert "version" not in project and "version" in project["dynamic"], directory
        path = data["tool"]["hatch"]["version"]["path"]  # type: ignore[index]
        assert (ROOT / directory / path).resolve() == VERSION_FILE, directory


def test_the_js_sdk_and_the_charts_carry_the_same_version() -> None:
    package = json.loads((ROOT / "clients/js/package.json").read_text())
    assert package["version"] == __version__
    sdk = (ROOT / "clients/js/src/accord.js").read_text()
    assert f'export const VERSION = "{__version__}";' in sdk
    for chart in sorted((ROOT / "charts").glob("*/Chart.yaml")):
        assert yaml.safe_load(chart.read_text())["appVersion"] == __version__, chart


def test_every_package_has_its_metadata_license_and_readme() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0" in license_text
    for directory in PACKAGES:
        project = pyproject(directory)["project"]
        assert isinstance(project, dict)
        assert project["license"] == "Apache-2.0", directory
        assert project["license-files"] == ["LICENSE"], directory
        assert (ROOT / directory / "LICENSE").read_text() == license_text, directory
        assert (ROOT / directory / project["readme"]).read_text().startswith("# "), directory
        assert project["authors"] and project["description"], directory
        assert {"Homepage", "Source", "Changelog"} <= set(project["urls"]), directory
        assert "License :: OSI Approved :: Apache Software License" not in project["classifiers"]
        assert "Programming Language :: Python :: 3.11" in project["classifiers"], directory
    package = json.loads((ROOT / "clients/js/package.json").read_text())
    assert package["name"] == NPM_NAME and package["type"] == "module"
    assert (
        package["license"] == "Apache-2.0"
        and package["exports"]["."]["default"] == "./src/accord.js"
    )
    assert (ROOT / "clients/js/LICENSE").read_text() == license_text


def test_the_changelog_has_unreleased_and_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.M)


def test_accord_version_prints_it() -> None:
    accord = Path(sys.executable).parent / "accord"
    result = subprocess.run(
        [str(accord), "--version"], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == f"accord {__version__}"


# --- make dist, installed and run (e2e) -------------------------------------------------


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/ built by the Makefile's recipe, into a scratch directory (not the checkout's)."""
    out = tmp_path_factory.mktemp("dist") / "dist"
    venv = Path(sys.prefix)
    # -o: take the venv as installed (this one runs the tests); VENV: this venv.
    command = ["make", "-s", "-o", f"{venv}/.installed-run", "dist", f"VENV={venv}", f"DIST={out}"]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def wheel_name(name: str) -> str:
    return f"{name.replace('-', '_')}-{__version__}"


@pytest.mark.e2e
def test_dist_holds_a_wheel_and_an_sdist_per_package_and_the_npm_tarball(dist: Path) -> None:
    expected = {f"{wheel_name(n)}-py3-none-any.whl" for n in PACKAGES.values()}
    expected |= {f"{wheel_name(n)}.tar.gz" for n in PACKAGES.values()}
    expected.add(f"{NPM_NAME}-{__version__}.tgz")
    assert {p.name for p in dist.iterdir()} == expected
    with zipfile.ZipFile(dist / f"{wheel_name('accord-edge')}-py3-none-any.whl") as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"{wheel_name('accord-edge')}.dist-info/METADATA").decode()
    assert "accord/edge/static/sdk/accord.js" in names  # the SDK rides in the edge's wheel
    assert f"{wheel_name('accord-edge')}.dist-info/licenses/LICENSE" in names
    assert f"Version: {__version__}" in metadata and "License-Expression: Apache-2.0" in metadata
    with tarfile.open(dist / f"{NPM_NAME}-{__version__}.tgz") as tarball:
        files = set(tarball.getnames())
    assert {"package/package.json", "package/LICENSE", "package/src/accord.js"} <= files
    assert not [f for f in files if f.startswith("package/test/")]


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with Accord's wheels from dist/ (not editable) and their dependencies."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    wheels = [str(p) for p in sorted(dist.glob("*.whl"))]
    # Accord's own packages from dist/ only, then what they need from the package index.
    subprocess.run([*pip, "--no-index", "--no-deps", *wheels], check=True, timeout=300)
    result = subprocess.run(
        [*pip, "--find-links", str(dist), "accord", "accord-client"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return venv


@pytest.mark.e2e
def test_the_wheels_install_without_the_checkout(installed: Path) -> None:
    python = str(installed / "bin" / "python")
    code = (
        "import accord.cli, accord.client, accord.edge, accord.common, sys;"
        "print(accord.edge.__file__); print(accord.common.__version__)"
    )
    result = subprocess.run(
        [python, "-I", "-c", code], cwd="/", capture_output=True, text=True, check=True
    )
    where, version = result.stdout.split()
    assert where.startswith(str(installed)), where  # not the checkout (not editable)
    assert version == __version__
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    packages = {p["name"].lower(): p for p in json.loads(listed)}
    for name in PACKAGES.values():
        assert packages[name]["version"] == __version__, name
        assert "editable_project_location" not in packages[name], name
    assert "pytest" not in packages  # the runtime needs no test tools


@pytest.fixture
def installed_dev(installed: Path, tmp_path: Path) -> Iterator[DevProcess]:
    env = dev_env(tmp_path, ALLOW_ANONYMOUS="true")
    env["PATH"] = f"{installed / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    process = DevProcess(env, tmp_path / "dev.log")
    process.proc = subprocess.Popen(
        [str(installed / "bin" / "accord"), "dev"],
        cwd=tmp_path,
        env=env,
        stdout=process.log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http_ready(process.http_url, process)
        yield process
    finally:
        try:
            assert process.stop(timeout=30) == 0, process.log()
        finally:
            process.kill_group()


@pytest.mark.e2e
async def test_accord_dev_from_the_installed_wheels_welcomes_a_client(
    installed_dev: DevProcess,
) -> None:
    async with await Client.connect(installed_dev.ws_url) as client:
        welcome = await client.hello(client_id="dist-test")
        subscribed = await client.subscribe("dist-room")
    assert welcome["type"] == "welcome"
    assert welcome["server"]["version"] == __version__
    assert subscribed["type"] == "subscribed"
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{installed_dev.http_url}/sdk/accord.js") as response,
    ):
        assert response.status == 200
        assert f'export const VERSION = "{__version__}";' in await response.text()


@pytest.mark.e2e
def test_the_npm_tarball_installs_and_imports(dist: Path, tmp_path: Path) -> None:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.fail("node and npm are needed (`make test` runs scripts/ensure-tools.sh)")
    project = tmp_path / "app"
    project.mkdir()
    (project / "package.json").write_text(
        json.dumps({"name": "app", "version": "1.0.0", "private": True, "type": "module"})
    )
    tarball = dist / f"{NPM_NAME}-{__version__}.tgz"
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", str(tarball)],
        cwd=project,
        check=True,
        timeout=300,
    )
    script = (
        f'import {{ connect, Replica, VERSION }} from "{NPM_NAME}";\n'
        f'import {{ PositionSource }} from "{NPM_NAME}/sequence";\n'
        "const kinds = [connect, Replica, PositionSource].map((f) => typeof f);\n"
        "console.log(JSON.stringify([...kinds, VERSION]));\n"
    )
    (project / "main.js").write_text(script)
    result = subprocess.run(
        [node, "main.js"], cwd=project, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["function", "function", "function", __version__]

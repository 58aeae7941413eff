"""The JavaScript SDK as the edge serves it, and its node unit tests.

The SDK has one source, clients/js/src. A dev (editable) edge serves it from
there; a built edge carries it in its wheel (services/edge/hatch_build.py puts it
in accord/edge/static/sdk). These tests build that wheel, run an edge from it
alone (``python -S``: no editable install on the path) and fetch the SDK.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from accord.edge.static import SdkMissing, sdk_directory

from tests.support.ports import free_port
from tests.support.suite import ROOT, Suite

SOURCE = ROOT / "clients" / "js" / "src"
EDGE = ROOT / "services" / "edge"
DEMO_FILES = (
    "index.html",
    "todo.html",
    "chat.html",
    "editor.html",
    "demo.css",
    "common.js",
    "todo.js",
    "chat.js",
    "editor.js",
)


def test_sdk_unit_tests_pass_in_node() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (`make test` runs scripts/ensure-tools.sh)")
    result = subprocess.run(
        [node, "--test", "--test-timeout=20000", str(ROOT / "clients" / "js" / "test")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sdk_is_committed_once() -> None:
    assert (SOURCE / "accord.js").is_file()
    copies = [p for p in ROOT.glob("services/**/accord.js") if ".venv" not in p.parts]
    assert copies == [], "the SDK's one source is clients/js/src"


def test_sdk_modules_import_each_other_without_cycles() -> None:
    graph = {
        path.name: set(re.findall(r'from "\./([\w.-]+\.js)"', path.read_text()))
        for path in SOURCE.glob("*.js")
    }
    assert graph["accord.js"], "accord.js imports its modules"
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for imported in sorted(graph[module]):
                visit(imported, (*path, module))
            done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_a_dev_edge_serves_the_checkout(tmp_path: Path) -> None:
    assert sdk_directory() == SOURCE
    packaged = tmp_path / "packaged"
    packaged.mkdir()
    (packaged / "accord.js").write_text("// packaged")
    assert sdk_directory(packaged, SOURCE) == packaged
    with pytest.raises(SdkMissing, match="the JavaScript SDK is missing"):
        sdk_directory(tmp_path / "none", tmp_path / "nor-this")


async def test_edge_serves_the_sdk_and_the_demos(make_suite: object) -> None:
    suite: Suite = await make_suite(edge_env={"ALLOW_ANONYMOUS": "true"})  # type: ignore[operator]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{suite.http_url}/sdk/accord.js") as response:
            assert response.status == 200
            assert response.content_type in ("application/javascript", "text/javascript")
            assert await response.read() == (SOURCE / "accord.js").read_bytes()
        for path in ("/", "/demo/todo", "/demo/chat", "/demo/editor", "/static/demo.css"):
            async with http.get(suite.http_url + path) as response:
                assert response.status == 200, path
        async with http.get(f"{suite.http_url}/demo/nope") as response:
            assert response.status == 404
        async with http.get(f"{suite.http_url}/sdk/../app.py") as response:
            assert response.status in (400, 403, 404)


# --- the built edge ------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*command, "-q", "-w", str(out), str(EDGE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("accord_edge-*.whl")
    return built


@pytest.fixture
def installed(wheel: Path, tmp_path: Path) -> Path:
    """The wheel unpacked: what ``pip install`` puts in site-packages."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    return site


def test_wheel_ships_the_sdk_and_the_demos(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(p.name for p in SOURCE.glob("*.js"))
    assert "accord.js" in sources
    for name in sources:
        assert f"accord/edge/static/sdk/{name}" in names
    for name in DEMO_FILES:
        assert f"accord/edge/static/{name}" in names


class BuiltEdge:
    """``python -S -m accord.edge`` from ``site``, with the other packages' sources."""

    def __init__(self, site: Path, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "edge.log"
        dead = f"127.0.0.1:{free_port()}"  # the edge serves /sdk/ without its backends
        paths = [site, ROOT / "libs" / "common" / "src", Path(sysconfig.get_paths()["purelib"])]
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(map(str, paths)),
            "WS_ADDR": f"127.0.0.1:{self.port}",
            "SYNC_ADDR": dead,
            "PRESENCE_ADDR": dead,
            "ALLOW_ANONYMOUS": "true",
            "GRPC_ALLOW_PLAINTEXT": "true",
            "GRPC_ALLOW_UNAUTHENTICATED": "true",
        }

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            command = [sys.executable, "-S", "-m", "accord.edge"]
            return subprocess.Popen(command, env=self.env, stdout=log, stderr=log)

    def sdk_directory(self) -> Path:
        code = "from accord.edge.static import sdk_directory; print(sdk_directory())"
        result = subprocess.run(
            [sys.executable, "-S", "-c", code],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return Path(result.stdout.strip())

    def get(self, path: str, process: subprocess.Popen[bytes]) -> bytes:
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as response:
                    assert response.status == 200
                    return bytes(response.read())
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the built edge did not serve {path}:\n{self.log.read_text()}")


@pytest.fixture
def built_edge(installed: Path, tmp_path: Path) -> Iterator[BuiltEdge]:
    yield BuiltEdge(installed, tmp_path)


def test_an_edge_built_as_a_wheel_serves_the_sdk(installed: Path, built_edge: BuiltEdge) -> None:
    assert built_edge.sdk_directory() == installed / "accord" / "edge" / "static" / "sdk"
    process = built_edge.start()
    try:
        for source in SOURCE.glob("*.js"):
            assert built_edge.get(f"/sdk/{source.name}", process) == source.read_bytes()
        assert b"todo" in built_edge.get("/demo/todo", process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_edge_without_the_sdk_stops_with_one_clear_line(
    installed: Path, built_edge: BuiltEdge
) -> None:
    shutil.rmtree(installed / "accord" / "edge" / "static" / "sdk")
    process = built_edge.start()
    assert process.wait(timeout=60) == 2
    log = built_edge.log.read_text()
    assert "configuration error: the JavaScript SDK is missing" in log, log


def test_the_image_build_carries_the_sdk(tmp_path: Path) -> None:
    """The Docker build stage, replayed without Docker: the context its dockerignore lets
    through, its COPY lines into /src, then the edge's wheel built from /src."""
    context = tmp_path / "context"
    ignore = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    for line in ignore:
        if line.startswith("!"):
            path = line[1:].rstrip("/")
            target = context / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / path).is_dir():
                skip = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(ROOT / path, target, ignore=skip)
            else:
                shutil.copy2(ROOT / path, target)
    src = tmp_path / "src"
    dockerfile = re.sub(r"\\\n\s*", " ", (ROOT / "docker" / "Dockerfile").read_text())
    build = dockerfile.split(" AS build\n", 1)[1].split("\nFROM ", 1)[0]
    copies = [line.split()[1:] for line in build.splitlines() if line.startswith("COPY ")]
    copies = [c for c in copies if not c[0].startswith("--")]
    assert ["clients/js/src/", "clients/js/src/"] in copies
    for *sources, destination in copies:
        for source in sources:
            if (context / source).is_dir():
                shutil.copytree(context / source, src / destination)
            else:  # files (mypyc's inputs) into a directory
                (src / destination).mkdir(parents=True, exist_ok=True)
                shutil.copy2(context / source, src / destination)
    out = tmp_path / "wheel"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*command, "-q", "-w", str(out), str(src / "services" / "edge")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("accord_edge-*.whl")
    with zipfile.ZipFile(built) as archive:
        served = archive.read("accord/edge/static/sdk/accord.js")
    assert served == (SOURCE / "accord.js").read_bytes()

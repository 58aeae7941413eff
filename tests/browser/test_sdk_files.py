"""The JavaScript SDK as the edge serves it, and its node unit tests.

The SDK's source is clients/js/src; the edge serves a copy from its package
(static/sdk) so that wheels and Docker images, which hold no clients/ tree,
carry it too. These tests keep the copy identical and check it ships.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import aiohttp
import pytest

from tests.support.suite import ROOT, Suite

SOURCE = ROOT / "clients" / "js" / "src"
EDGE = ROOT / "services" / "edge"
SERVED = EDGE / "src" / "accord" / "edge" / "static" / "sdk"


def test_served_sdk_is_a_copy_of_the_source() -> None:
    source = {p.name: p.read_bytes() for p in SOURCE.glob("*.js")}
    served = {p.name: p.read_bytes() for p in SERVED.glob("*.js")}
    assert source, "no SDK source found"
    assert served == source, (
        "services/edge/.../static/sdk differs from clients/js/src: run clients/js/publish.sh"
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


async def test_edge_serves_the_sdk_and_the_demos(make_suite: object) -> None:
    suite: Suite = await make_suite(edge_env={"ALLOW_ANONYMOUS": "true"})  # type: ignore[operator]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{suite.http_url}/sdk/accord.js") as response:
            assert response.status == 200
            assert response.content_type in ("application/javascript", "text/javascript")
            assert "export async function connect" in await response.text()
        for path in (
            "/",
            "/demo/todo",
            "/demo/chat",
            "/demo/editor",
            "/static/demo.css",
            "/static/common.js",
        ):
            async with http.get(suite.http_url + path) as response:
                assert response.status == 200, path
        async with http.get(f"{suite.http_url}/demo/nope") as response:
            assert response.status == 404
        async with http.get(f"{suite.http_url}/sdk/../app.py") as response:
            assert response.status in (400, 403, 404)


def test_wheel_ships_the_sdk_and_the_demos(tmp_path: Path) -> None:
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(EDGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("accord_edge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for source in SOURCE.glob("*.js"):
        assert f"accord/edge/static/sdk/{source.name}" in names
    for page in (
        "index.html",
        "todo.html",
        "chat.html",
        "editor.html",
        "demo.css",
        "todo.js",
        "chat.js",
        "editor.js",
    ):
        assert f"accord/edge/static/{page}" in names

"""Browser tests: Debian's Chromium, driven by Playwright, against a real `accord dev`.

One `accord dev` (anonymous access allowed) serves the whole module; every test
uses rooms of its own. Each test gets a fresh browser; `browser.new_context()`
is a separate profile (its own IndexedDB), i.e. another user's device.
Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.suite import ROOT, DevProcess, dev_env

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HAVE_CHROMIUM = Path(CHROMIUM).exists()
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


def wait_http_ready(url: str, process: DevProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.proc is not None and process.proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"accord dev did not become ready:\n{process.log()}")


@pytest.fixture(scope="module")
def accord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    """`accord dev` with anonymous access, for the module."""
    tmp = tmp_path_factory.mktemp("accord-dev")
    process = DevProcess(
        dev_env(tmp, ALLOW_ANONYMOUS="true", HEARTBEAT_INTERVAL="5"), tmp / "dev.log"
    )
    process.start()
    try:
        wait_http_ready(process.http_url, process)
        yield process
    finally:
        try:
            process.stop(timeout=15)
        finally:
            process.kill_group()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    if not HAVE_CHROMIUM:
        pytest.fail(f"{CHROMIUM} is missing: `make test` runs scripts/ensure-tools.sh")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def room_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS

"""The docs' runnable examples (tests/docs/examples.py) run against a real `accord dev`.

Python blocks with this venv's interpreter, shell blocks with bash (from the repository
root, the venv's bin first on PATH), JavaScript blocks in Chromium as a module script on
a page of the edge's own origin. Each runs with HOME set to a scratch directory, so an
``offline_path="~/…"`` lands there. A failing block fails with its file and line.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, HAVE_CHROMIUM, wait_http_ready
from tests.docs.examples import ROOT, Example, all_examples, examples
from tests.support.suite import DevProcess, dev_env

pytestmark = pytest.mark.e2e

EXAMPLES = all_examples()
TIMEOUT = 60.0
PAGE = "/health"  # any document of the edge's origin; the block then builds its own page


@pytest.fixture(scope="module")
def accord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    """`accord dev` with anonymous access (what `make run` starts), for the module."""
    tmp = tmp_path_factory.mktemp("docs-dev")
    process = DevProcess(dev_env(tmp, ALLOW_ANONYMOUS="true"), tmp / "dev.log")
    process.start()
    try:
        wait_http_ready(process.http_url, process)
        yield process
    finally:
        try:
            process.stop(timeout=15)
        finally:
            process.kill_group()


def block_env(accord: DevProcess, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env.update(
        ACCORD_URL=accord.ws_url,
        ACCORD_HTTP_URL=accord.http_url,
        ACCORD_TOKEN="",
        HOME=str(home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def test_the_quick_starts_are_marked_runnable() -> None:
    languages = {(example.path.name, example.language) for example in EXAMPLES if example.line > 0}
    assert {("README.md", "python"), ("README.md", "sh")} <= languages
    assert ("sdk-python.md", "python") in languages
    assert ("sdk-js.md", "js") in languages


def test_the_marker_is_found_and_unknown_languages_are_refused(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\nnot run\n```\n\n```python run\nprint(1)\n```\n\n````sh run\nls\n````\n"
    )
    found = examples(page)
    assert [(e.line, e.language, e.code) for e in found] == [
        (7, "python", "print(1)\n"),
        (11, "sh", "ls\n"),
    ]
    page.write_text("```ruby run\nputs 1\n```\n")
    with pytest.raises(ValueError, match=r"page.md:1: cannot run a 'ruby' block"):
        examples(page)


@pytest.mark.parametrize(
    "example",
    [e for e in EXAMPLES if e.language in ("python", "sh")],
    ids=lambda e: e.where,
)
def test_python_and_shell_examples_run(
    example: Example, accord: DevProcess, tmp_path: Path
) -> None:
    script = tmp_path / ("example.py" if example.language == "python" else "example.sh")
    script.write_text(example.code)
    command = (
        [sys.executable, str(script)]
        if example.language == "python"
        else ["bash", "-euo", "pipefail", str(script)]
    )
    try:
        result = subprocess.run(
            command,
            cwd=ROOT,
            env=block_env(accord, tmp_path),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{example.where}: still running after {TIMEOUT:.0f} s")
    assert result.returncode == 0, (
        f"{example.where} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )


def console_error(message: Any) -> list[str]:
    """A console error, except the browser's own request for /favicon.ico."""
    if message.type != "error" or message.location.get("url", "").endswith("/favicon.ico"):
        return []
    return [f"{message.text} ({message.location.get('url', '')})"]


@pytest.mark.browser
@pytest.mark.parametrize(
    "example", [e for e in EXAMPLES if e.language == "js"], ids=lambda e: e.where
)
async def test_javascript_examples_run_in_chromium(example: Example, accord: DevProcess) -> None:
    from playwright.async_api import async_playwright

    if not HAVE_CHROMIUM:
        pytest.fail(f"{CHROMIUM} is missing: `make test` runs scripts/ensure-tools.sh")
    # The block, then a marker it reaches only if every line before it ran (top-level await).
    module = example.code + "\nwindow.__exampleDone = true;\n"
    errors: list[str] = []

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda msg: errors.extend(console_error(msg)))
            # A document of the edge's own origin (a route-fulfilled page would count as
            # another address space, and Chromium would refuse its WebSocket to 127.0.0.1).
            await page.goto(f"{accord.http_url}{PAGE}")
            await page.evaluate(
                """(code) => {
                    const script = document.createElement("script");
                    script.type = "module";
                    script.textContent = code;
                    document.body.replaceChildren(script);
                }""",
                module,
            )
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            done: Any = False
            while not done and not errors and asyncio.get_running_loop().time() < deadline:
                done = await page.evaluate("window.__exampleDone === true")
                if not done:
                    await asyncio.sleep(0.1)
        finally:
            await browser.close()
    assert not errors, f"{example.where} failed in Chromium: {errors}"
    assert done, f"{example.where}: did not finish within {TIMEOUT:.0f} s"

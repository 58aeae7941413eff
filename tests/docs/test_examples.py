"""The docs' runnable examples (tests/docs/examples.py) run against a real `accord dev`.

Python blocks with this venv's interpreter, shell blocks with bash (from the repository
root, the venv's bin first on PATH), JavaScript blocks in Chromium as a module script on
a page of the edge's own origin. Each runs with HOME set to a scratch directory, so an
``offline_path="~/…"`` lands there. A failing block fails with its file and line.

``secret`` blocks run against a second `accord dev` with ``JWT_SECRET=DOCS_SECRET`` (no
anonymous access), with ``JWT_SECRET`` and ``ACCORD_TOKEN`` (``accord token --sub docs``)
in their environment. An ``extension`` block is written to a module and loaded by an
`accord dev` of its own (``SYNC_EXTENSIONS=<module>:factory``): it must start, become
ready and still commit a plain change.
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
from tests.docs.examples import DOCS_SECRET, ROOT, Example, all_examples, examples
from tests.support.suite import ACCORD, DevProcess, dev_env
from tests.support.wsclient import Client, make_token

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


@pytest.fixture(scope="module")
def accord_secret(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    """`accord dev` with JWT_SECRET=DOCS_SECRET and no anonymous access (``secret`` blocks)."""
    tmp = tmp_path_factory.mktemp("docs-dev-secret")
    process = DevProcess(dev_env(tmp, JWT_SECRET=DOCS_SECRET), tmp / "dev.log")
    process.start()
    try:
        wait_http_ready(process.http_url, process)
        yield process
    finally:
        try:
            process.stop(timeout=15)
        finally:
            process.kill_group()


def minted_token() -> str:
    """A token for ``secret`` blocks, from the CLI the docs tell users to run."""
    result = subprocess.run(
        [ACCORD, "token", "--sub", "docs"],
        env={**os.environ, "JWT_SECRET": DOCS_SECRET},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def block_env(accord: DevProcess, home: Path, *, secret: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCORD_", "JWT_"))}
    env.update(
        ACCORD_URL=accord.ws_url,
        ACCORD_HTTP_URL=accord.http_url,
        ACCORD_TOKEN=minted_token() if secret else "",
        HOME=str(home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    if secret:
        env["JWT_SECRET"] = DOCS_SECRET
    return env


def test_the_quick_starts_are_marked_runnable() -> None:
    languages = {(example.path.name, example.language) for example in EXAMPLES if example.line > 0}
    assert {("README.md", "python"), ("README.md", "sh")} <= languages
    assert ("sdk-python.md", "python") in languages
    assert ("sdk-js.md", "js") in languages
    pages = {example.path.name for example in EXAMPLES}
    assert {
        "server-api.md",
        "identity.md",
        "extensions.md",
        "webhooks.md",
        "encryption.md",
        "sdk-python.md",
        "sdk-js.md",
    } <= pages


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


def test_a_block_names_what_it_needs_and_unknown_needs_are_refused(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```bash run secret\ntrue\n```\n\n```python run extension\nx = 1\n```\n")
    assert [(e.language, e.needs) for e in examples(page)] == [
        ("sh", frozenset({"secret"})),
        ("python", frozenset({"extension"})),
    ]
    page.write_text("```sh run sudo\ntrue\n```\n")
    with pytest.raises(ValueError, match=r"page.md:1: unknown need 'sudo'"):
        examples(page)
    page.write_text("```js run secret\n1;\n```\n")
    with pytest.raises(ValueError, match=r"page.md:1: a js block cannot need 'secret'"):
        examples(page)


@pytest.mark.parametrize(
    "example",
    [e for e in EXAMPLES if e.language in ("python", "sh") and "extension" not in e.needs],
    ids=lambda e: e.where,
)
def test_python_and_shell_examples_run(
    example: Example, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    secret = "secret" in example.needs
    accord: DevProcess = request.getfixturevalue("accord_secret" if secret else "accord")
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
            env=block_env(accord, tmp_path, secret=secret),
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


@pytest.mark.parametrize(
    "example", [e for e in EXAMPLES if "extension" in e.needs], ids=lambda e: e.where
)
async def test_extension_examples_load_into_accord_dev(example: Example, tmp_path: Path) -> None:
    module = f"docs_extension_{example.line}"
    (tmp_path / f"{module}.py").write_text(example.code)
    env = dev_env(
        tmp_path,
        ALLOW_ANONYMOUS="true",
        SYNC_EXTENSIONS=f"{module}:factory",
        PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    )
    process = DevProcess(env, tmp_path / "dev.log")
    process.start()
    try:
        await asyncio.to_thread(wait_http_ready, process.http_url, process)
        async with await Client.connect(process.ws_url) as client:
            await client.hello(make_token(), client_id="c-docs")
            await client.subscribe("docs-extension")
            ack = await client.push(
                "docs-extension",
                [
                    {
                        "client_seq": 1,
                        "collection": "notes",
                        "key": "n-1",
                        "op": {"kind": "set", "fields": {"text": "a plain note"}},
                    }
                ],
            )
        assert ack["results"][0]["status"] == "applied", (example.where, ack, process.log())
        assert process.stop(timeout=15) == 0
    finally:
        process.kill_group()


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

"""The curl walk-through of docs/server-api.md, run verbatim against ``accord dev``."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.suite import ROOT, DevProcess, wait_ready

pytestmark = pytest.mark.e2e


def walk_through() -> tuple[str, str]:
    text = (ROOT / "docs" / "server-api.md").read_text()
    match = re.search(r"<!-- example: curl[^>]*-->\n```bash run secret\n(.*?)```", text, re.S)
    assert match, "docs/server-api.md lost its curl example"
    script = match.group(1)
    secret = re.search(r"export JWT_SECRET=(\S+)", script)
    assert secret
    return script, secret.group(1)


async def test_the_curl_example_works_against_accord_dev(
    dev: Callable[..., DevProcess], tmp_path: Path
) -> None:
    script, secret = walk_through()
    process = dev(JWT_SECRET=secret)
    process.start()
    await wait_ready(process.http_url)
    env = {
        **os.environ,
        "ACCORD_HTTP_URL": process.http_url,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    run = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        script,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(run.communicate(), 60)
    assert run.returncode == 0, err.decode() + process.log()
    # Each curl prints its answer (no newline); the answers, in order:
    text = out.decode()
    for expected in (
        '"status":"applied"',
        '"status":"duplicate"',
        '"records":[{"collection":"todos","key":"t-1","value":{"done":false,"title":"milk"}}]',
        '{"collection":"todos","key":"t-1","value":{"done":false,"title":"milk"},"seq":1}',
        '"head":1,"changes":[{"seq":1',
        '"count":0',
        '{"room":"todo-demo"}',
    ):
        assert expected in text, (expected, text)
        text = text[text.index(expected) + len(expected) :]
    assert process.stop() == 0

"""API keys for the server API: created by ``accord api-key``, read from API_KEYS_FILE, their
grants applied, the file reloaded without a restart (a bad file keeps the last good keys)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.apiclient import Answer, ApiClient
from tests.support.suite import ACCORD, start_in_process
from tests.support.wsclient import SECRET

pytestmark = pytest.mark.e2e


def create_key(keys_file: Path, name: str, *rooms: str, write: list[str] | None = None) -> str:
    args = [ACCORD, "api-key", "--name", name, "--rooms", *rooms, "--file", str(keys_file)]
    if write is not None:
        args += ["--write", *write]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    key = done.stdout.strip()
    assert key.startswith("ak_")
    entry = json.loads(done.stderr)
    assert entry["name"] == name and entry["hash"].startswith("sha256:")
    assert key not in keys_file.read_text()  # only the hash is stored
    return key


def push(client_seq: int) -> dict[str, Any]:
    change = {"client_seq": client_seq, "collection": "c", "key": "k", "op": {"kind": "delete"}}
    return {"client_id": "svc", "changes": [change]}


async def until(check: Callable[[], Awaitable[Answer | None]], timeout: float = 10.0) -> Answer:
    """Poll ``check`` (a coroutine function returning an Answer or None) until it answers."""
    async with asyncio.timeout(timeout):
        while True:
            answer = await check()
            if answer is not None:
                return answer
            await asyncio.sleep(0.05)


async def test_keys_grant_rooms_and_the_file_reloads_without_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys_file = tmp_path / "keys.json"
    billing = create_key(keys_file, "billing", "todo-*")
    reader = create_key(keys_file, "reader", "*", write=[])
    async with AsyncExitStack() as stack:
        suite = await start_in_process(
            stack,
            database_url=f"sqlite:///{tmp_path}/accord.db",
            edge_env={"API_KEYS_FILE": str(keys_file), "API_KEYS_RELOAD_INTERVAL": "0"},
        )
        api = await ApiClient.open(suite.http_url)
        stack.push_async_callback(api.close)
        wrote = await api.call("POST", "/api/v1/rooms/todo-1/changes", billing, push(1))
        assert wrote.status == 200 and wrote.body["results"][0]["status"] == "applied"
        elsewhere = await api.call("POST", "/api/v1/rooms/chat-1/changes", billing, push(1))
        assert (elsewhere.status, elsewhere.body["code"]) == (403, "FORBIDDEN")
        read = await api.call("GET", "/api/v1/rooms/todo-1/changes", reader)
        # The user id of a key's change is its name (sync scopes client_seq by it).
        assert read.status == 200 and read.body["head"] == 1
        denied = await api.call("POST", "/api/v1/rooms/todo-1/changes", reader, push(2))
        assert (denied.status, denied.body["code"]) == (403, "FORBIDDEN")

        # A new key works as soon as the file has it; a replaced one stops working.
        ops = create_key(keys_file, "ops", "chat-*")
        billing_again = create_key(keys_file, "billing", "todo-*")

        async def ops_works() -> Answer | None:
            answer = await api.call("GET", "/api/v1/rooms/chat-1/records", ops)
            return answer if answer.status == 200 else None

        await until(ops_works)
        old = await api.call("GET", "/api/v1/rooms/todo-1/records", billing)
        assert (old.status, old.body["code"]) == (401, "UNAUTHENTICATED")
        assert (await api.call("GET", "/api/v1/rooms/todo-1/records", billing_again)).status == 200

        # A broken file is refused with one line; the keys in force stay.
        with caplog.at_level(logging.WARNING, logger="accord.edge.api.keys"):
            keys_file.write_text('{"keys": [{"name": "x"')
            os.utime(keys_file, ns=(1, 1))
            for _ in range(3):
                answer = await api.call("GET", "/api/v1/rooms/chat-1/records", ops)
                assert answer.status == 200
        refused = [r for r in caplog.records if "not reloaded" in r.getMessage()]
        assert len(refused) == 1
        assert "not valid JSON" in refused[0].getMessage()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not valid JSON"),
        ('{"keys": [{"name": "a", "hash": "md5:00", "rooms": ["*"]}]}', "'hash' must be"),
        ('{"keys": [{"name": "a", "hash": "sha256:' + "0" * 64 + '"}]}', "'rooms' is required"),
    ],
)
def test_a_bad_keys_file_stops_start_up_with_one_line(
    tmp_path: Path, content: str, message: str
) -> None:
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(content)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "JWT_SECRET": SECRET,
        "API_KEYS_FILE": str(keys_file),
        "WS_ADDR": "127.0.0.1:0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "accord.edge"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "API_KEYS_FILE" in lines[0], lines

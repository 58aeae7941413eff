"""`accord dev` as a user runs it: three processes, embedded or on PostgreSQL + Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.suite import ACCORD, DevProcess, dev_env, wait_ready
from tests.support.wsclient import Client, Replica, make_token, sync_until

pytestmark = pytest.mark.e2e


def change(client_seq: int, key: str, **fields: Any) -> dict[str, Any]:
    return {
        "client_seq": client_seq,
        "collection": "todos",
        "key": key,
        "op": {"kind": "set", "fields": fields},
    }


async def started(process: DevProcess) -> DevProcess:
    process.start()
    try:
        await wait_ready(process.http_url, timeout=60)
    except TimeoutError:
        raise AssertionError(f"accord dev did not become ready:\n{process.log()}") from None
    return process


async def scenario(process: DevProcess) -> None:
    """Two clients converge, a late one catches up, a duplicate is recognised."""
    async with (
        await Client.connect(process.ws_url) as alice,
        await Client.connect(process.ws_url) as bob,
    ):
        await alice.hello(make_token("u-a"), client_id="c-a")
        await bob.hello(make_token("u-b"), client_id="c-b")
        await alice.subscribe("todo-demo", presence={"status": "online"})
        await bob.subscribe("todo-demo")
        acks = []
        for n in range(1, 4):
            acks.append(
                await alice.push("todo-demo", [change(n, f"t-{n}", title=f"item {n}", done=False)])
            )
        acks.append(await bob.push("todo-demo", [change(1, "t-1", done=True)]))
        assert [a["results"][0]["seq"] for a in acks] == [1, 2, 3, 4]
        ra, rb = Replica(), Replica()
        await sync_until(alice, ra, 4)
        await sync_until(bob, rb, 4)
        assert ra.records == rb.records
        assert ra.view("todos")["t-1"] == {"title": "item 1", "done": True}

        duplicate = await bob.push("todo-demo", [change(1, "t-1", done=True)])
        assert duplicate["results"][0] == {"client_seq": 1, "seq": 4, "status": "duplicate"}

    async with await Client.connect(process.ws_url) as late:
        await late.hello(make_token("u-c"), client_id="c-c")
        await late.subscribe("todo-demo", since=2)
        replica = Replica()
        replica.seq = 2
        await sync_until(late, replica, 4)
        assert replica.seqs == [3, 4]


async def after_restart(process: DevProcess) -> None:
    async with await Client.connect(process.ws_url) as client:
        await client.hello(make_token("u-d"), client_id="c-d")
        subscribed = await client.subscribe("todo-demo")
        assert subscribed["head"] == 4
        replica = Replica()
        await sync_until(client, replica, 4)
        assert replica.view("todos") == {
            "t-1": {"title": "item 1", "done": True},
            "t-2": {"title": "item 2", "done": False},
            "t-3": {"title": "item 3", "done": False},
        }


async def test_dev_embedded_end_to_end(dev: Callable[..., DevProcess]) -> None:
    process = await started(dev())
    await scenario(process)
    assert process.stop() == 0
    restarted = await started(DevProcess(process.env, process.log_path))
    try:
        await after_restart(restarted)
    finally:
        assert restarted.stop() == 0
    assert "stopping" in process.log()


@pytest.mark.integration
async def test_dev_on_postgres_and_redis_end_to_end(
    dev: Callable[..., DevProcess], database_url: str, redis_url: str, redis_prefix: str
) -> None:
    process = await started(
        dev(DATABASE_URL=database_url, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix)
    )
    await scenario(process)
    assert process.stop() == 0
    restarted = await started(DevProcess(process.env, process.log_path))
    try:
        await after_restart(restarted)
    finally:
        assert restarted.stop() == 0


async def test_dev_stops_everything_when_a_child_dies(dev: Callable[..., DevProcess]) -> None:
    process = await started(dev())
    children = subprocess.run(
        ["pgrep", "-f", "-P", str(process.proc.pid), "accord.sync"], capture_output=True, text=True
    )
    sync_pid = int(children.stdout.split()[0])
    os.kill(sync_pid, signal.SIGKILL)
    assert process.proc.wait(40) != 0
    assert "sync exited" in process.log()
    leftovers = subprocess.run(
        ["pgrep", "-P", str(process.proc.pid)], capture_output=True, text=True
    )
    assert leftovers.stdout.strip() == ""


async def test_dev_sigint_stops_cleanly(dev: Callable[..., DevProcess]) -> None:
    process = await started(dev())
    assert process.stop(signal.SIGINT) == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SYNC_ADDR": "nonsense"}, "SYNC_ADDR"),
        ({"MAX_CONNECTIONS": "lots"}, "MAX_CONNECTIONS"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"JWT_SECRET": "short"}, "JWT_SECRET"),
    ],
)
def test_bad_configuration_stops_with_one_clear_line(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    env = dev_env(tmp_path, **overrides)
    result = subprocess.run([ACCORD, "dev"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert message in result.stderr
    errors = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("service", ["edge", "sync", "presence"])
def test_single_service_bad_configuration(tmp_path: Path, service: str) -> None:
    env = dev_env(tmp_path, LOG_LEVEL="loud")
    result = subprocess.run([ACCORD, service], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: LOG_LEVEL='loud' must be one of debug, info, warning, error"
    ]


def test_cli_usage_errors() -> None:
    result = subprocess.run([ACCORD, "teleport"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    result = subprocess.run([ACCORD], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    helped = subprocess.run([ACCORD, "--help"], capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0
    assert "dev" in helped.stdout


def test_python_module_entry_points_exist() -> None:
    for module in ("accord.edge", "accord.sync", "accord.presence"):
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import importlib.util; assert importlib.util.find_spec('{module}.__main__')",
            ],
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 0, module


async def test_dev_is_usable_while_idle(dev: Callable[..., DevProcess]) -> None:
    process = await started(dev(HEARTBEAT_INTERVAL="0.3"))
    async with await Client.connect(process.ws_url) as client:
        await client.hello(make_token(), client_id="c-idle")
        await client.subscribe("idle", presence={})
        await client.idle(1.5)  # several heartbeats pass; the session stays
        assert (await client.request({"type": "ping"}))["type"] == "pong"
    assert process.stop() == 0


async def test_sigterm_drains_clients_with_1012(dev: Callable[..., DevProcess]) -> None:
    process = await started(dev())
    async with await Client.connect(process.ws_url) as client:
        await client.hello(make_token(), client_id="c-drain")
        await client.subscribe("drain")
        ack = await client.push("drain", [change(1, "k", v=1)])
        assert ack["results"][0]["status"] == "applied"
        process.proc.send_signal(signal.SIGTERM)
        assert await client.closed(timeout=30) == 1012
    assert process.proc.wait(30) == 0
    assert "draining 1 sessions" in process.log()

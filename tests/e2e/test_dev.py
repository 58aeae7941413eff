"""`accord dev` as a user runs it: three processes, embedded or on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from accord.cli import dev as dev_command
from accord.cli.supervise import Child

from tests.support.ports import free_port
from tests.support.suite import ACCORD, UNPROTECTED_GRPC, DevProcess, dev_env, wait_ready
from tests.support.wsclient import Client, Replica, make_token, sync_until
from tests.support.wsclient import set_change as change

pytestmark = pytest.mark.e2e


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


async def pushes_over_the_socket(process: DevProcess) -> float:
    """sync's ``accord_sync_push_socket_requests_total``, from its metrics port."""
    url = f"http://{process.env['SYNC_METRICS_ADDR']}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    (line,) = [
        x for x in text.splitlines() if x.startswith("accord_sync_push_socket_requests_total ")
    ]
    return float(line.split()[-1])


def socket_of(process: DevProcess) -> Path:
    """The push socket ``accord dev`` gave its sync child (from the child's environment:
    the children's log lines reach the log file a moment after they are written)."""
    assert process.proc is not None
    for pid in descendants(process.proc.pid):
        if "accord.sync" in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " "):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            (value,) = [e for e in environ if e.startswith(b"SYNC_PUSH_SOCKET=")]
            return Path(value.split(b"=", 1)[1].decode())
    raise AssertionError("accord dev has no sync child")


async def test_dev_embedded_end_to_end(dev: Callable[..., DevProcess]) -> None:
    process = await started(dev())
    await scenario(process)
    # The edge pushed to sync over the push socket, in a directory of accord dev's own.
    assert await pushes_over_the_socket(process) >= 4
    path = socket_of(process)
    assert path.is_socket(), path
    assert (
        path.parent.name.startswith("accord-dev-") and oct(path.parent.stat().st_mode)[-3:] == "700"
    )
    assert process.stop() == 0
    assert not path.parent.exists(), "accord dev left its socket directory behind"
    restarted = await started(DevProcess(process.env, process.log_path))
    try:
        await after_restart(restarted)
    finally:
        assert restarted.stop() == 0
    assert "stopping" in process.log()


def descendants(pid: int) -> list[int]:
    """Every process started by ``pid``, from /proc (each of its threads' children)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


async def test_dev_in_one_process_end_to_end(dev: Callable[..., DevProcess]) -> None:
    process = await started(dev("--one-process"))
    assert process.proc is not None
    assert descendants(process.proc.pid) == [], "--one-process started child processes"
    await scenario(process)
    # The edge's /metrics serves the one process's registry: sync's counters are in it,
    # and the pushes went over the push socket inside the process.
    async with aiohttp.ClientSession() as http, http.get(f"{process.http_url}/metrics") as got:
        text = await got.text()
    (line,) = [
        x for x in text.splitlines() if x.startswith("accord_sync_push_socket_requests_total ")
    ]
    assert float(line.split()[-1]) >= 4
    assert process.stop() == 0
    restarted = await started(DevProcess(process.env, process.log_path, process.args))
    try:
        await after_restart(restarted)
    finally:
        assert restarted.stop() == 0
    log = process.log()
    assert "running in one process: ws://127.0.0.1:" in log and "accord dev: stopping" in log


def test_one_process_refuses_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    env = dev_env(tmp_path, MAX_CONNECTIONS="lots")
    result = subprocess.run(
        [ACCORD, "dev", "--one-process"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = [x for x in result.stderr.splitlines() if "MAX_CONNECTIONS" in x]
    assert len(lines) == 1 and "configuration error" in lines[0], result.stderr


@pytest.mark.integration
async def test_dev_on_postgres_and_redis_end_to_end(
    dev: Callable[..., DevProcess], database_url: str, redis_url: str, redis_prefix: str
) -> None:
    process = await started(
        dev(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            REDIS_PREFIX=redis_prefix,
            SYNC_PUSH_SOCKET="",  # set empty: the pushes go over gRPC
        )
    )
    await scenario(process)
    assert await pushes_over_the_socket(process) == 0
    assert "sync push socket" not in process.log()
    assert process.stop() == 0
    restarted = await started(DevProcess(process.env, process.log_path))
    try:
        await after_restart(restarted)
    finally:
        assert restarted.stop() == 0


async def test_dev_stops_everything_when_a_child_dies(dev: Callable[..., DevProcess]) -> None:
    process = await started(dev())
    assert process.proc is not None
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
    assert process.proc is not None
    async with await Client.connect(process.ws_url) as client:
        await client.hello(make_token(), client_id="c-drain")
        await client.subscribe("drain")
        ack = await client.push("drain", [change(1, "k", v=1)])
        assert ack["results"][0]["status"] == "applied"
        process.proc.send_signal(signal.SIGTERM)
        assert await client.closed(timeout=30) == 1012
    assert process.proc.wait(30) == 0
    assert "draining 1 sessions" in process.log()


RUNNING = "accord dev: running: "


async def wait_for_line(process: DevProcess, marker: str, timeout: float = 60.0) -> None:
    assert process.proc is not None
    deadline = time.monotonic() + timeout
    while marker not in process.log():
        assert process.proc.poll() is None, f"accord dev exited:\n{process.log()}"
        assert time.monotonic() < deadline, f"no {marker!r} in:\n{process.log()}"
        await asyncio.sleep(0.02)


async def test_the_address_is_printed_once_the_edge_is_ready(
    dev: Callable[..., DevProcess],
) -> None:
    process = dev()
    process.start()
    await wait_for_line(process, RUNNING)
    # The very first request after the line, without a retry, finds the edge ready.
    async with aiohttp.ClientSession() as http, http.get(f"{process.http_url}/ready") as response:
        assert response.status == 200, await response.text()
    log = process.log()
    assert log.index("edge listening on") < log.index(RUNNING)
    assert log.count(RUNNING) == 1
    assert process.stop(signal.SIGINT) == 0


async def test_a_second_dev_on_the_same_ports_is_one_line_and_exit_2(
    dev: Callable[..., DevProcess],
) -> None:
    first = await started(dev())
    for moved in (
        [],
        ["WS_ADDR"],
        ["WS_ADDR", "SYNC_ADDR"],
        ["WS_ADDR", "SYNC_ADDR", "PRESENCE_ADDR"],
    ):
        env = {**first.env, **{name: f"127.0.0.1:{free_port()}" for name in moved}}
        second = subprocess.run(
            [ACCORD, "dev"], env=env, capture_output=True, text=True, timeout=60
        )
        lines = second.stderr.splitlines()
        taken = next(
            name
            for name in ("WS_ADDR", "SYNC_ADDR", "PRESENCE_ADDR", "SYNC_METRICS_ADDR")
            if name not in moved
        )
        assert second.returncode == 2, second.stderr
        assert len(lines) == 1, second.stderr
        assert f"{taken}={first.env[taken]}" in lines[0]
        assert f"set {taken} to a free port" in lines[0]
    # The first one still serves.
    async with await Client.connect(first.ws_url) as client:
        await client.hello(make_token("u-first"), client_id="c-first")
        assert (await client.request({"type": "ping"}))["type"] == "pong"
    assert first.stop() == 0


def test_a_child_that_cannot_bind_is_reported_in_one_line(tmp_path: Path) -> None:
    """The path for a port taken after accord dev looked: the child's BindError, renamed."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = dev_env(tmp_path, METRICS_ADDR=f"127.0.0.1:{port}", **UNPROTECTED_GRPC)
        child = Child("sync", env)
        assert child.proc.wait(60) == 2
        code, message = child.failure()
    assert code == 2
    assert message == (
        f"sync: cannot listen on SYNC_METRICS_ADDR=127.0.0.1:{port} (Address already in use);"
        " set SYNC_METRICS_ADDR to a free port"
    )


def run_dev_until_ready(process: DevProcess) -> None:
    process.start()
    deadline = time.monotonic() + 60
    while RUNNING not in process.log():
        assert process.proc is not None and process.proc.poll() is None, process.log()
        assert time.monotonic() < deadline, process.log()
        time.sleep(0.05)


async def test_repeated_interrupts_each_stop_within_5_seconds(
    dev: Callable[..., DevProcess],
) -> None:
    """Ctrl-C as a terminal sends it (to the whole process group) and to accord dev alone.

    Each cycle has a subscribed client, so the edge holds sync and presence streams
    while it drains. A bounded-time check, not a benchmark: the times are printed.
    """
    times: list[float] = []
    for cycle in range(5):
        process = dev()
        await asyncio.to_thread(run_dev_until_ready, process)
        assert process.proc is not None
        async with await Client.connect(process.ws_url) as client:
            await client.hello(make_token(f"u-{cycle}"), client_id=f"c-{cycle}")
            await client.subscribe("stop-room", presence={"n": cycle})
            began = time.monotonic()
            if cycle % 2:
                os.killpg(process.proc.pid, signal.SIGINT)  # a terminal's Ctrl-C
            else:
                process.proc.send_signal(signal.SIGINT)
            code = await asyncio.to_thread(process.stop, signal.SIGINT, 30.0)
            times.append(time.monotonic() - began)
        assert code == 0, process.log()
        leftovers = subprocess.run(
            ["pgrep", "-f", f"accord.cli.child {process.proc.pid} "], capture_output=True, text=True
        )
        assert leftovers.stdout.strip() == "", process.log()
    print("accord dev stop times (s):", ", ".join(f"{t:.2f}" for t in times))
    assert max(times) < 5.0, f"stop times {times}"


async def test_a_killed_dev_takes_its_children_along(dev: Callable[..., DevProcess]) -> None:
    process = await started(dev())
    assert process.proc is not None
    pattern = f"accord.cli.child {process.proc.pid} "
    assert len(subprocess.run(["pgrep", "-f", pattern], capture_output=True).stdout.split()) == 3
    process.proc.kill()
    process.proc.wait()
    deadline = time.monotonic() + 30
    while subprocess.run(["pgrep", "-f", pattern], capture_output=True).stdout.strip():
        assert time.monotonic() < deadline, "children outlived a SIGKILLed accord dev"
        await asyncio.sleep(0.1)


def test_a_misspelt_setting_is_named_with_the_intended_one(tmp_path: Path) -> None:
    # An invalid LOG_FORMAT makes accord dev stop right after the warnings.
    env = dev_env(tmp_path, HEARTBEAT_INTERVL="1", LOG_FORMAT="xml")
    result = subprocess.run([ACCORD, "dev"], env=env, capture_output=True, text=True, timeout=60)
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "accord dev: warning: HEARTBEAT_INTERVL is not a setting Accord reads;"
        " did you mean HEARTBEAT_INTERVAL?"
    ]
    assert result.returncode == 2


def test_settings_warnings_know_every_setting_and_only_warn_on_lookalikes() -> None:
    documented = {
        line.split("`")[1]
        for line in (Path(__file__).parents[2] / "docs" / "operations.md").read_text().splitlines()
        if line.startswith("| `") and line.split("`")[1].isupper()
    }
    assert len(documented) > 40
    assert dev_command.settings_warnings(dict.fromkeys(documented, "1")) == []
    assert dev_command.settings_warnings(
        {
            "ACCORD_SYNC_ADDR": "127.0.0.1:1",
            "ACCORD_SHINY": "1",
            "ACCORD_TOKEN": "t",
            "JWT_SECRT": "x",
            "REDIS_URL": "redis://localhost",
            "HEARTBEAT_INTERVL": "",  # empty: as good as unset
            "PATH": "/bin",
            "TEST_DATABASE_URL": "postgresql://x",
        }
    ) == [
        "ACCORD_SHINY is not a setting Accord reads (settings have no prefix)",
        "ACCORD_SYNC_ADDR is not a setting Accord reads (settings have no prefix);"
        " did you mean SYNC_ADDR?",
        "JWT_SECRT is not a setting Accord reads; did you mean JWT_SECRET?",
    ]


async def sync_metric(process: DevProcess, name: str) -> float:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{process.env['SYNC_METRICS_ADDR']}/metrics") as response,
    ):
        text = await response.text()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert values, f"{name} is not exported"
    return values[0]


async def test_clients_of_one_edge_converge_on_batches_answered_with_the_pushes(
    dev: Callable[..., DevProcess],
) -> None:
    # One edge, one sync: the pushes' batches come back in their answers (not on the
    # Subscribe stream), and every client still gets every change once, in order.
    process = await started(dev())
    try:
        before = await sync_metric(process, "accord_sync_inline_batches_total")
        async with (
            await Client.connect(process.ws_url) as alice,
            await Client.connect(process.ws_url) as bob,
        ):
            await alice.hello(make_token("u-a"), client_id="c-a")
            await bob.hello(make_token("u-b"), client_id="c-b")
            await alice.subscribe("inline")
            await bob.subscribe("inline")
            for n in range(1, 11):
                pusher = alice if n % 2 else bob
                ack = await pusher.push("inline", [change(n, f"t-{n % 3}", n=n)])
                assert ack["results"][0]["seq"] == n
            ra, rb = Replica(), Replica()
            await sync_until(alice, ra, 10)
            await sync_until(bob, rb, 10)
            assert ra.seqs == rb.seqs == list(range(1, 11))  # Replica refuses gaps and repeats
            assert ra.records == rb.records
        assert await sync_metric(process, "accord_sync_inline_batches_total") > before
    finally:
        process.stop()

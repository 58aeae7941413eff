"""Webhooks from a real sync process on PostgreSQL: SIGKILLed between commit and
delivery, it delivers everything after its restart (the batch in flight again under
the same webhook-id); ``accord webhooks list|resume`` show and resume a parked endpoint."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from accord.api.sync.v1.sync_pb2_grpc import SyncStub
from accord.common.grpcutil import check_health, create_channel

from tests.integration.sync.sync_helpers import push, set_change
from tests.support.ports import free_port
from tests.support.suite import ACCORD, UNPROTECTED_GRPC
from tests.support.webhook_receiver import Receiver, new_secret

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

WAIT = 30.0


class Sync:
    """``python -m accord.sync`` as a child process (stopped only by its own pid)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.addr = env["SYNC_ADDR"]
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "accord.sync"], env=self.env, stdout=out, stderr=out
            )

    async def start(self) -> None:
        self.proc = self.spawn()
        deadline = time.monotonic() + WAIT
        async with create_channel(self.addr) as channel:
            while not await check_health(channel):
                assert self.proc.poll() is None, self.log.read_text()
                assert time.monotonic() < deadline, "sync never became healthy"
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = await Receiver(new_secret()).start()
    yield made
    await made.stop()


@pytest.fixture
def sync_process(
    tmp_path: Path, database_url: str, receiver: Receiver
) -> Iterator[tuple[Sync, Path]]:
    hooks = tmp_path / "webhooks.json"
    endpoint = {"id": "app", "url": receiver.url, "rooms": ["doc:*"], "secret": receiver.secret}
    hooks.write_text(json.dumps({"endpoints": [endpoint]}))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "WEBHOOK"))},
        "DATABASE_URL": database_url,
        "SYNC_ADDR": f"127.0.0.1:{free_port()}",
        "METRICS_ADDR": "",
        **UNPROTECTED_GRPC,
        "WEBHOOKS_FILE": str(hooks),
        "WEBHOOK_TIMEOUT": "1",
        "WEBHOOK_BACKOFF_BASE": "0.05",
        "WEBHOOK_BACKOFF_MAX": "0.2",
        "WEBHOOK_POLL_INTERVAL": "0.1",
    }
    sync = Sync(env, tmp_path / "sync.log")
    yield sync, hooks
    sync.stop()


async def send(addr: str, room: str, seq: int) -> None:
    async with create_channel(addr) as channel:
        stub = SyncStub(channel)  # type: ignore[no-untyped-call]
        await stub.Push(push(room, set_change(seq, f"k{seq}", n=seq)), timeout=10)


async def test_a_sync_killed_between_commit_and_delivery_delivers_it_after_restart(
    sync_process: tuple[Sync, Path], receiver: Receiver
) -> None:
    sync, _ = sync_process
    receiver.hold = asyncio.Event()  # requests are taken in, never answered
    await sync.start()
    for seq in range(1, 6):
        await send(sync.addr, "doc:1", seq)
        await send(sync.addr, "doc:2", seq)
    deadline = time.monotonic() + WAIT
    while not any(receiver.in_flight.get(f"room:doc:{i}") for i in (1, 2)):
        assert time.monotonic() < deadline, "no webhook request arrived"
        await asyncio.sleep(0.05)
    held = dict(receiver.in_flight)
    sync.kill()  # committed, acknowledged, in flight: never answered as far as sync knows
    receiver.hold.set()
    receiver.hold = None
    restarted = time.monotonic()
    await sync.start()

    def after() -> dict[str, list[int]]:
        got: dict[str, list[int]] = {"doc:1": [], "doc:2": []}
        for r in receiver.delivered():
            if r.started > restarted:
                got[r.event["room"]] += [c["seq"] for c in r.event["changes"]]
        return got

    await receiver.wait_until(
        lambda: after() == {"doc:1": [1, 2, 3, 4, 5], "doc:2": [1, 2, 3, 4, 5]}
    )
    for key, count in held.items():
        if key.startswith("msg_") and count:
            again = [r for r in receiver.requests if r.message_id == key and r.started > restarted]
            assert again, f"the batch {key} in flight at the kill was not sent again"


async def test_accord_webhooks_lists_and_resumes_a_parked_endpoint(
    sync_process: tuple[Sync, Path], receiver: Receiver
) -> None:
    sync, hooks = sync_process
    endpoint = json.loads(hooks.read_text())["endpoints"][0]
    hooks.write_text(json.dumps({"endpoints": [{**endpoint, "max_attempts": 1}]}))
    receiver.script.append(503)
    await sync.start()
    await send(sync.addr, "doc:1", 1)
    await receiver.wait_until(lambda: len(receiver.requests) == 1)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ACCORD, "webhooks", *args, "--addr", sync.addr],
            capture_output=True,
            text=True,
            timeout=WAIT,
            env=sync.env,
            check=False,
        )

    deadline = time.monotonic() + WAIT
    while "app: parked" not in (listed := cli("list")).stdout:
        assert listed.returncode == 0, listed.stderr
        assert time.monotonic() < deadline, listed.stdout
        await asyncio.sleep(0.1)
    assert "HTTP 503" in listed.stdout and "backlog 1 changes in 1 rooms" in listed.stdout
    assert receiver.secret not in listed.stdout
    resumed = cli("resume", "app")
    assert resumed.returncode == 0 and "app resumed" in resumed.stdout, resumed.stderr
    await receiver.wait_until(lambda: receiver.seqs("doc:1") == [1])
    unknown = cli("resume", "nobody")
    assert unknown.returncode == 1 and "no webhook endpoint 'nobody'" in unknown.stderr

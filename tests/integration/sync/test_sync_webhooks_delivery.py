"""Webhooks from a running sync service to a real receiver (aiohttp on loopback), on
every store: signed, per room in seq order, retried under the same webhook-id, kept
while the receiver is down, parked and resumed through the admin API, endpoints
re-read without a restart, and (PostgreSQL) shared by two replicas."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1.sync_pb2_grpc import SyncStub, WebhooksStub
from accord.common.grpcutil import create_channel
from accord.sync.app import serve
from accord.sync.settings import Settings
from prometheus_client import REGISTRY

from tests.integration.sync.sync_helpers import push, set_change
from tests.support.suite import UNPROTECTED_GRPC
from tests.support.webhook_receiver import Receiver, new_secret

DEADLINE = 10.0
FAST = {
    "WEBHOOK_BACKOFF_BASE": "0.05",
    "WEBHOOK_BACKOFF_MAX": "0.2",
    "WEBHOOK_POLL_INTERVAL": "0.05",
    "WEBHOOK_TIMEOUT": "2",
}


class Hooks:
    """A receiver, the WEBHOOKS_FILE that points at it, and sync replicas serving it."""

    def __init__(self, tmp_path: Path, database_url: str, stack: AsyncExitStack) -> None:
        self.file = tmp_path / "webhooks.json"
        self.database_url = database_url
        self.stack = stack
        self.receiver = Receiver(new_secret())

    def write(self, *endpoints: dict[str, Any]) -> None:
        self.file.write_text(json.dumps({"endpoints": list(endpoints)}))

    def endpoint(
        self, name: str = "app", rooms: tuple[str, ...] = ("doc:*",), **more: Any
    ) -> dict[str, Any]:
        receiver = self.receiver
        return {
            "id": name,
            "url": receiver.url,
            "rooms": list(rooms),
            "secret": receiver.secret,
            **more,
        }

    async def replica(self, **env: str) -> tuple[SyncStub, WebhooksStub]:
        settings = Settings.from_env(
            {
                "SYNC_ADDR": "127.0.0.1:0",
                "METRICS_ADDR": "",
                "DATABASE_URL": self.database_url,
                "WEBHOOKS_FILE": str(self.file),
                **UNPROTECTED_GRPC,
                **FAST,
                **env,
            }
        )
        running = await self.stack.enter_async_context(serve(settings, grace=1.0))
        channel = await self.stack.enter_async_context(create_channel(f"127.0.0.1:{running.port}"))
        return SyncStub(channel), WebhooksStub(channel)  # type: ignore[no-untyped-call]


@pytest.fixture
async def hooks(tmp_path: Path, sync_database_url: str) -> AsyncIterator[Hooks]:
    async with AsyncExitStack() as stack:
        made = Hooks(tmp_path, sync_database_url, stack)
        await made.receiver.start()
        stack.push_async_callback(made.receiver.stop)
        made.write(made.endpoint())
        yield made


async def send(stub: SyncStub, room: str, *seqs: int, client_id: str = "c1") -> None:
    changes = [set_change(s, f"k{s}", n=s) for s in seqs]
    await stub.Push(push(room, *changes, client_id=client_id), timeout=DEADLINE)


async def listed(admin: WebhooksStub) -> dict[str, pb.WebhookEndpoint]:
    answer = await admin.ListWebhooks(pb.ListWebhooksRequest(), timeout=DEADLINE)
    return {e.id: e for e in answer.endpoints}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_committed_changes_reach_the_receiver_signed_per_room_in_seq_order(
    hooks: Hooks,
) -> None:
    stub, _ = await hooks.replica()
    for seq in range(1, 6):
        await send(stub, "doc:1", seq)
        await send(stub, "doc:2", seq * 2 - 1, seq * 2)
        await send(stub, "chat", seq)  # no endpoint wants it
    receiver = hooks.receiver
    await receiver.wait_until(
        lambda: len(receiver.seqs("doc:1")) == 5 and len(receiver.seqs("doc:2")) == 10
    )
    assert receiver.seqs("doc:1") == list(range(1, 6))
    assert receiver.seqs("doc:2") == list(range(1, 11))
    assert all(r.event is not None for r in receiver.requests)  # every signature verified
    assert {r.event["room"] for r in receiver.requests} == {"doc:1", "doc:2"}
    first = receiver.delivered("doc:2")[0].event["changes"][0]
    assert first == {
        "seq": 1,
        "collection": "todos",
        "key": "k1",
        "client_id": "c1",
        "client_seq": 1,
        "ts": first["ts"],
        "patch": {"set": {"n": 1}},
    }


async def test_a_receiver_failing_three_times_gets_the_batch_again_under_the_same_id(
    hooks: Hooks,
) -> None:
    stub, admin = await hooks.replica()
    receiver = hooks.receiver
    receiver.script.extend([500, 500, 500])
    await send(stub, "doc:1", 1, 2)
    await receiver.wait_until(lambda: bool(receiver.delivered()))
    assert [r.status for r in receiver.requests] == [500, 500, 500, 200]
    assert len({r.message_id for r in receiver.requests}) == 1
    assert all(
        json.loads(r.body)["changes"] == receiver.requests[0].event["changes"]
        for r in receiver.requests
    )
    assert receiver.seqs("doc:1") == [1, 2]

    async def delivered() -> bool:  # the rows go once sync has read the 2xx
        return (await listed(admin))["app"].backlog_changes == 0

    await eventually(delivered)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("never came true")
        await asyncio.sleep(0.05)


async def test_a_receiver_down_for_a_while_gets_everything_in_order_afterwards(
    hooks: Hooks,
) -> None:
    stub, admin = await hooks.replica()
    receiver = hooks.receiver
    await receiver.stop()
    for seq in range(1, 21):
        await send(stub, f"doc:{seq % 3}", seq)

    async def failing() -> bool:
        return bool((await listed(admin))["app"].last_error)

    await eventually(failing)
    shown = (await listed(admin))["app"]
    assert (shown.backlog_changes, shown.backlog_rooms, shown.parked) == (20, 3, False)
    assert shown.oldest_at > 0 and shown.url == receiver.url
    await receiver.start()
    await receiver.wait_until(lambda: sum(len(receiver.seqs(f"doc:{i}")) for i in range(3)) == 20)
    for room in range(3):
        seqs = receiver.seqs(f"doc:{room}")
        assert seqs == list(range(1, len(seqs) + 1))

    async def emptied() -> bool:  # the rows go once sync has read the 2xx
        return (await listed(admin))["app"].backlog_rows == 0

    await eventually(emptied)


async def test_after_its_last_attempt_an_endpoint_is_parked_until_resumed(hooks: Hooks) -> None:
    marker = Receiver(hooks.receiver.secret)
    await marker.start()
    hooks.stack.push_async_callback(marker.stop)
    hooks.write(
        hooks.endpoint(max_attempts=2),
        {**hooks.endpoint("marker"), "url": marker.url},
    )
    stub, admin = await hooks.replica()
    receiver = hooks.receiver
    parked_before = sample("accord_sync_webhook_deliveries_total", endpoint="app", outcome="parked")
    receiver.script.extend([500, 500])
    await send(stub, "doc:1", 1)

    async def parked() -> bool:
        return (await listed(admin))["app"].parked

    await eventually(parked)
    shown = (await listed(admin))["app"]
    assert (shown.parked_reason, shown.attempts, shown.backlog_changes) == ("HTTP 500", 2, 1)
    assert (
        sample("accord_sync_webhook_deliveries_total", endpoint="app", outcome="parked")
        == parked_before + 1
    )
    await send(stub, "doc:1", 2)
    await marker.wait_until(lambda: marker.seqs("doc:1") == [1, 2])
    assert len(receiver.requests) == 2  # parked: the marker got seq 2, the endpoint nothing
    resumed = await admin.ResumeWebhook(pb.ResumeWebhookRequest(id="app"), timeout=DEADLINE)
    assert resumed.was_parked and not resumed.endpoint.parked
    await receiver.wait_until(lambda: receiver.seqs("doc:1") == [1, 2])
    assert receiver.delivered()[0].message_id == receiver.requests[0].message_id
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await admin.ResumeWebhook(pb.ResumeWebhookRequest(id="nobody"), timeout=DEADLINE)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_endpoints_are_re_read_without_a_restart(hooks: Hooks) -> None:
    stub, admin = await hooks.replica()
    receiver = hooks.receiver
    await send(stub, "task:1", 1)  # no endpoint wants task:* yet
    await send(stub, "doc:1", 1)
    await receiver.wait_until(lambda: receiver.seqs("doc:1") == [1])
    errors = sample("accord_sync_webhook_config_reloads_total", result="error")
    hooks.file.write_text("{ not json")

    async def refused() -> bool:
        return sample("accord_sync_webhook_config_reloads_total", result="error") > errors

    await eventually(refused)
    await send(stub, "doc:1", 2)  # the endpoints in force stayed
    await receiver.wait_until(lambda: receiver.seqs("doc:1") == [1, 2])
    hooks.write(hooks.endpoint(rooms=("doc:*", "task:*")))

    async def reloaded() -> bool:
        return list((await listed(admin))["app"].rooms) == ["doc:*", "task:*"]

    await eventually(reloaded)
    await send(stub, "task:1", 2)
    await receiver.wait_until(lambda: receiver.seqs("task:1") == [2])


@pytest.mark.integration
async def test_two_replicas_share_the_deliveries_and_never_send_one_twice_at_once(
    tmp_path: Path, database_url: str
) -> None:
    async with AsyncExitStack() as stack:
        hooks = Hooks(tmp_path, database_url, stack)
        await hooks.receiver.start()
        stack.push_async_callback(hooks.receiver.stop)
        hooks.write(hooks.endpoint())
        hooks.receiver.delay = 0.02
        one, _ = await hooks.replica(WEBHOOK_CONCURRENCY="3")
        two, _ = await hooks.replica(WEBHOOK_CONCURRENCY="3")
        for seq in range(1, 16):
            await asyncio.gather(
                *(
                    send(stub, f"doc:{room}", seq, client_id=name)
                    for room in range(6)
                    for name, stub in (("a", one), ("b", two))
                    if (room + seq) % 2 == (name == "b")
                )
            )
        receiver = hooks.receiver
        expected = {f"doc:{room}": list(range(1, 16)) for room in range(6)}
        await receiver.wait_until(lambda: {r: receiver.seqs(r) for r in expected} == expected)
        assert receiver.overlaps == []

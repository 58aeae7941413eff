"""Presence events through webhooks: sent by the replica that caused them, signed, in order."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from accord.api.presence.v1 import presence_pb2 as pb
from accord.api.presence.v1.presence_pb2_grpc import PresenceStub
from accord.common.grpc_security import ServerSecurity
from accord.common.grpcutil import create_channel
from accord.common.webhooks import WebhookSettings, load_config
from accord.presence.app import serve
from accord.presence.settings import Settings

from tests.support.webhook_receiver import Receiver, new_secret

WAIT = 10.0

pytestmark = pytest.mark.integration


def peer(session_id: str, state: str = "{}") -> pb.Peer:
    return pb.Peer(
        session_id=session_id,
        user_id="u-" + session_id,
        client_id="c",
        user_json='{"name":"Ada"}',
        state_json=state,
    )


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    wanted = await Receiver(new_secret()).start()
    changes_only = await Receiver(new_secret()).start()
    try:
        yield wanted, changes_only
    finally:
        await wanted.stop()
        await changes_only.stop()


def hooks_file(tmp_path: Path, *endpoints: dict[str, Any]) -> WebhookSettings:
    path = tmp_path / "webhooks.json"
    path.write_text(json.dumps({"endpoints": list(endpoints)}))
    settings = WebhookSettings(backoff_base=0.01, backoff_max=0.05)
    return dataclasses.replace(
        settings, file=str(path), config=load_config(str(path), settings.defaults)
    )


def settings(hooks: WebhookSettings, redis_url: str | None, prefix: str = "accord") -> Settings:
    return Settings(
        presence_addr=("127.0.0.1", 0),
        grpc=ServerSecurity.unprotected(),
        metrics_addr=None,
        redis_url=redis_url,
        redis_prefix=prefix,
        heartbeat_interval=0.1,
        presence_ttl=1.0,
        sweep_interval=0.05,
        shutdown_grace=1.0,
        webhooks=hooks,
    )


def shape(event: dict[str, Any]) -> tuple[str, str, str, str | None]:
    return (event["room"], event["event"], event["peer"]["session_id"], event.get("reason"))


async def test_join_update_and_leave_reach_the_receiver_once_signed_in_order(
    tmp_path: Path, redis_url: str, redis_prefix: str, receivers: tuple[Receiver, Receiver]
) -> None:
    wanted, changes_only = receivers
    hooks = hooks_file(
        tmp_path,
        {"id": "p", "url": wanted.url, "rooms": ["doc:*"], "events": ["presence"],
         "secret": wanted.secret},
        {"id": "c", "url": changes_only.url, "rooms": ["doc:*"], "events": ["changes"],
         "secret": changes_only.secret},
    )  # fmt: skip
    config = settings(hooks, redis_url, redis_prefix)
    async with (
        serve(config) as first,
        serve(config) as second,
        create_channel(f"127.0.0.1:{first.port}") as first_channel,
        create_channel(f"127.0.0.1:{second.port}") as second_channel,
    ):
        a, b = PresenceStub(first_channel), PresenceStub(second_channel)  # type: ignore[no-untyped-call]
        # A room outside the patterns: nothing (checked by the marker below).
        await a.Join(pb.JoinRequest(room="other:1", peer=peer("s0"), edge_id="e"), timeout=WAIT)
        # Each replica sends its own events in order; across replicas the order is the
        # order they were sent in, so the test lets each arrive before the next.
        await a.Join(pb.JoinRequest(room="doc:1", peer=peer("s1"), edge_id="e"), timeout=WAIT)
        await wanted.wait_until(lambda: len(wanted.delivered()) == 1, WAIT)
        update = pb.UpdateRequest(room="doc:1", session_id="s1", state_json='{"cursor":3}')
        await b.Update(update, timeout=WAIT)
        await wanted.wait_until(lambda: len(wanted.delivered()) == 2, WAIT)
        await a.Leave(pb.LeaveRequest(room="doc:1", session_id="s1"), timeout=WAIT)
        await wanted.wait_until(lambda: len(wanted.delivered()) == 3, WAIT)
        # A session that stops heartbeating: its timeout leave comes once, from the
        # replica whose sweep expired it.
        await b.Join(pb.JoinRequest(room="doc:2", peer=peer("s2"), edge_id="e"), timeout=WAIT)
        await wanted.wait_until(lambda: len(wanted.delivered()) >= 5, WAIT)
        await b.Join(pb.JoinRequest(room="doc:9", peer=peer("marker"), edge_id="e"), timeout=WAIT)
        await wanted.wait_until(
            lambda: any(r.event["room"] == "doc:9" for r in wanted.delivered()), WAIT
        )

    assert all(r.event is not None for r in wanted.requests), wanted.summary()
    got = [shape(r.event) for r in wanted.delivered()]
    assert got == [
        ("doc:1", "join", "s1", None),
        ("doc:1", "update", "s1", None),
        ("doc:1", "leave", "s1", "unsubscribe"),
        ("doc:2", "join", "s2", None),
        ("doc:2", "leave", "s2", "timeout"),
        ("doc:9", "join", "marker", None),
    ]
    update_body = wanted.delivered()[1].event
    assert update_body == {
        "type": "presence",
        "room": "doc:1",
        "event": "update",
        "peer": {
            "session_id": "s1",
            "user_id": "u-s1",
            "client_id": "c",
            "user": {"name": "Ada"},
            "state": {"cursor": 3},
        },
    }
    ids = [r.message_id for r in wanted.requests]
    assert len(set(ids)) == len(ids) == 6
    assert changes_only.requests == []


async def test_a_failed_attempt_comes_again_with_the_same_webhook_id(
    tmp_path: Path, receivers: tuple[Receiver, Receiver]
) -> None:
    wanted, _ = receivers
    wanted.script.extend([500, 503])
    hooks = hooks_file(
        tmp_path,
        {"url": wanted.url, "rooms": ["*"], "events": ["changes", "presence"],
         "secret": wanted.secret},
    )  # fmt: skip
    async with (
        serve(settings(hooks, None)) as running,
        create_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        stub = PresenceStub(channel)  # type: ignore[no-untyped-call]
        await stub.Join(pb.JoinRequest(room="r", peer=peer("s1"), edge_id="e"), timeout=WAIT)
        await stub.Leave(pb.LeaveRequest(session_id="s1"), timeout=WAIT)
        await wanted.wait_until(lambda: len(wanted.delivered()) == 2, WAIT)

    statuses = [(r.status, r.event["event"]) for r in wanted.requests]
    assert statuses == [(500, "join"), (503, "join"), (200, "join"), (200, "leave")]
    first, second, third, leave = (r.message_id for r in wanted.requests)
    assert first == second == third != leave
    assert wanted.requests[3].event["reason"] == "disconnect"


async def test_an_endpoint_that_always_fails_drops_the_event_and_goes_on(
    tmp_path: Path, receivers: tuple[Receiver, Receiver]
) -> None:
    wanted, _ = receivers
    wanted.script.extend([500, 500])
    hooks = hooks_file(
        tmp_path,
        {"url": wanted.url, "rooms": ["*"], "events": ["presence"], "secret": wanted.secret,
         "max_attempts": 2},
    )  # fmt: skip
    async with (
        serve(settings(hooks, None)) as running,
        create_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        stub = PresenceStub(channel)  # type: ignore[no-untyped-call]
        await stub.Join(pb.JoinRequest(room="r", peer=peer("s1"), edge_id="e"), timeout=WAIT)
        await stub.Join(pb.JoinRequest(room="r", peer=peer("s2"), edge_id="e"), timeout=WAIT)
        await wanted.wait_until(lambda: len(wanted.delivered()) == 1, WAIT)

    got = [(r.status, r.event["peer"]["session_id"]) for r in wanted.requests]
    assert got == [(500, "s1"), (500, "s1"), (200, "s2")]

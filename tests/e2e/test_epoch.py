"""The room's epoch through the edge (docs/protocol.md, "Epoch"), on SQLite and on
PostgreSQL, in JSON and protobuf frames: ``subscribed`` and ``snapshot`` carry it, a
resume with the room's epoch gets the suffix, any other epoch gets a snapshot (also
on the edge's no-Pull fast path), and after ``accord epoch renew`` (sync restarted)
live and resuming clients get a snapshot of the new history."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from accord.edge import metrics as edge_metrics

from tests.support.epochs import EpochSuite, store_url  # noqa: F401 (a fixture)
from tests.support.suite import Suite
from tests.support.wsclient import Client, Replica, make_token, set_change, sync_until

pytestmark = pytest.mark.e2e

EPOCH = re.compile(r"[0-9a-f]{16}").fullmatch
WRONG = "0123456789abcdef"
ROOM = "epoch-room"


@pytest.fixture(params=["json", "binary"])
async def epoch_suite(request: pytest.FixtureRequest, store_url: str) -> AsyncIterator[Suite]:  # noqa: F811
    async with EpochSuite(store_url) as suite:
        suite.encoding = request.param
        yield suite


async def connected(suite: Suite, client_id: str) -> Client:
    client = await suite.client()
    await client.hello(make_token(f"u-{client_id}"), client_id=client_id)
    return client


async def write(suite: Suite, client_id: str, keys: list[str], seq0: int = 1) -> None:
    async with await connected(suite, client_id) as writer:
        for offset, key in enumerate(keys):
            reply = await writer.request(
                {
                    "type": "push",
                    "room": ROOM,
                    "changes": [set_change(seq0 + offset, key, by=client_id)],
                }
            )
            if reply["type"] == "error" and reply["code"] == "NOT_SUBSCRIBED":
                await writer.subscribe(ROOM)
                reply = await writer.request(
                    {"type": "push", "room": ROOM, "changes": [set_change(seq0 + offset, key)]}
                )
            assert reply["type"] == "ack", reply


async def resume(client: Client, since: int, epoch: str) -> dict[str, Any]:
    reply = await client.request(
        {"type": "subscribe", "room": ROOM, "since": since, "epoch": epoch}
    )
    assert reply["type"] == "subscribed", reply
    return reply


async def after_marker(client: Client) -> list[dict[str, Any]]:
    """The catch-up a subscribe got: what came before the presence ``sync`` that the
    edge sends after it."""
    await client.expect(lambda m: m["type"] == "presence" and m["event"] == "sync")
    got, client.inbox = client.inbox, []
    return [m for m in got if m["type"] in ("snapshot", "changes")]


async def test_subscribed_and_snapshot_carry_a_stable_epoch(epoch_suite: Suite) -> None:
    async with await connected(epoch_suite, "first") as first:
        empty = await first.subscribe(ROOM)
        assert empty["head"] == 0 and EPOCH(empty["epoch"]), empty
        for seq in (1, 2, 3):
            reply = await first.push(ROOM, [set_change(seq, f"k{seq}")])
            assert reply["type"] == "ack"
    seen = []
    for client_id in ("late-1", "late-2"):
        async with await connected(epoch_suite, client_id) as late:
            reply = await late.subscribe(ROOM)
            snapshot = await late.expect("snapshot")
            assert snapshot["epoch"] == reply["epoch"] and snapshot["seq"] == 3
            seen.append(reply["epoch"])
    assert EPOCH(seen[0]) and seen[0] == seen[1], "the same history, the same name"
    # The first client saw the room empty and followed its first changes: its since
    # stands under the epoch it was told then.
    async with await connected(epoch_suite, "first") as first:
        reply = await resume(first, 3, empty["epoch"])
        assert reply["head"] == 3
        assert await after_marker(first) == []


async def test_resume_with_the_rooms_epoch_gets_the_suffix(epoch_suite: Suite) -> None:
    await write(epoch_suite, "w", ["a", "b", "c", "d", "e"])
    async with await connected(epoch_suite, "r") as reader:
        epoch = (await reader.subscribe(ROOM))["epoch"]
        await sync_until(reader, Replica(), 5)
    await write(epoch_suite, "w", ["f", "g", "h"], seq0=6)
    async with await connected(epoch_suite, "r") as reader:
        reply = await resume(reader, 5, epoch)
        assert (reply["head"], reply["epoch"]) == (8, epoch)
        got = await after_marker(reader)
        assert [m["type"] for m in got] == ["changes"] * len(got) and got
        assert [c["seq"] for m in got for c in m["changes"]] == [6, 7, 8]


async def test_another_epoch_gets_a_snapshot_also_on_the_fast_path(epoch_suite: Suite) -> None:
    await write(epoch_suite, "w", ["a", "b", "c"])
    async with await connected(epoch_suite, "live") as live:
        # A live subscriber: the edge's room is at head 3, so a resume at 3 needs no Pull.
        epoch = (await live.subscribe(ROOM))["epoch"]
        await sync_until(live, Replica(), 3)
        for since in (1, 3):
            async with await connected(epoch_suite, f"wrong-{since}") as wrong:
                skipped = edge_metrics.CATCHUP_SKIPPED._value.get()
                reply = await resume(wrong, since, WRONG)
                assert reply["epoch"] == epoch
                got = await after_marker(wrong)
                assert [m["type"] for m in got] == ["snapshot"], got
                assert (got[0]["seq"], got[0]["epoch"], got[0]["last"]) == (3, epoch, True)
                assert {r["key"] for r in got[0]["records"]} == {"a", "b", "c"}
                assert edge_metrics.CATCHUP_SKIPPED._value.get() == skipped
        async with await connected(epoch_suite, "right") as right:
            skipped = edge_metrics.CATCHUP_SKIPPED._value.get()
            await resume(right, 3, epoch)
            assert await after_marker(right) == []
            assert edge_metrics.CATCHUP_SKIPPED._value.get() == skipped + 1, "no Pull"


async def test_after_a_renew_live_and_resuming_clients_get_a_snapshot(epoch_suite: Suite) -> None:
    await write(epoch_suite, "w", ["a", "b", "c", "d", "e"])
    async with await connected(epoch_suite, "live") as live:
        old = (await live.subscribe(ROOM))["epoch"]
        replica = Replica()
        await sync_until(live, replica, 5)
        out = await epoch_suite.extra["epochs"].renew()
        assert "epoch renewed" in out
        # The edge's stream comes back with the room's new epoch: a fresh snapshot.
        snapshot = await live.expect("snapshot", timeout=30)
        new = snapshot["epoch"]
        assert EPOCH(new) and new != old and snapshot["seq"] == 5 and snapshot["last"]
        replica.apply(snapshot)
        await write(epoch_suite, "w2", ["f"])
        await sync_until(live, replica, 6)
        assert set(replica.view("todos")) == {"a", "b", "c", "d", "e", "f"}
    async with await connected(epoch_suite, "resumer") as resumer:
        reply = await resume(resumer, 5, old)
        assert (reply["head"], reply["epoch"]) == (6, new)
        got = await after_marker(resumer)
        assert [(m["type"], m["seq"], m["epoch"]) for m in got] == [("snapshot", 6, new)]
    async with await connected(epoch_suite, "resumer") as resumer:
        await resume(resumer, 5, new)
        got = await after_marker(resumer)
        assert [c["seq"] for m in got for c in m["changes"]] == [6]


@pytest.mark.parametrize("epoch", [5, "", "x" * 65, "not ok!", None])
async def test_the_epoch_must_be_a_short_name(suite: Suite, epoch: Any) -> None:
    async with await connected(suite, "c") as client:
        message: dict[str, Any] = {"type": "subscribe", "room": ROOM, "since": 2, "epoch": epoch}
        reply = await client.request(message)
        if epoch in ("", None):  # absent or empty: not checked
            assert reply["type"] == "subscribed", reply
        else:
            assert (reply["type"], reply["code"], reply["room"]) == ("error", "BAD_REQUEST", ROOM)
            assert "epoch" in reply["message"]

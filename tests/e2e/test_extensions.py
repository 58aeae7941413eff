"""Sync extensions loaded through SYNC_EXTENSIONS in a running suite, seen by a client:
a refused change is that change's error in the ack (the others are applied and delivered),
a hook that raises is INTERNAL and one that sleeps past EXTENSION_TIMEOUT is UNAVAILABLE
for that change only, counted, and the session goes on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from accord.extensions import BeforeCommit, BeforeCommitReply
from accord.sync.metrics import EXTENSION_ERRORS

from tests.support.suite import Suite
from tests.support.wsclient import Client, make_token

pytestmark = pytest.mark.e2e

FLAKY = "tests.e2e.test_extensions:flaky"


class Flaky:
    async def before_commit(self, change: BeforeCommit) -> BeforeCommitReply:
        text = change.op.get("fields", {}).get("text")
        if text == "boom":
            raise RuntimeError("the extension broke")
        if text == "slow":
            await asyncio.sleep(3)
        return None


def flaky() -> Flaky:
    return Flaky()


def change(
    client_seq: int, key: str, collection: str = "messages", **fields: Any
) -> dict[str, Any]:
    return {
        "client_seq": client_seq,
        "collection": collection,
        "key": key,
        "op": {"kind": "set", "fields": fields},
    }


async def joined(suite: Suite, room: str, sub: str = "u-1") -> Client:
    client = await suite.client()
    await client.hello(make_token(sub), client_id=f"c-{sub}")
    await client.subscribe(room)
    return client


async def delivered_seqs(client: Client, room: str, count: int) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = []
    while len(changes) < count:
        message = await client.expect(lambda m: m["type"] == "changes" and m["room"] == room)
        changes.extend(message["changes"])
    return changes


@pytest.fixture
def moderated(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("MODERATION_WORDS", "darn,heck")
    monkeypatch.setenv("QUOTA_LIMIT", "2")
    monkeypatch.setenv("QUOTA_COLLECTIONS", "todos")
    return {
        "SYNC_EXTENSIONS": f"examples.moderation:factory,examples.quota:factory,{FLAKY}",
        "EXTENSION_TIMEOUT": "0.3",
    }


async def test_a_refused_change_is_an_error_for_that_change_only(
    make_suite: Any, moderated: dict[str, str]
) -> None:
    suite = await make_suite(sync_env=moderated)
    async with await joined(suite, "chat") as client:
        ack = await client.push(
            "chat",
            [
                change(1, "m1", text="hello"),
                change(2, "m2", text="oh heck no"),
                change(3, "m3", text="bye"),
            ],
        )
        assert ack["type"] == "ack", ack
        ok, refused, last = ack["results"]
        assert (ok["status"], ok["seq"], last["status"], last["seq"]) == (
            "applied",
            1,
            "applied",
            2,
        )
        assert refused["status"] == "error" and refused["seq"] == 0
        assert refused["error"]["code"] == "BAD_REQUEST"
        seen = await delivered_seqs(client, "chat", 2)
        assert [(c["seq"], c["key"]) for c in seen] == [(1, "m1"), (2, "m3")]


async def test_masking_rewrites_what_is_stored_and_delivered(
    make_suite: Any, moderated: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODERATION_MODE", "mask")
    suite = await make_suite(sync_env=moderated)
    async with await joined(suite, "chat") as client:
        ack = await client.push("chat", [change(1, "m1", text="darn it")])
        assert ack["results"][0]["status"] == "applied"
        (delivered,) = await delivered_seqs(client, "chat", 1)
        assert delivered["patch"] == {"set": {"text": "**** it"}}


async def test_the_quota_refuses_the_n_plus_first_record_per_user(
    make_suite: Any, moderated: dict[str, str]
) -> None:
    suite = await make_suite(sync_env=moderated)
    async with await joined(suite, "board") as ada, await joined(suite, "board", "u-2") as bob:
        ack = await ada.push(
            "board",
            [change(n, f"t{n}", "todos", title=str(n)) for n in (1, 2, 3)],
        )
        assert [r["status"] for r in ack["results"]] == ["applied", "applied", "error"]
        assert ack["results"][2]["error"]["code"] == "FORBIDDEN"
        update = await ada.push("board", [change(4, "t1", "todos", title="edited")])
        assert update["results"][0]["status"] == "applied"  # not a new record
        other = await bob.push("board", [change(1, "b1", "todos", title="bob's")])
        assert other["results"][0]["status"] == "applied"  # another user's own quota


@pytest.mark.parametrize(("text", "code"), [("boom", "INTERNAL"), ("slow", "UNAVAILABLE")])
async def test_a_failing_hook_fails_that_change_and_the_session_goes_on(
    make_suite: Any, moderated: dict[str, str], text: str, code: str
) -> None:
    suite = await make_suite(sync_env=moderated)
    counted = EXTENSION_ERRORS.labels("before_commit", FLAKY)
    before = counted._value.get()  # type: ignore[attr-defined]
    async with await joined(suite, "chat") as client:
        ack = await client.push("chat", [change(1, "m1", text=text), change(2, "m2", text="ok")])
        failed, fine = ack["results"]
        assert failed["status"] == "error" and failed["error"]["code"] == code
        assert "broke" not in failed["error"]["message"]
        assert fine["status"] == "applied" and fine["seq"] == 1
        assert (await client.request({"type": "ping"}))["type"] == "pong"
        again = await client.push("chat", [change(3, "m3", text="still here")])
        assert again["results"][0]["seq"] == 2
    assert counted._value.get() == before + 1  # type: ignore[attr-defined]

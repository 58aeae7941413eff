"""Changes refused in an ack result (``"status":"error"``) by extensions, at the edge
(``before_push``) and at sync (``before_commit``): each is dropped from the queue, rolled back
in the view and reported as a ``RejectedChange``; the push's other changes apply."""

from __future__ import annotations

from typing import Any

import pytest
from accord.client import BadRequest, RejectedChange, Unavailable

from tests.sdk.python.conftest import MakeClient, within

EDGE = {"EDGE_EXTENSIONS": "tests.support.edge_hooks:factory", "EXTENSION_TIMEOUT": "0.3"}


@pytest.fixture
def moderated(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("MODERATION_WORDS", "heck")
    return {"SYNC_EXTENSIONS": "examples.moderation:factory"}


async def test_refused_changes_are_rolled_back_and_reported(
    make_suite: Any, make_client: MakeClient, moderated: dict[str, str]
) -> None:
    suite = await make_suite(edge_env=EDGE, sync_env=moderated)
    errors: list[Exception] = []
    client = await make_client(suite.ws_url, client_id="refused", on_error=errors.append)
    room = await client.join("chat")
    await room.set("messages", "m1", text="hello")
    await room.set("messages", "m2", text="refuse")  # the edge's before_push refuses it
    await room.set("messages", "m3", text="oh heck")  # sync's before_commit refuses it
    await room.set("messages", "m4", text="slow")  # the edge's hook times out: UNAVAILABLE
    await room.set("messages", "m5", text="bye")
    assert room.get("messages", "m2") == {"text": "refuse"}, "shown optimistically"
    await within(client.wait_synced())
    assert room.pending == 0
    assert room.records("messages") == {"m1": {"text": "hello"}, "m5": {"text": "bye"}}
    rejected = {e.change.key: e for e in errors if isinstance(e, RejectedChange)}
    assert set(rejected) == {"m2", "m3", "m4"}
    edge_refusal = rejected["m2"].cause
    assert isinstance(edge_refusal, BadRequest) and edge_refusal.message == "not this text"
    assert edge_refusal.room == "chat"
    assert isinstance(rejected["m3"].cause, BadRequest)
    assert isinstance(rejected["m4"].cause, Unavailable)
    await room.set("messages", "m6", text="later")
    await within(room.wait_until(lambda: room.pending == 0))
    assert room.get("messages", "m6") == {"text": "later"}, "the room goes on"

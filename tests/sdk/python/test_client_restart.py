"""`accord dev` killed mid-session and restarted on the same port: nothing lost or doubled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from accord.client import State, Status

from tests.sdk.python.conftest import MakeClient, room_view, server_state, within
from tests.support.suite import DevProcess, wait_ready

pytestmark = pytest.mark.e2e


async def started(process: DevProcess) -> DevProcess:
    process.start()
    try:
        await wait_ready(process.http_url, timeout=60)
    except TimeoutError:
        raise AssertionError(f"accord dev did not become ready:\n{process.log()}") from None
    return process


async def test_clients_resume_after_the_edge_is_killed_and_restarted(
    dev: Callable[..., DevProcess], make_client: MakeClient, tmp_path: Path
) -> None:
    process = await started(dev())
    alice = await make_client(
        process.ws_url, "u-a", client_id="kill-a", offline_path=tmp_path / "a.db"
    )
    bob = await make_client(process.ws_url, "u-b", client_id="kill-b")
    statuses: list[Status] = []
    alice.on_status(statuses.append)
    ra = await alice.join("todo-demo")
    rb = await bob.join("todo-demo")
    for n in range(5):
        await ra.set("todos", f"t-{n}", title=f"item {n}")
    await ra.incr("todos", "t-0", "votes")
    await within(alice.wait_synced())

    process.kill_group()
    await within(alice.wait_until(lambda: alice.status.state != State.SYNCED))
    # Edits while the server is gone: queued, shown at once.
    for n in range(5, 8):
        await ra.set("todos", f"t-{n}", title=f"item {n}")
    await ra.incr("todos", "t-0", "votes", 2)
    await rb.incr("todos", "t-0", "votes", 3)
    await rb.set("todos", "t-1", done=True)
    await rb.delete("todos", "t-4")
    assert ra.get("todos", "t-7") == {"title": "item 7"}
    assert alice.status.pending == 4
    assert alice.status.state in (State.OFFLINE, State.CONNECTING)

    restarted = await started(DevProcess(process.env, process.log_path))
    try:
        await within(alice.wait_synced(), 90)
        await within(bob.wait_synced(), 90)
        head, server = await server_state(restarted.ws_url, "todo-demo")
        assert head == 6 + 4 + 3, "every change applied exactly once"
        await within(ra.wait_until(lambda: ra.seq == head))
        await within(rb.wait_until(lambda: rb.seq == head))
        assert room_view(ra) == room_view(rb) == server
        assert server["todos/t-0"]["votes"] == 6
        assert server["todos/t-1"] == {"title": "item 1", "done": True}
        assert "todos/t-4" not in server
        assert {k for k in server} == {f"todos/t-{n}" for n in range(8) if n != 4}
        assert [s.state for s in statuses].count(State.SYNCED) >= 2
    finally:
        await alice.close()
        await bob.close()
        assert restarted.stop() == 0

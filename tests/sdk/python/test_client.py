"""The SDK against the in-process suite: convergence, optimistic view, offline queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accord.client import Broadcast, RecordChange, RejectedChange, State, Status, Unsupported
from accord.client.replica import PendingChange
from accord.client.store import SqliteStore

from tests.sdk.python.conftest import MakeClient, room_view, server_state, within
from tests.support.suite import Suite
from tests.support.wsclient import Client as RawClient
from tests.support.wsclient import make_token


async def test_two_clients_converge(suite: Suite, make_client: MakeClient) -> None:
    alice = await make_client(suite.ws_url, "u-a", client_id="alice")
    bob = await make_client(suite.ws_url, "u-b", client_id="bob")
    ra = await alice.join("todo-demo")
    rb = await bob.join("todo-demo")
    await ra.set("todos", "t-1", title="milk", done=False)
    await ra.incr("todos", "t-1", "votes", 2)
    await rb.incr("todos", "t-1", "votes", 3)
    await rb.set("todos", "t-2", title="bread")
    await rb.delete("todos", "t-2")
    await ra.set("todos", "t-3", title="eggs")
    await within(alice.wait_synced())
    await within(bob.wait_synced())
    head, server = await server_state(suite.ws_url, "todo-demo")
    assert head == 6
    await within(ra.wait_until(lambda: ra.seq == head))
    await within(rb.wait_until(lambda: rb.seq == head))
    assert room_view(ra) == room_view(rb) == server
    assert server["todos/t-1"] == {"title": "milk", "done": False, "votes": 5}
    assert "todos/t-2" not in server


async def test_optimistic_view_then_equal_to_the_server(
    suite: Suite, make_client: MakeClient
) -> None:
    client = await make_client(suite.ws_url, client_id="opt")
    room = await client.join("room-opt")
    statuses: list[Status] = []
    client.on_status(statuses.append)
    await within(client.wait_synced())
    await client.go_offline()
    assert client.status.state == State.OFFLINE

    await room.set("todos", "t-1", title="milk")
    await room.incr("todos", "t-1", "votes")
    # Shown at once, before the server has seen anything.
    assert room.get("todos", "t-1") == {"title": "milk", "votes": 1}
    assert room.pending == 2
    assert client.status == Status(State.OFFLINE, 2)
    assert str(client.status) == "offline (pending 2)"

    client.go_online()
    await within(client.wait_synced())
    assert room.pending == 0
    head, server = await server_state(suite.ws_url, "room-opt")
    assert head == 2 and room.seq == 2
    assert room_view(room) == server == {"todos/t-1": {"title": "milk", "votes": 1}}
    assert any(s.state == State.SYNCING for s in statuses)
    assert statuses[-1] == Status(State.SYNCED, 0)


async def test_change_events_callbacks_and_iterator(suite: Suite, make_client: MakeClient) -> None:
    alice = await make_client(suite.ws_url, "u-a", client_id="ev-a")
    bob = await make_client(suite.ws_url, "u-b", client_id="ev-b")
    ra = await alice.join("room-ev")
    rb = await bob.join("room-ev")
    seen: list[RecordChange] = []
    rb.on_change(seen.append)
    iterator = rb.changes()
    await ra.set("todos", "t", title="x")
    first = await within(anext(iterator))
    assert (first.key, first.value, first.origin) == ("t", {"title": "x"}, "remote")
    await rb.set("todos", "t", done=True)
    local = await within(anext(iterator))
    assert (local.origin, local.value) == ("local", {"title": "x", "done": True})
    await iterator.aclose()
    assert [e.origin for e in seen][:2] == ["remote", "local"]


async def test_offline_edits_from_two_clients_converge(
    suite: Suite, make_client: MakeClient
) -> None:
    alice = await make_client(suite.ws_url, "u-a", client_id="off-a")
    bob = await make_client(suite.ws_url, "u-b", client_id="off-b")
    ra = await alice.join("room-off")
    rb = await bob.join("room-off")
    await ra.set("todos", "t", title="start", votes=0)
    await within(rb.wait_until(lambda: rb.get("todos", "t") is not None))
    await alice.go_offline()
    await bob.go_offline()

    await ra.set("todos", "t", title="alice's")
    await ra.incr("todos", "t", "votes", 2)
    await ra.set("todos", "a-only", n=1)
    await rb.set("todos", "t", done=True)
    await rb.incr("todos", "t", "votes", 5)
    await rb.set("todos", "t", title="bob's")
    await rb.delete("todos", "a-only")
    assert ra.get("todos", "t") == {"title": "alice's", "votes": 2}
    assert rb.get("todos", "t") == {"title": "bob's", "votes": 5, "done": True}

    alice.go_online()
    bob.go_online()
    await within(alice.wait_synced())
    await within(bob.wait_synced())
    head, server = await server_state(suite.ws_url, "room-off")
    assert head == 8, "every queued change applied exactly once"
    await within(ra.wait_until(lambda: ra.seq == head))
    await within(rb.wait_until(lambda: rb.seq == head))
    assert room_view(ra) == room_view(rb) == server
    assert server["todos/t"]["votes"] == 7, "concurrent increments all count"
    assert server["todos/t"]["done"] is True


async def test_offline_queue_survives_a_restart(
    suite: Suite, make_client: MakeClient, tmp_path: Path
) -> None:
    path = tmp_path / "offline.db"
    first = await make_client(suite.ws_url, client_id="disk", offline_path=path)
    room = await first.join("room-disk")
    await room.set("todos", "t-0", n=0)
    await within(first.wait_synced())
    await first.go_offline()
    seqs = [await room.set("todos", f"t-{n}", n=n) for n in range(1, 4)]
    await room.incr("todos", "t-0", "n", 10)
    await first.close()
    assert (await server_state(suite.ws_url, "room-disk"))[0] == 1, (
        "nothing was pushed while offline"
    )

    # A new process: same file, no client_id given (the store remembers it).
    second = await make_client(suite.ws_url, offline_path=path, wait=False)
    assert second.client_id == "disk"
    room = await second.join("room-disk")
    assert room.seq == 1, "confirmed state came back from disk: resume with since"
    assert room.pending == 4
    assert room.get("todos", "t-3") == {"n": 3}
    await within(second.wait_synced())
    head, server = await server_state(suite.ws_url, "room-disk")
    assert head == 5
    assert (
        server
        == room_view(room)
        == {f"todos/t-{n}": {"n": n + (10 if n == 0 else 0)} for n in range(4)}
    )
    await second.close()

    # The changes carried their original client_seq: pushing again is a duplicate.
    async with await RawClient.connect(suite.ws_url) as raw:
        await raw.hello(make_token("u-1"), client_id="disk")
        await raw.subscribe("room-disk")
        again = await raw.push(
            "room-disk",
            [
                {
                    "client_seq": seqs[0],
                    "collection": "todos",
                    "key": "t-1",
                    "op": {"kind": "set", "fields": {"n": 1}},
                }
            ],
        )
        assert again["results"][0]["status"] == "duplicate"
        assert again["results"][0]["seq"] == 2


async def test_a_change_stored_before_a_crash_is_not_applied_twice(
    suite: Suite, make_client: MakeClient, tmp_path: Path
) -> None:
    """The ack was lost: the server holds the change, the queue still has it."""
    path = tmp_path / "crash.db"
    store = SqliteStore(path)
    await store.open()
    client_id, client_seq = await store.identity("crashy", "crashy")
    change = PendingChange(client_seq, "todos", "t", {"kind": "incr", "field": "n", "by": 1}, ts=0)
    await store.add_pending("room-crash", change)
    await store.close()
    async with await RawClient.connect(suite.ws_url) as raw:
        await raw.hello(make_token("u-1"), client_id=client_id)
        await raw.subscribe("room-crash")
        ack = await raw.push("room-crash", [{k: v for k, v in change.wire().items() if k != "ts"}])
        assert ack["results"][0]["status"] == "applied"

    client = await make_client(suite.ws_url, offline_path=path)
    room = await client.join("room-crash")
    await within(client.wait_synced())
    head, server = await server_state(suite.ws_url, "room-crash")
    assert head == 1
    assert server == room_view(room) == {"todos/t": {"n": 1}}


async def test_presence_and_broadcast(suite: Suite, make_client: MakeClient) -> None:
    alice = await make_client(suite.ws_url, "u-a", client_id="p-a", user={"name": "Ada"})
    bob = await make_client(suite.ws_url, "u-b", client_id="p-b")
    ra = await alice.join("room-p", presence={"status": "online"}, users=True)
    events: list[tuple[str, Any]] = []
    ra.on_presence(lambda event, peer: events.append((event, peer)))
    received: list[Broadcast] = []
    ra.on_broadcast(received.append)
    # Alice's presence sync (listing herself) first: Bob then arrives as a join event.
    await within(ra.wait_until(lambda: len(ra.peers) == 1))
    rb = await bob.join("room-p", presence={"status": "away"})
    await within(ra.wait_until(lambda: len(ra.peers) == 2))
    assert {p.user_id: p.state for p in ra.peers.values()} == {
        "u-a": {"status": "online"},
        "u-b": {"status": "away"},
    }
    assert [p.user for p in ra.peers.values() if p.user_id == "u-a"] == [{"name": "Ada"}]
    assert ra.presence_count == 2
    page = await ra.list_presence(limit=10)
    assert (page.count, page.users, page.next_cursor) == (2, 2, None)
    assert {p.user_id for p in page.peers} == {"u-a", "u-b"}

    await rb.set_presence({"status": "typing"})
    await within(
        ra.wait_until(lambda: any(p.state == {"status": "typing"} for p in ra.peers.values()))
    )
    assert await rb.broadcast({"cursor": [1, 2]})
    assert await rb.broadcast({"cursor": [3, 4]}, channel="cursor")
    await within(ra.wait_until(lambda: len(received) == 2))
    assert received[0] == Broadcast({"cursor": [1, 2]}, bob.welcome["session_id"], None)
    assert (received[1].data, received[1].channel) == ({"cursor": [3, 4]}, "cursor")

    await rb.leave()
    await within(
        ra.wait_until(lambda: len(ra.peers) == 1 and any(e == "user_offline" for e, _ in events))
    )
    kinds = [e for e, _ in events if e != "sync"]
    assert kinds.count("join") == 1 and kinds.count("update") == 1 and kinds.count("leave") == 1
    assert "user_online" in kinds and "user_offline" in kinds
    assert "room-p" not in bob.rooms


async def test_set_and_list_ops_apply_or_are_refused_cleanly(
    suite: Suite, make_client: MakeClient
) -> None:
    """Edges without set/list ops answer UNSUPPORTED: the change is dropped and reported."""
    errors: list[Exception] = []
    client = await make_client(suite.ws_url, client_id="sets", on_error=errors.append)
    room = await client.join("room-sets")
    await room.set("todos", "t", title="x")
    await room.add("todos", "t", "tags", "b", "a")
    ids = await room.insert("todos", "t", "steps", "one", "two")
    assert room.get("todos", "t") == {
        "title": "x",
        "tags": ["a", "b"],
        "steps": [{"id": ids[0], "value": "one"}, {"id": ids[1], "value": "two"}],
    }
    await within(client.wait_synced())
    head, server = await server_state(suite.ws_url, "room-sets")
    assert room_view(room) == server
    refused = [e for e in errors if isinstance(e, RejectedChange)]
    if refused:
        assert all(isinstance(e.cause, Unsupported) for e in refused)
        assert server == {"todos/t": {"title": "x"}} and head == 1
    else:
        assert server["todos/t"]["tags"] == ["a", "b"] and head == 3

"""The server API (/api/v1) against the in-process suite: embedded defaults and PostgreSQL +
Redis. Every answer is checked against the edge's OpenAPI document (tests/support/apiclient)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.apiclient import ApiClient
from tests.support.suite import UNPROTECTED_GRPC, Suite, start_in_process
from tests.support.wsclient import Client, make_token, set_change

pytestmark = pytest.mark.e2e

BILLING = make_token("billing", rooms=["todo-*"])


def push_body(*changes: dict[str, Any], client_id: str = "billing-svc") -> dict[str, Any]:
    return {"client_id": client_id, "changes": list(changes)}


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where the suite keeps its data: SQLite and in-process buses, or PostgreSQL + Redis."""
    if request.param == "embedded":
        return {"database_url": f"sqlite:///{tmp_path}/accord.db"}
    return {
        "database_url": request.getfixturevalue("database_url"),
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_prefix": request.getfixturevalue("redis_prefix"),
    }


@pytest.fixture
async def both(backend: dict[str, Any]) -> AsyncIterator[tuple[Suite, ApiClient]]:
    async with AsyncExitStack() as stack:
        suite = await start_in_process(stack, **backend)
        api = await ApiClient.open(suite.http_url)
        stack.push_async_callback(api.close)
        yield suite, api


async def subscriber(suite: Suite, room: str, **kwargs: Any) -> Client:
    client = await suite.client()
    await client.hello(make_token("u-ws", rooms=["todo-*"]), client_id="ws-1")
    await client.subscribe(room, **kwargs)
    return client


async def test_a_backend_push_reaches_a_subscriber_with_the_next_seq_and_a_retry_is_a_duplicate(
    both: tuple[Suite, ApiClient],
) -> None:
    suite, api = both
    async with await subscriber(suite, "todo-a") as ws:
        ack = await ws.push("todo-a", [set_change(1, "t-0", title="from ws")])
        assert ack["results"][0]["seq"] == 1
        body = push_body(set_change(1, "t-1", title="milk", done=False))
        answer = await api.call("POST", "/api/v1/rooms/todo-a/changes", BILLING, body)
        assert answer.status == 200
        (result,) = answer.body["results"]
        # No ts was sent: the server stamped one, and says so as an ack does.
        assert isinstance(result.pop("ts"), int)
        assert answer.body == {
            "room": "todo-a",
            "results": [{"client_seq": 1, "seq": 2, "status": "applied"}],
        }
        delivered = await ws.expect(
            lambda m: m.get("type") == "changes" and m["changes"][-1]["seq"] == 2
        )
        change = delivered["changes"][-1]
        assert (change["client_id"], change["client_seq"], change["key"]) == (
            "billing-svc",
            1,
            "t-1",
        )
        assert change["patch"] == {"set": {"title": "milk", "done": False}}

        again = await api.call("POST", "/api/v1/rooms/todo-a/changes", BILLING, body)
        assert again.body["results"] == [{"client_seq": 1, "seq": 2, "status": "duplicate"}]
        # The retry stored nothing: the next change still gets seq 3, as a ping/pong marker.
        third = push_body(set_change(2, "t-1", title="oat milk"))
        answer = await api.call("POST", "/api/v1/rooms/todo-a/changes", BILLING, third)
        assert answer.body["results"][0]["seq"] == 3
        nxt = await ws.expect(lambda m: m.get("type") == "changes" and m["changes"][0]["seq"] > 2)
        assert [c["seq"] for c in nxt["changes"]] == [3]


async def test_conflicts_come_back_as_in_an_ack(both: tuple[Suite, ApiClient]) -> None:
    _, api = both
    now = int(time.time() * 1_000_000)
    newer = {**set_change(1, "t-1", title="new"), "ts": now}
    await api.call("POST", "/api/v1/rooms/todo-c/changes", BILLING, push_body(newer))
    older = {**set_change(1, "t-1", title="old"), "ts": now - 5_000_000}
    answer = await api.call(
        "POST", "/api/v1/rooms/todo-c/changes", BILLING, push_body(older, client_id="other")
    )
    (result,) = answer.body["results"]
    assert result["status"] == "applied"
    assert result["conflicts"] == [
        {"field": "title", "winner": {"ts": now, "client_id": "billing-svc"}}
    ]


async def test_records_record_and_changes_read_what_was_pushed(
    both: tuple[Suite, ApiClient],
) -> None:
    _, api = both
    changes = [set_change(i, f"t-{i}", n=i) for i in range(1, 6)]
    changes.append(
        {
            "client_seq": 6,
            "collection": "notes",
            "key": "n-1",
            "op": {"kind": "set", "fields": {"x": 1}},
        }
    )
    changes.append({"client_seq": 7, "collection": "todos", "key": "t-2", "op": {"kind": "delete"}})
    await api.call("POST", "/api/v1/rooms/todo-r/changes", BILLING, push_body(*changes))

    page = await api.call("GET", "/api/v1/rooms/todo-r/records", BILLING)
    assert page.body["seq"] == 7 and page.body["next"] is None
    assert [(r["collection"], r["key"]) for r in page.body["records"]] == [
        ("notes", "n-1"),
        ("todos", "t-1"),
        ("todos", "t-3"),
        ("todos", "t-4"),
        ("todos", "t-5"),
    ]
    only = await api.call(
        "GET", "/api/v1/rooms/todo-r/records", BILLING, params={"collection": "todos", "limit": 2}
    )
    assert [r["key"] for r in only.body["records"]] == ["t-1", "t-3"]
    rest = await api.call(
        "GET",
        "/api/v1/rooms/todo-r/records",
        BILLING,
        params={"collection": "todos", "after": only.body["next"]},
    )
    assert [r["key"] for r in rest.body["records"]] == ["t-4", "t-5"]
    assert rest.body["next"] is None
    mixed = await api.call(
        "GET", "/api/v1/rooms/todo-r/records", BILLING, params={"after": only.body["next"]}
    )
    assert (mixed.status, mixed.body["code"]) == (400, "BAD_REQUEST")

    one = await api.call("GET", "/api/v1/rooms/todo-r/records/todos/t-3", BILLING)
    assert one.body == {"collection": "todos", "key": "t-3", "value": {"n": 3}, "seq": 3}
    for missing in ("todos/t-2", "todos/nope"):
        gone = await api.call("GET", f"/api/v1/rooms/todo-r/records/{missing}", BILLING)
        assert (gone.status, gone.body["code"]) == (404, "NOT_FOUND")

    log = await api.call(
        "GET", "/api/v1/rooms/todo-r/changes", BILLING, params={"since": 2, "limit": 3}
    )
    assert log.body["head"] == 7
    assert [c["seq"] for c in log.body["changes"]] == [3, 4, 5]
    assert log.body["changes"][0] == {
        "seq": 3,
        "collection": "todos",
        "key": "t-3",
        "client_id": "billing-svc",
        "client_seq": 3,
        "ts": log.body["changes"][0]["ts"],
        "patch": {"set": {"n": 3}},
    }
    tail = await api.call("GET", "/api/v1/rooms/todo-r/changes", BILLING, params={"since": 7})
    assert tail.body == {"room": "todo-r", "head": 7, "changes": []}


async def test_presence_lists_peers_and_a_server_broadcast_arrives_from_server(
    both: tuple[Suite, ApiClient],
) -> None:
    suite, api = both
    async with await subscriber(suite, "todo-p", presence={"status": "online"}) as ws:
        await ws.expect(lambda m: m.get("type") == "presence" and m.get("event") == "sync")
        page = await api.call("GET", "/api/v1/rooms/todo-p/presence", BILLING)
        assert page.body["count"] == 1 and page.body["users"] == 1
        assert page.body["next_cursor"] is None
        (peer,) = page.body["peers"]
        assert (peer["user_id"], peer["client_id"], peer["state"]) == (
            "u-ws",
            "ws-1",
            {"status": "online"},
        )
        sent = await api.call(
            "POST",
            "/api/v1/rooms/todo-p/broadcast",
            BILLING,
            {"data": {"kind": "invoice", "id": 7}, "channel": "billing"},
        )
        assert sent.status == 202
        message = await ws.expect("broadcast")
        assert message == {
            "type": "broadcast",
            "room": "todo-p",
            "from": "server",
            "channel": "billing",
            "data": {"kind": "invoice", "id": 7},
        }


async def test_records_paging_stays_at_one_seq_while_writes_go_on(
    both: tuple[Suite, ApiClient],
) -> None:
    _, api = both
    rng = random.Random(7)
    keys = [f"t-{i:02}" for i in range(25)]
    history: list[tuple[int, str, dict[str, Any] | None]] = []
    client_seq = 0

    async def write(count: int) -> None:
        nonlocal client_seq
        for _ in range(count):
            client_seq += 1
            key = rng.choice(keys)
            if rng.random() < 0.2:
                change = {
                    "client_seq": client_seq,
                    "collection": "todos",
                    "key": key,
                    "op": {"kind": "delete"},
                }
                value = None
            else:
                value = {"n": client_seq}
                change = set_change(client_seq, key, n=client_seq)
            answer = await api.call(
                "POST", "/api/v1/rooms/todo-s/changes", BILLING, push_body(change)
            )
            history.append((answer.body["results"][0]["seq"], key, value))

    def state_at(seq: int) -> list[tuple[str, dict[str, Any]]]:
        state: dict[str, dict[str, Any] | None] = {}
        for at, key, value in history:
            if at <= seq:
                state[key] = value
        return sorted((k, v) for k, v in state.items() if v is not None)

    await write(40)
    writer = asyncio.create_task(write(60))
    seen: list[tuple[str, dict[str, Any]]] = []
    params: dict[str, Any] = {"limit": 3}
    seqs = set()
    while True:
        page = await api.call("GET", "/api/v1/rooms/todo-s/records", BILLING, params=params)
        assert page.status == 200
        seqs.add(page.body["seq"])
        seen.extend((r["key"], r["value"]) for r in page.body["records"])
        await asyncio.sleep(0.01)
        if page.body["next"] is None:
            break
        params["after"] = page.body["next"]
    await writer
    (seq,) = seqs
    assert seq >= 40
    assert seen == state_at(seq)
    assert history[-1][0] > seq  # writes went on while it paged


async def test_a_bad_request_changes_nothing(both: tuple[Suite, ApiClient]) -> None:
    _, api = both
    path = "/api/v1/rooms/todo-b/changes"
    await api.call("POST", path, BILLING, push_body(set_change(1, "t-1", n=1)))
    bad_bodies: list[Any] = [
        push_body(set_change(2, "t-1", n=2), {"client_seq": 3, "collection": "todos"}),
        push_body(set_change(3, "t-1", n=2), set_change(3, "t-2", n=3)),  # client_seq repeats
        {"changes": [set_change(4, "t-1", n=4)]},
        {"client_id": "bad id!", "changes": [set_change(4, "t-1", n=4)]},
        {"client_id": "x", "changes": []},
        [1, 2],
    ]
    for body in bad_bodies:
        answer = await api.call("POST", path, BILLING, body)
        assert (answer.status, answer.body["code"]) == (400, "BAD_REQUEST"), body
    for raw in (b"{not json", b""):
        answer = await api.call("POST", path, BILLING, raw=raw)
        assert (answer.status, answer.body["code"]) == (400, "BAD_REQUEST")
    unknown = push_body({**set_change(5, "t-1"), "op": {"kind": "explode"}})
    answer = await api.call("POST", path, BILLING, unknown)
    assert (answer.status, answer.body["code"]) == (400, "UNSUPPORTED")
    for params in ({"since": "-1"}, {"since": "x"}, {"limit": "0"}, {"limit": "1001"}):
        answer = await api.call("GET", path, BILLING, params=params)
        assert (answer.status, answer.body["code"]) == (400, "BAD_REQUEST"), params
    ahead = await api.call("GET", path, BILLING, params={"since": 99})
    assert (ahead.status, ahead.body["code"]) == (400, "BAD_REQUEST")
    bad_room = await api.call("GET", "/api/v1/rooms/bad%20room/records", BILLING)
    assert (bad_room.status, bad_room.body["code"]) == (400, "BAD_REQUEST")
    cursor = await api.call(
        "GET", "/api/v1/rooms/todo-b/records", BILLING, params={"after": "garbage"}
    )
    assert (cursor.status, cursor.body["code"]) == (400, "BAD_REQUEST")
    no_data = await api.call("POST", "/api/v1/rooms/todo-b/broadcast", BILLING, {"channel": "c"})
    assert (no_data.status, no_data.body["code"]) == (400, "BAD_REQUEST")
    log = await api.call("GET", path, BILLING)
    assert log.body["head"] == 1 and len(log.body["changes"]) == 1


async def test_credentials_and_grants(both: tuple[Suite, ApiClient]) -> None:
    _, api = both
    path = "/api/v1/rooms/todo-g/records"
    for token in (None, "not-a-jwt", "ak_unknown", make_token(ttl=-10)):
        answer = await api.call("GET", path, token)
        assert answer.status == 401, token
        assert answer.body["code"] in ("UNAUTHENTICATED", "TOKEN_EXPIRED")
    basic = await api.call("GET", path, None, headers={"Authorization": "Basic dTpw"})
    assert basic.status == 401
    reader = make_token("reader", rooms=["todo-*"], write=[])
    assert (await api.call("GET", path, reader)).status == 200
    for method, route, body in (
        ("POST", "/api/v1/rooms/todo-g/changes", push_body(set_change(1, "t", n=1))),
        ("POST", "/api/v1/rooms/todo-g/broadcast", {"data": 1}),
    ):
        denied = await api.call(method, route, reader, body)
        assert (denied.status, denied.body["code"]) == (403, "FORBIDDEN")
    other_room = await api.call("GET", "/api/v1/rooms/chat-1/records", reader)
    assert (other_room.status, other_room.body["code"]) == (403, "FORBIDDEN")
    nothing_written = await api.call("GET", "/api/v1/rooms/todo-g/changes", reader)
    assert nothing_written.body["head"] == 0


async def test_since_older_than_the_retained_log_is_gone(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        suite = await start_in_process(
            stack,
            database_url=f"sqlite:///{tmp_path}/accord.db",
            sync_env={"LOG_RETENTION": "5"},
        )
        api = await ApiClient.open(suite.http_url)
        stack.push_async_callback(api.close)
        for i in range(1, 21):
            change = set_change(i, "a" if i % 2 else "t", n=i)
            await api.call("POST", "/api/v1/rooms/todo-o/changes", BILLING, push_body(change))
        gone = await api.call("GET", "/api/v1/rooms/todo-o/changes", BILLING, params={"since": 1})
        assert (gone.status, gone.body["code"]) == (410, "GONE")
        recent = await api.call(
            "GET", "/api/v1/rooms/todo-o/changes", BILLING, params={"since": 18}
        )
        assert [c["seq"] for c in recent.body["changes"]] == [19, 20]
        # A records listing whose record changed after its seq is rebuilt from the record's
        # base at the floor while its seq is at or above the floor...
        first = await api.call("GET", "/api/v1/rooms/todo-o/records", BILLING, params={"limit": 1})
        assert (first.body["seq"], first.body["next"] is not None) == (20, True)
        for client_seq in (21, 22):
            change = set_change(client_seq, "t", n=0)
            await api.call("POST", "/api/v1/rooms/todo-o/changes", BILLING, push_body(change))
        params = {"limit": 1, "after": first.body["next"]}
        later = await api.call("GET", "/api/v1/rooms/todo-o/records", BILLING, params=params)
        assert later.status == 200
        assert [(r["key"], r["value"]) for r in later.body["records"]] == [("t", {"n": 20})]
        # ... and answers 410 once compaction overtook the listing (its seq below the floor).
        for client_seq in range(23, 30):
            change = set_change(client_seq, "t", n=0)
            await api.call("POST", "/api/v1/rooms/todo-o/changes", BILLING, push_body(change))
        overtaken = await api.call("GET", "/api/v1/rooms/todo-o/records", BILLING, params=params)
        assert (overtaken.status, overtaken.body["code"]) == (410, "GONE")
        assert "restart paging" in overtaken.body["message"]


async def test_limits_size_batch_rate_and_origin(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        suite = await start_in_process(
            stack,
            database_url=f"sqlite:///{tmp_path}/accord.db",
            edge_env={
                "MAX_MESSAGE_SIZE": "4096",
                "API_RATE_LIMIT": "0.2",
                "API_RATE_BURST": "4",
                "ALLOWED_ORIGINS": "https://app.example.com",
            },
        )
        api = await ApiClient.open(suite.http_url)
        stack.push_async_callback(api.close)
        path = "/api/v1/rooms/todo-l/changes"
        big = push_body(set_change(1, "t-1", text="x" * 5000))
        answer = await api.call("POST", path, BILLING, big)
        assert (answer.status, answer.body["code"]) == (413, "TOO_LARGE")
        origin = await api.call(
            "GET", path, make_token("o"), headers={"Origin": "https://evil.example.com"}
        )
        assert (origin.status, origin.body["code"]) == (403, "FORBIDDEN")
        fine = await api.call(
            "GET", path, make_token("o"), headers={"Origin": "https://app.example.com"}
        )
        assert fine.status == 200
        batch = make_token("batcher")
        many = push_body(*[set_change(i, f"k{i}") for i in range(1, 1002)])
        # A small message limit refuses it as too large anyway; the batch limit is its own.
        answer = await api.call("POST", path, batch, many)
        assert (answer.status, answer.body["code"]) == (413, "TOO_LARGE")
        limited = make_token("limited")
        statuses = [(await api.call("GET", path, limited)).status for _ in range(4)]
        assert statuses == [200] * 4
        refused = await api.call("GET", path, limited)
        assert (refused.status, refused.body["code"]) == (429, "RATE_LIMITED")
        assert int(refused.headers["Retry-After"]) >= 1
        # Another credential has its own budget.
        assert (await api.call("GET", path, make_token("someone-else"))).status == 200
        log = await api.call("GET", path, make_token("reader"))
        assert log.body["head"] == 0


async def test_the_batch_limit_is_a_pushes(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        suite = await start_in_process(stack, database_url=f"sqlite:///{tmp_path}/accord.db")
        api = await ApiClient.open(suite.http_url)
        stack.push_async_callback(api.close)
        path = "/api/v1/rooms/todo-m/changes"
        many = push_body(*[set_change(i, f"k{i}") for i in range(1, 1002)])
        answer = await api.call("POST", path, BILLING, many)
        assert (answer.status, answer.body["code"]) == (413, "TOO_LARGE")
        assert "1000" in answer.body["message"]
        exactly = push_body(*[set_change(i, f"k{i}") for i in range(1, 1001)])
        answer = await api.call("POST", path, BILLING, exactly)
        assert answer.status == 200 and answer.body["results"][-1]["seq"] == 1000


async def test_sync_unavailable_is_503(tmp_path: Path, unused_port: int) -> None:
    from accord.edge.app import serve
    from accord.edge.settings import Settings

    from tests.support.wsclient import SECRET

    settings = Settings.from_env(
        {
            "WS_ADDR": "127.0.0.1:0",
            "SYNC_ADDR": f"127.0.0.1:{unused_port}",
            "PRESENCE_ADDR": f"127.0.0.1:{unused_port}",
            "JWT_SECRET": SECRET,
            "RPC_TIMEOUT": "1",
            **UNPROTECTED_GRPC,
        }
    )
    async with serve(settings) as running:
        api = await ApiClient.open(f"http://127.0.0.1:{running.port}")
        try:
            for method, route, body in (
                ("POST", "/api/v1/rooms/todo-u/changes", push_body(set_change(1, "t", n=1))),
                ("GET", "/api/v1/rooms/todo-u/records", None),
                ("GET", "/api/v1/rooms/todo-u/changes", None),
                ("GET", "/api/v1/rooms/todo-u/presence", None),
            ):
                answer = await api.call(method, route, BILLING, body)
                assert (answer.status, answer.body["code"]) == (503, "UNAVAILABLE"), route
        finally:
            await api.close()

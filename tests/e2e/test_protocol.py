"""The client protocol of docs/protocol.md, driven over /ws against the embedded suite.

``any_suite`` tests run over JSON and binary WebSocket frames and the HTTP fallback
(SSE, docs/transport.md); ``OVER_BOTH`` / ``MAKE_OVER_BOTH`` run a JSON test over the
WebSocket and the fallback. The rest is inherently WebSocket: binary frames, control
frames, the hello timeout after an upgrade (the fallback's hello is in its first
request); tests/e2e/test_sse.py covers their fallback equivalents."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import jwt
import pytest
from accord.api.edge.v1 import frames_pb2 as pb
from accord.edge import metrics as edge_metrics

from tests.support.suite import MAKE_OVER_BOTH, OVER_BOTH, UNPROTECTED_GRPC, Suite
from tests.support.wsclient import Client, Replica, make_token, set_change, sync_until

pytestmark = pytest.mark.e2e


async def connected(
    suite: Suite, sub: str = "u-1", client_id: str = "c-1", **token_kw: Any
) -> Client:
    client = await suite.client()
    await client.hello(make_token(sub, **token_kw), client_id=client_id)
    return client


async def test_hello_welcome_describes_the_server(any_suite: Suite) -> None:
    async with await any_suite.client() as client:
        welcome = await client.hello(
            make_token("u-42"), client_id="replica-7f3a", user={"name": "Ada"}
        )
        assert welcome["user_id"] == "u-42"
        assert welcome["session_id"].startswith("s-")
        server = welcome["server"]
        assert server["protocol"] == 1
        assert server["heartbeat_ms"] == 30000
        assert server["max_message_bytes"] == 1048576
        assert {"set", "delete", "incr"} <= set(server["features"])


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ({"type": "ping", "id": 1}, "UNAUTHENTICATED"),
        ({"type": "hello", "id": 1, "client_id": "c-1", "token": "not-a-jwt"}, "UNAUTHENTICATED"),
        ({"type": "hello", "id": 1, "client_id": "bad id!", "token": make_token()}, "BAD_REQUEST"),
        ({"type": "hello", "id": 1, "client_id": "c-1"}, "UNAUTHENTICATED"),
        (
            {"type": "hello", "id": 1, "client_id": "c-1", "token": make_token(ttl=-10)},
            "TOKEN_EXPIRED",
        ),
        (
            {
                "type": "hello",
                "id": 1,
                "client_id": "c-1",
                "token": make_token(secret="another-secret-0123456789-0123456789"),
            },
            "UNAUTHENTICATED",
        ),
    ],
)
@OVER_BOTH
async def test_failed_hello_gets_error_then_4001(
    suite: Suite, first: dict[str, Any], code: str
) -> None:
    async with await suite.client() as client:
        await client.send(first)
        error = await client.expect("error")
        assert error["code"] == code
        assert error["id"] == 1
        assert await client.closed() == 4001


@OVER_BOTH
async def test_alg_none_token_is_refused(suite: Suite) -> None:
    token = jwt.encode({"sub": "u-1", "exp": int(time.time()) + 60}, key=None, algorithm="none")
    async with await suite.client() as client:
        await client.send({"type": "hello", "id": 1, "client_id": "c-1", "token": token})
        assert (await client.expect("error"))["code"] == "UNAUTHENTICATED"
        assert await client.closed() == 4001


@OVER_BOTH
async def test_token_without_exp_is_refused(suite: Suite) -> None:
    from tests.support.wsclient import SECRET

    token = jwt.encode({"sub": "u-1"}, SECRET, algorithm="HS256")
    async with await suite.client() as client:
        await client.send({"type": "hello", "id": 1, "client_id": "c-1", "token": token})
        assert (await client.expect("error"))["code"] == "UNAUTHENTICATED"
        assert await client.closed() == 4001


async def test_hello_must_arrive_within_the_timeout(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"HELLO_TIMEOUT": "0.2"})
    async with await suite.client() as client:
        error = await client.expect("error")
        assert error["code"] == "UNAUTHENTICATED"
        assert await client.closed() == 4001


@MAKE_OVER_BOTH
async def test_anonymous_hello_when_allowed(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"ALLOW_ANONYMOUS": "true"})
    async with await suite.client() as client:
        welcome = await client.hello(None)
        assert welcome["user_id"].startswith("anon-")


@OVER_BOTH
async def test_ping_pong_and_session_survives_bad_messages(suite: Suite) -> None:
    async with await connected(suite) as client:
        assert await client.request({"type": "ping"}) == {"type": "pong", "id": 1 + 1}
        await client.send_raw("this is not json")
        assert (await client.expect("error"))["code"] == "BAD_REQUEST"
        await client.send_raw("[1, 2, 3]")
        assert (await client.expect("error"))["code"] == "BAD_REQUEST"
        await client.send_raw('{"type": "ping", "pad": 1e999}')  # would parse as inf
        assert (await client.expect("error"))["code"] == "BAD_REQUEST"
        await client.send_raw('{"type": "ping", "pad": "\\ud800"}')  # a lone surrogate
        assert (await client.expect("error"))["code"] == "BAD_REQUEST"
        await client.send({"type": "ping", "id": "seven"})
        assert (await client.expect("error"))["code"] == "BAD_REQUEST"
        await client.send({"type": "ping", "id": 1.5})
        assert (await client.expect("error"))["code"] == "BAD_REQUEST"
        await client.send({"type": "teleport", "id": 99})
        error = await client.expect("error")
        assert (error["code"], error["id"]) == ("UNSUPPORTED", 99)
        await client.send({"id": 100})
        assert (await client.expect("error"))["code"] == "BAD_REQUEST"
        await client.send({"type": "hello", "id": 101, "client_id": "c-1", "token": make_token()})
        assert (await client.reply(101))["code"] == "BAD_REQUEST"
        pong = await client.request({"type": "ping", "extra": {"ignored": True}})
        assert pong["type"] == "pong"


@OVER_BOTH
async def test_deeply_nested_json_is_refused(suite: Suite) -> None:
    async with await connected(suite) as client:
        await client.send_raw('{"type":"ping","id":5,"x":' + "[" * 200 + "]" * 200 + "}")
        assert (await client.expect("error"))["code"] == "BAD_REQUEST"
        assert (await client.request({"type": "ping"}))["type"] == "pong"


@MAKE_OVER_BOTH
async def test_oversized_frames(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"MAX_MESSAGE_SIZE": "2048"})
    async with await connected(suite) as client:
        await client.send({"type": "ping", "id": 9, "pad": "x" * 3000})
        error = await client.expect("error")
        assert error["code"] == "TOO_LARGE"
        assert (await client.request({"type": "ping"}))["type"] == "pong"
        await client.send_raw("x" * 100_000)
        assert await client.closed() == 1009


async def test_push_ack_and_own_changes_are_delivered(any_suite: Suite) -> None:
    async with await connected(any_suite) as client:
        subscribed = await client.subscribe("todo-demo")
        assert subscribed["head"] == 0
        ack = await client.push("todo-demo", [set_change(1, "t-1", title="milk", done=False)])
        assert ack["type"] == "ack"
        assert ack["room"] == "todo-demo"
        assert ack["results"][0]["client_seq"] == 1
        assert ack["results"][0]["seq"] == 1
        assert ack["results"][0]["status"] == "applied"
        assert "ts" in ack["results"][0]  # the server stamped it
        changes = await client.expect("changes")
        change = changes["changes"][0]
        assert change["seq"] == 1
        assert change["client_id"] == "c-1"
        assert change["client_seq"] == 1
        assert change["patch"] == {"set": {"title": "milk", "done": False}}


async def test_two_clients_converge(any_suite: Suite) -> None:
    async with (
        await connected(any_suite, "u-a", "c-a") as alice,
        await connected(any_suite, "u-b", "c-b") as bob,
    ):
        await alice.subscribe("room-1")
        await bob.subscribe("room-1")
        ra, rb = Replica(), Replica()
        await alice.push("room-1", [set_change(1, "t-1", title="milk", done=False)])
        await bob.push(
            "room-1",
            [
                {
                    "client_seq": 1,
                    "collection": "todos",
                    "key": "t-1",
                    "op": {"kind": "incr", "field": "votes", "by": 2},
                }
            ],
        )
        await alice.push(
            "room-1",
            [
                {
                    "client_seq": 2,
                    "collection": "todos",
                    "key": "t-1",
                    "op": {"kind": "incr", "field": "votes", "by": 3},
                }
            ],
        )
        await bob.push("room-1", [set_change(2, "t-2", title="eggs")])
        await alice.push(
            "room-1",
            [{"client_seq": 3, "collection": "todos", "key": "t-2", "op": {"kind": "delete"}}],
        )
        await sync_until(alice, ra, 5)
        await sync_until(bob, rb, 5)
        assert ra.records == rb.records
        assert ra.view("todos") == {"t-1": {"title": "milk", "done": False, "votes": 5}}
        assert ra.seqs == [1, 2, 3, 4, 5]
        # The server answered in the encoding the clients used.
        assert (alice.binary_replies > 0) == (any_suite.encoding == "binary")
        assert (bob.binary_replies > 0) == (any_suite.encoding == "binary")


async def test_duplicate_push_is_acknowledged_with_original_seq(any_suite: Suite) -> None:
    async with await connected(any_suite) as client:
        await client.subscribe("room-d")
        first = await client.push("room-d", [set_change(7, "k", v=1)])
        again = await client.push("room-d", [set_change(7, "k", v=1)])
        assert first["results"][0]["status"] == "applied"
        assert again["results"][0] == {
            "client_seq": 7,
            "seq": first["results"][0]["seq"],
            "status": "duplicate",
        }
        older = await client.push("room-d", [set_change(3, "k", v=2)])
        assert older["results"][0]["status"] == "duplicate"


async def test_late_client_catches_up_with_since_and_snapshot(any_suite: Suite) -> None:
    async with await connected(any_suite, "u-a", "c-a") as writer:
        await writer.subscribe("room-late")
        for n in range(1, 6):
            await writer.push("room-late", [set_change(n, f"t-{n}", n=n)])
    async with await connected(any_suite, "u-b", "c-b") as late:
        subscribed = await late.subscribe("room-late", since=3)
        assert subscribed["head"] == 5
        replica = Replica()
        replica.seq = 3
        await sync_until(late, replica, 5)
        assert replica.seqs == [4, 5]
    async with await connected(any_suite, "u-c", "c-c") as fresh:
        await fresh.subscribe("room-late", since=0)
        snapshot = await fresh.expect("snapshot")
        assert snapshot["seq"] == 5
        assert snapshot["last"] is True
        values = {r["key"]: r["value"] for r in snapshot["records"]}
        assert values == {f"t-{n}": {"n": n} for n in range(1, 6)}
    async with await connected(any_suite, "u-d", "c-d") as ahead:
        await ahead.subscribe("room-late", since=99)
        assert (await ahead.expect("snapshot"))["seq"] == 5


async def test_live_changes_follow_catch_up_without_gaps(any_suite: Suite) -> None:
    async with (
        await connected(any_suite, "u-a", "c-a") as writer,
        await connected(any_suite, "u-b", "c-b") as reader,
    ):
        await writer.subscribe("room-live")
        for n in range(1, 21):
            await writer.push("room-live", [set_change(n, "k", n=n)])
        replica = Replica()
        sub_id = reader.take_id()
        await reader.send({"type": "subscribe", "id": sub_id, "room": "room-live", "since": 5})
        replica.seq = 5
        for n in range(21, 41):
            await writer.push("room-live", [set_change(n, "k", n=n)])
        await sync_until(reader, replica, 40)
        assert replica.seqs == list(range(6, 41))
        assert replica.view("todos") == {"k": {"n": 40}}


async def test_not_subscribed(any_suite: Suite) -> None:
    async with await connected(any_suite) as client:
        for message in (
            {"type": "push", "room": "r", "changes": [set_change(1, "k", a=1)]},
            {"type": "presence", "room": "r", "state": {}},
            {"type": "broadcast", "room": "r", "data": {}},
            {"type": "unsubscribe", "room": "r"},
        ):
            reply = await client.request(message)
            assert reply["code"] == "NOT_SUBSCRIBED", message
            assert reply["room"] == "r"


async def test_forbidden_rooms_and_read_only_access(any_suite: Suite) -> None:
    async with await connected(any_suite, rooms=["team-*"], write=["team-a"]) as client:
        denied = await client.request({"type": "subscribe", "room": "other"})
        assert denied["code"] == "FORBIDDEN"
        await client.subscribe("team-b")
        push = await client.push("team-b", [set_change(1, "k", a=1)])
        assert push["code"] == "FORBIDDEN"
        assert push["message"] == "no write access to room team-b"
        await client.subscribe("team-a")
        assert (await client.push("team-a", [set_change(2, "k", a=1)]))["type"] == "ack"
    async with await connected(any_suite, write=[]) as reader:
        await reader.subscribe("any")
        assert (await reader.push("any", [set_change(1, "k", a=1)]))["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"client_seq": 0, "collection": "c", "key": "k", "op": {"kind": "delete"}}, "BAD_REQUEST"),
        (
            {"client_seq": "1", "collection": "c", "key": "k", "op": {"kind": "delete"}},
            "BAD_REQUEST",
        ),
        ({"client_seq": 1, "collection": "", "key": "k", "op": {"kind": "delete"}}, "BAD_REQUEST"),
        ({"client_seq": 1, "collection": "c", "key": 5, "op": {"kind": "delete"}}, "BAD_REQUEST"),
        (
            {"client_seq": 1, "collection": "c", "key": "k", "op": {"kind": "set", "fields": [1]}},
            "BAD_REQUEST",
        ),
        (
            {
                "client_seq": 1,
                "collection": "c",
                "key": "k",
                "op": {"kind": "incr", "field": "n", "by": 1.5},
            },
            "BAD_REQUEST",
        ),
        (
            {"client_seq": 1, "collection": "c", "key": "k", "op": {"kind": "teleport"}},
            "UNSUPPORTED",
        ),
        (
            {"client_seq": 1, "collection": "c", "key": "k", "ts": -5, "op": {"kind": "delete"}},
            "BAD_REQUEST",
        ),
        ("not an object", "BAD_REQUEST"),
        # U+0000 cannot be stored in PostgreSQL text: refused on every store.
        (
            {"client_seq": 1, "collection": "c\x00", "key": "k", "op": {"kind": "delete"}},
            "BAD_REQUEST",
        ),
        (
            {"client_seq": 1, "collection": "c", "key": "\x00", "op": {"kind": "delete"}},
            "BAD_REQUEST",
        ),
        (
            {
                "client_seq": 1,
                "collection": "c",
                "key": "k",
                "op": {"kind": "set", "fields": {"a\x00": 1}},
            },
            "BAD_REQUEST",
        ),
    ],
)
@OVER_BOTH
async def test_bad_changes_are_refused_and_store_nothing(
    suite: Suite, change: Any, code: str
) -> None:
    async with await connected(suite) as client:
        await client.subscribe("room-bad")
        reply = await client.push("room-bad", [set_change(1, "ok", a=1), change])
        assert reply["type"] == "error"
        assert reply["code"] == code
        # Nothing of the batch was stored: the next good push gets seq 1.
        ack = await client.push("room-bad", [set_change(1, "ok", a=1)])
        assert ack["results"][0] == {
            "client_seq": 1,
            "seq": 1,
            "status": "applied",
            "ts": ack["results"][0]["ts"],
        }


@OVER_BOTH
async def test_bad_push_shapes(suite: Suite) -> None:
    async with await connected(suite) as client:
        await client.subscribe("room-x")
        assert (await client.request({"type": "push", "room": "room-x", "changes": []}))[
            "code"
        ] == "BAD_REQUEST"
        assert (await client.request({"type": "push", "room": "room-x"}))["code"] == "BAD_REQUEST"
        assert (await client.request({"type": "push", "room": "bad room", "changes": []}))[
            "code"
        ] == "BAD_REQUEST"
        many = [set_change(n, "k", n=n) for n in range(1, 1002)]
        assert (await client.push("room-x", many))["code"] == "TOO_LARGE"
        assert (await client.request({"type": "subscribe", "room": "x" * 129}))[
            "code"
        ] == "BAD_REQUEST"
        assert (await client.request({"type": "subscribe", "room": "ok", "since": -1}))[
            "code"
        ] == "BAD_REQUEST"
        again = await client.request({"type": "subscribe", "room": "room-x"})
        assert again["code"] == "BAD_REQUEST"


@MAKE_OVER_BOTH
async def test_rate_limit_then_policy_close(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"RATE_LIMIT": "1", "RATE_BURST": "3"})
    async with await connected(suite) as client:
        for n in range(3):
            await client.send({"type": "ping", "id": 100 + n})
        await client.send({"type": "ping", "id": 200})
        limited = await client.reply(200)
        assert limited["code"] == "RATE_LIMITED"
        assert limited["retry_after_ms"] > 0
        for n in range(30):
            await client.send({"type": "ping", "id": 300 + n})
        assert await client.closed() == 4008


async def test_refresh_and_token_expiry(any_suite: Suite) -> None:
    async with await any_suite.client() as client:
        await client.hello(make_token("u-1", ttl=2))
        refreshed = await client.request({"type": "refresh", "token": make_token("u-1", ttl=3600)})
        assert refreshed["type"] == "refreshed"
        other = await client.request({"type": "refresh", "token": make_token("u-2")})
        assert other["code"] == "FORBIDDEN"
        bad = await client.request({"type": "refresh", "token": "garbage"})
        assert bad["code"] == "UNAUTHENTICATED"
    async with await any_suite.client() as client:
        await client.hello(make_token("u-1", ttl=3))
        expired = await client.expect("error", timeout=10)
        assert expired["code"] == "TOKEN_EXPIRED"
        assert await client.closed() == 4001


async def test_refresh_that_loses_read_access_ends_the_subscription(any_suite: Suite) -> None:
    async with await connected(any_suite, rooms=["a", "b"]) as client:
        await client.subscribe("a")
        await client.subscribe("b")
        assert (await client.request({"type": "refresh", "token": make_token("u-1", rooms=["a"])}))[
            "type"
        ] == "refreshed"
        revoked = await client.expect(lambda m: m.get("type") == "error" and m.get("room") == "b")
        assert revoked["code"] == "FORBIDDEN"
        assert (await client.push("b", [set_change(1, "k", a=1)]))["code"] == "NOT_SUBSCRIBED"
        assert (await client.push("a", [set_change(1, "k", a=1)]))["type"] == "ack"


async def test_unsubscribe_stops_delivery(any_suite: Suite) -> None:
    async with (
        await connected(any_suite, "u-a", "c-a") as writer,
        await connected(any_suite, "u-b", "c-b") as reader,
    ):
        await writer.subscribe("room-u")
        await reader.subscribe("room-u")
        reply = await reader.request({"type": "unsubscribe", "room": "room-u"})
        assert reply == {"type": "unsubscribed", "room": "room-u", "id": reply["id"]}
        await writer.push("room-u", [set_change(1, "k", a=1)])
        await writer.expect("changes")
        assert (await reader.request({"type": "ping"}))["type"] == "pong"
        assert not [m for m in reader.inbox if m.get("type") == "changes"]


async def test_presence_sync_join_update_leave_and_broadcast(any_suite: Suite) -> None:
    async with (
        await connected(any_suite, "u-a", "c-a") as alice,
        await connected(any_suite, "u-b", "c-b") as bob,
    ):
        await alice.subscribe("room-p", presence={"status": "online"})
        sync_a = await alice.expect(lambda m: m.get("type") == "presence" and m["event"] == "sync")
        assert [p["user_id"] for p in sync_a["peers"]] == ["u-a"]
        await bob.subscribe("room-p", presence={"status": "away"})
        sync_b = await bob.expect(lambda m: m.get("type") == "presence" and m["event"] == "sync")
        assert sorted(p["user_id"] for p in sync_b["peers"]) == ["u-a", "u-b"]
        join = await alice.expect(lambda m: m.get("type") == "presence" and m["event"] == "join")
        assert join["peer"]["user_id"] == "u-b"
        assert join["peer"]["state"] == {"status": "away"}
        assert set(join["peer"]) == {"session_id", "user_id", "client_id", "user", "state"}

        await bob.send({"type": "presence", "room": "room-p", "state": {"status": "typing"}})
        update = await alice.expect(
            lambda m: m.get("type") == "presence" and m["event"] == "update"
        )
        assert update["peer"]["state"] == {"status": "typing"}

        await alice.send({"type": "broadcast", "room": "room-p", "data": {"cursor": [1, 2]}})
        received = await bob.expect("broadcast")
        assert received["data"] == {"cursor": [1, 2]}
        assert received["from"] == alice.welcome["session_id"]

        await bob.request({"type": "unsubscribe", "room": "room-p"})
        leave = await alice.expect(lambda m: m.get("type") == "presence" and m["event"] == "leave")
        assert leave["reason"] == "unsubscribe"
        assert leave["peer"]["user_id"] == "u-b"
        # Own events are not echoed and broadcasts do not return to the sender.
        assert not [m for m in alice.inbox if m.get("type") == "broadcast"]
        assert not [
            m
            for m in alice.inbox
            if m.get("type") == "presence" and m.get("peer", {}).get("user_id") == "u-a"
        ]

    async with (
        await connected(any_suite, "u-c", "c-c") as carol,
        await connected(any_suite, "u-d", "c-d") as dave,
    ):
        await carol.subscribe("room-q", presence={})
        # Carol watches from her sync on: Dave then arrives as a join.
        await carol.expect(lambda m: m.get("type") == "presence" and m["event"] == "sync")
        await dave.subscribe("room-q", presence={})
        await carol.expect(lambda m: m.get("type") == "presence" and m["event"] == "join")
        await dave.close()
        leave = await carol.expect(lambda m: m.get("type") == "presence" and m["event"] == "leave")
        assert leave["reason"] == "disconnect"


async def test_presence_state_size_counts_utf8_bytes_on_edge_and_presence(
    any_suite: Suite,
) -> None:
    # 2,000 "é" are 4,000 bytes of UTF-8: under the 4,096-byte limit on the edge, and
    # so at presence too (written as UTF-8, not as 12,000 bytes of \u escapes).
    state = {"name": "é" * 2000}
    async with await connected(any_suite) as client:
        await client.subscribe("room-utf8", presence=state)
        sync = await client.expect(lambda m: m.get("type") == "presence" and m["event"] == "sync")
        assert [p["state"] for p in sync["peers"]] == [state]
        changed = {"name": "ü" * 2000}
        # No reply on success; the session handles its frames in order, so the list sees it.
        await client.send({"type": "presence", "room": "room-utf8", "state": changed})
        listed = await client.request({"type": "presence_list", "room": "room-utf8"})
        assert [p["state"] for p in listed["peers"]] == [changed]


async def test_presence_errors(any_suite: Suite) -> None:
    async with await connected(any_suite) as client:
        await client.subscribe("room-e")
        bad = await client.request({"type": "presence", "room": "room-e", "state": "online"})
        assert bad["code"] == "BAD_REQUEST"
        big = await client.request(
            {"type": "presence", "room": "room-e", "state": {"x": "y" * 5000}}
        )
        assert big["code"] == "TOO_LARGE"
        huge = await client.request(
            {"type": "broadcast", "room": "room-e", "data": {"x": "y" * 70000}}
        )
        assert huge["code"] == "TOO_LARGE"
        assert (await client.request({"type": "ping"}))["type"] == "pong"


async def test_server_full_closes_with_1013(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"MAX_CONNECTIONS": "1"})
    async with await connected(suite) as first:
        async with await suite.client() as second:
            assert await second.closed() == 1013
        assert (await first.request({"type": "ping"}))["type"] == "pong"


async def test_unavailable_when_sync_is_unreachable(make_suite: Any) -> None:
    from tests.support.ports import free_port

    suite = await make_suite()
    edge_settings = suite.extra["edge"].edge.settings
    from accord.edge.app import serve
    from accord.edge.settings import Settings

    dead = f"127.0.0.1:{free_port()}"
    settings = Settings.from_env(
        {
            "WS_ADDR": "127.0.0.1:0",
            "SYNC_ADDR": dead,
            "PRESENCE_ADDR": edge_settings.presence_target,
            "JWT_SECRET": edge_settings.identity.secret or "",
            "RPC_TIMEOUT": "0.5",
            **UNPROTECTED_GRPC,
        }
    )
    async with serve(settings) as running:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{running.port}/ready") as response,
        ):
            assert response.status == 503
            assert (await response.json())["sync"] is False
        async with await Client.connect(f"ws://127.0.0.1:{running.port}/ws") as client:
            await client.hello(make_token())
            reply = await client.request({"type": "subscribe", "room": "r"}, timeout=20)
            assert reply["code"] == "UNAVAILABLE"
            assert (await client.request({"type": "ping"}))["type"] == "pong"


async def test_binary_frames_mirror_json(suite: Suite) -> None:
    async with await suite.client() as client:
        await client.send_frame(
            pb.ClientFrame(id=1, hello=pb.Hello(token=make_token(), client_id="c-bin"))
        )
        welcome = await client.reply(1)
        assert welcome["type"] == "welcome"
        assert client.binary_replies == 1
        await client.send_frame(pb.ClientFrame(id=2, subscribe=pb.Subscribe(room="room-bin")))
        assert (await client.reply(2))["type"] == "subscribed"
        change = pb.PushChange(
            client_seq=1,
            collection="todos",
            key="t",
            op_json=json.dumps({"kind": "set", "fields": {"a": 1}}),
        )
        await client.send_frame(
            pb.ClientFrame(id=3, push=pb.Push(room="room-bin", changes=[change]))
        )
        ack = await client.reply(3)
        assert ack["type"] == "ack"
        assert ack["results"][0]["status"] == "applied"
        changes = await client.expect("changes")
        assert changes["changes"][0]["patch"] == {"set": {"a": 1}}
        await client.send_raw(b"\xff\xff\xff")
        assert (await client.expect("error"))["code"] == "BAD_REQUEST"
        # Switching back to text makes the replies text again.
        await client.send({"type": "ping", "id": 4})
        before = client.binary_replies
        assert (await client.reply(4))["type"] == "pong"
        assert client.binary_replies == before


@OVER_BOTH
async def test_http_endpoints(suite: Suite) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{suite.http_url}/health") as response:
            assert response.status == 200
        async with http.get(f"{suite.http_url}/ready") as response:
            assert response.status == 200
            assert await response.json() == {
                "ready": True,
                "sync": True,
                "presence": True,
                "jwks": True,
            }
        async with await connected(suite) as client:
            await client.subscribe("room-m")
            async with http.get(f"{suite.http_url}/peers") as response:
                body = await response.json()
                assert body["count"] == 1
                assert body["sessions"][0]["rooms"] == ["room-m"]
            async with http.get(f"{suite.http_url}/metrics") as response:
                text = await response.text()
                assert "accord_edge_connections 1.0" in text
                assert 'accord_edge_messages_in_total{type="subscribe"}' in text


async def test_peers_requires_the_admin_token_when_set(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"ADMIN_TOKEN": "sesame-0123456789"})
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{suite.http_url}/peers") as response:
            assert response.status == 401
        async with http.get(
            f"{suite.http_url}/peers", headers={"Authorization": "Bearer sesame-0123456789"}
        ) as response:
            assert response.status == 200


async def test_drain_closes_sockets_with_1012_and_refuses_new_ones(make_suite: Any) -> None:
    suite = await make_suite()
    edge = suite.extra["edge"]
    async with await connected(suite) as client:
        await client.subscribe("room-drain")
        drain = asyncio.create_task(edge.drain())
        assert await client.closed() == 1012
        await drain
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{suite.http_url}/ready") as response:
            assert response.status == 503
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(suite.ws_url)


@MAKE_OVER_BOTH
async def test_presence_pages_counts_user_events_and_channels(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"PRESENCE_SYNC_LIMIT": "2"})
    clients = [await connected(suite, f"u-{n}", f"c-{n}") for n in range(4)]
    try:
        for client in clients[:3]:
            await client.subscribe("big", presence={})
            # A session's join is done once its own sync arrives.
            await client.expect(lambda m: m.get("type") == "presence" and m["event"] == "sync")
        watcher = clients[3]
        await watcher.send({"type": "subscribe", "id": 50, "room": "big", "users": True})
        sync = await watcher.expect(lambda m: m.get("type") == "presence" and m["event"] == "sync")
        assert (sync["count"], sync["users"], len(sync["peers"])) == (3, 3, 2)
        page = await watcher.request(
            {"type": "presence_list", "room": "big", "cursor": sync["next_cursor"]}
        )
        assert page["type"] == "presence_page"
        assert len(page["peers"]) == 1
        seen = {p["user_id"] for p in sync["peers"] + page["peers"]}
        assert seen == {"u-0", "u-1", "u-2"}
        counts = await watcher.request(
            {"type": "presence_list", "room": "big", "counts_only": True}
        )
        assert (counts["count"], counts["users"], counts["peers"]) == (3, 3, [])
        bad = await watcher.request({"type": "presence_list", "room": "big", "limit": 0})
        assert bad["code"] == "BAD_REQUEST"

        await clients[0].close()
        offline = await watcher.expect(
            lambda m: m.get("type") == "presence" and m["event"] == "user_offline"
        )
        assert offline["peer"]["user_id"] == "u-0"
        assert offline["reason"] == "disconnect"

        await clients[1].send(
            {"type": "broadcast", "room": "big", "channel": "cursor", "data": {"x": 1}}
        )
        received = await watcher.expect("broadcast")
        assert (received["channel"], received["data"]) == ("cursor", {"x": 1})
        bad_channel = await clients[1].request(
            {"type": "broadcast", "room": "big", "channel": "no spaces", "data": 1}
        )
        assert bad_channel["code"] == "BAD_REQUEST"
    finally:
        for client in clients:
            await client.close()


async def test_pipelined_subscribe_and_push_answer_in_order(any_suite: Suite) -> None:
    async with await connected(any_suite) as client:
        await client.send({"type": "subscribe", "id": 10, "room": "pipe"})
        await client.send(
            {"type": "push", "id": 11, "room": "pipe", "changes": [set_change(1, "k", a=1)]}
        )
        first = await client.expect(lambda m: m.get("id") in (10, 11))
        second = await client.expect(lambda m: m.get("id") in (10, 11))
        assert (first["type"], second["type"]) == ("subscribed", "ack")


async def test_an_up_to_date_subscriber_to_a_live_room_goes_live_without_a_replay(
    any_suite: Suite,
) -> None:
    async with (
        await connected(any_suite, "u-a", "c-a") as writer,
        await connected(any_suite, "u-b", "c-b") as reader,
    ):
        await writer.subscribe("room-now")
        for n in range(1, 4):
            await writer.push("room-now", [set_change(n, "k", n=n)])
        # The writer's own changes came back: the room is live on this edge at seq 3.
        replica = Replica()
        await sync_until(writer, replica, 3)
        skipped = edge_metrics.CATCHUP_SKIPPED._value.get()
        subscribed = await reader.subscribe("room-now", since=3)
        assert subscribed["head"] == 3
        # Answered from the edge's own position, without a Pull (in-process edge).
        assert edge_metrics.CATCHUP_SKIPPED._value.get() == skipped + 1
        await writer.push("room-now", [set_change(4, "k", n=4)])
        changes = await reader.expect("changes")
        # Nothing before seq 4 is sent again; seq 4 arrives live.
        assert [c["seq"] for c in changes["changes"]] == [4]


async def raw_hello(ws: aiohttp.ClientWebSocketResponse, request_id: int = 1) -> dict[str, Any]:
    hello = {"type": "hello", "id": request_id, "client_id": "c-raw", "token": make_token()}
    await ws.send_str(json.dumps(hello))
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


async def test_control_frames_before_hello_are_answered_and_the_wait_goes_on(
    make_suite: Any,
) -> None:
    suite = await make_suite(edge_env={"HELLO_TIMEOUT": "5"})
    async with aiohttp.ClientSession() as http, http.ws_connect(suite.ws_url, autoping=False) as ws:
        await ws.ping(b"early")
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.PONG, b"early")
        await ws.pong(b"unsolicited")
        assert (await raw_hello(ws))["type"] == "welcome"


async def test_the_servers_own_heartbeat_before_hello_does_not_end_the_session(
    make_suite: Any,
) -> None:
    suite = await make_suite(edge_env={"HEARTBEAT_INTERVAL": "0.3", "HELLO_TIMEOUT": "5"})
    async with aiohttp.ClientSession() as http, http.ws_connect(suite.ws_url, autoping=False) as ws:
        # Answer the edge's heartbeat pings for a while (the marker: three of them), then hello.
        for _ in range(3):
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.PING, msg
            await ws.pong(msg.data)
        assert (await raw_hello(ws))["type"] == "welcome"


async def test_control_frames_do_not_extend_the_hello_deadline(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"HELLO_TIMEOUT": "0.5"})
    async with aiohttp.ClientSession() as http, http.ws_connect(suite.ws_url, autoping=False) as ws:
        started = time.monotonic()
        error: dict[str, Any] | None = None
        code = None
        while code is None and time.monotonic() - started < 5:
            await ws.ping(b"still here")
            msg = await ws.receive(timeout=0.1) if not ws.closed else None
            if msg is None:
                break
            if msg.type == aiohttp.WSMsgType.TEXT:
                error = json.loads(msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                code = ws.close_code
        assert error is not None and error["code"] == "UNAUTHENTICATED"
        assert code == 4001
        assert time.monotonic() - started < 2.5


@OVER_BOTH
async def test_every_broadcast_and_presence_event_after_subscribed_is_delivered(
    suite: Suite,
) -> None:
    async with (
        await connected(suite, "u-a", "c-a") as alice,
        await connected(suite, "u-b", "c-b") as bob,
    ):
        for trial in range(30):
            room = f"race-{trial}"
            await alice.subscribe(room, presence={"n": -1})
            await alice.expect(
                lambda m, r=room: (
                    m.get("type") == "presence" and m["room"] == r and m["event"] == "sync"
                )
            )
            # A record to catch up on and a presence join: work between `subscribed` and the sync.
            assert (await alice.push(room, [set_change(trial + 1, "k", n=trial)]))["type"] == "ack"
            request_id = bob.take_id()
            await bob.send(
                {"type": "subscribe", "id": request_id, "room": room, "presence": {"bob": True}}
            )
            assert (await bob.reply(request_id))["type"] == "subscribed"
            # No delay: the moment Bob has `subscribed`, Alice broadcasts and updates.
            await alice.send({"type": "broadcast", "room": room, "data": {"n": trial}})
            await alice.send({"type": "presence", "room": room, "state": {"n": trial}})
            received = await bob.expect(
                lambda m, r=room: m.get("type") == "broadcast" and m["room"] == r
            )
            assert received["data"] == {"n": trial}
            sync = await bob.expect(
                lambda m, r=room: (
                    m.get("type") == "presence" and m["room"] == r and m["event"] == "sync"
                )
            )
            assert {p["user_id"] for p in sync["peers"]} == {"u-a", "u-b"}
            update = await bob.expect(
                lambda m, r=room, n=trial: (
                    m.get("type") == "presence"
                    and m["room"] == r
                    and m["event"] == "update"
                    and m["peer"]["state"] == {"n": n}
                )
            )
            assert update["peer"]["user_id"] == "u-a"
            await bob.request({"type": "unsubscribe", "room": room})
            await alice.request({"type": "unsubscribe", "room": room})


SINCE_BAD = [2**64, 2**63, -1, 1.5, True, "1", [1]]
LIMIT_BAD = [0, 1001, 2**32, 2**64, -1, 2.0, True, "10"]
ID_BAD = [2**63, -(2**63) - 1, 2**64]


@OVER_BOTH
async def test_numbers_out_of_range_are_bad_requests_that_echo_the_id(suite: Suite) -> None:
    async with await connected(suite) as client:
        for since in SINCE_BAD:
            reply = await client.request({"type": "subscribe", "room": "nums", "since": since})
            assert (reply["type"], reply["code"]) == ("error", "BAD_REQUEST"), (since, reply)
        await client.subscribe("nums", since=2**63 - 1)  # the largest seq is a valid position
        for limit in LIMIT_BAD:
            reply = await client.request({"type": "presence_list", "room": "nums", "limit": limit})
            assert (reply["type"], reply["code"]) == ("error", "BAD_REQUEST"), (limit, reply)
        for request_id in ID_BAD:
            await client.send({"type": "ping", "id": request_id})
            error = await client.expect("error")
            assert (error["code"], error["id"]) == ("BAD_REQUEST", request_id)
        await client.send({"type": "ping", "id": -5})  # negative ids are integers too
        assert await client.reply(-5) == {"type": "pong", "id": -5}
        assert (await client.request({"type": "ping"}))["type"] == "pong"


async def test_binary_numbers_out_of_range_are_bad_requests_that_echo_the_id(
    suite: Suite,
) -> None:
    async with await suite.client(encoding="binary") as client:
        await client.hello(make_token())
        await client.send_frame(
            pb.ClientFrame(id=7, subscribe=pb.Subscribe(room="b", since=2**64 - 1))
        )
        reply = await client.reply(7)
        assert (reply["type"], reply["code"]) == ("error", "BAD_REQUEST")
        await client.send_frame(pb.ClientFrame(id=8, subscribe=pb.Subscribe(room="b", since=2**63)))
        assert (await client.reply(8))["code"] == "BAD_REQUEST"
        await client.subscribe("b")
        await client.send_frame(
            pb.ClientFrame(id=9, presence_list=pb.PresenceList(room="b", limit=2**32 - 1))
        )
        assert (await client.reply(9))["code"] == "BAD_REQUEST"
        assert (await client.request({"type": "ping"}))["type"] == "pong"


async def test_bad_requests_echo_the_id_of_any_parsed_frame(suite: Suite) -> None:
    async with await connected(suite) as client:
        cases = {
            31: '{"type":"ping","id":31,"x":' + "[" * 40 + "]" * 40 + "}",
            32: '{"type":"ping","id":32,"x":"\\ud800"}',
            33: '{"id":33,"type":"ping","x":' + "[" * 100_000 + "]" * 100_000 + "}",
            34: '{"type":"ping","x":' + "[" * 50 + "]" * 50 + ',"id":34}',
            35: '{"type":"ping","id":35,"x":1e999}',
            36: '{"type":7,"id":36}',
        }
        for request_id, text in cases.items():
            await client.send_raw(text)
            error = await client.reply(request_id)
            assert (error["type"], error["code"]) == ("error", "BAD_REQUEST"), (request_id, error)
        await client.send_raw('{"type":"ping","id":"37","x":' + "[" * 40 + "]" * 40 + "}")
        assert "id" not in await client.expect("error")
        # Protobuf frames: a bad JSON field, and JSON nested too deep.
        await client.send_frame(
            pb.ClientFrame(id=41, broadcast=pb.BroadcastSend(room="r", data_json="{nope"))
        )
        assert (await client.reply(41))["code"] == "BAD_REQUEST"
        await client.send_frame(
            pb.ClientFrame(
                id=42, broadcast=pb.BroadcastSend(room="r", data_json="[" * 40 + "]" * 40)
            )
        )
        assert (await client.reply(42))["code"] == "BAD_REQUEST"
        await client.send({"type": "ping", "id": 43})
        assert (await client.reply(43))["type"] == "pong"


@OVER_BOTH
async def test_a_failed_hello_echoes_the_id_of_a_parsed_frame(suite: Suite) -> None:
    async with await suite.client() as client:
        await client.send_raw('{"type":"hello","id":3,"client_id":"c","token":"\\udc00"}')
        error = await client.reply(3)
        assert error["code"] == "BAD_REQUEST"
        assert await client.closed() == 4001

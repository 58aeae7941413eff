"""Edge extensions loaded through EDGE_EXTENSIONS in a running suite, seen by clients: each
hook's refusal is a typed error for that request (or change) only, a rewrite is what gets
stored, a hook that raises is INTERNAL and one past EXTENSION_TIMEOUT is UNAVAILABLE (both
counted, the session goes on), on_disconnect sees how a session ended, and the server API's
push runs through before_push too."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from accord.edge.metrics import EXTENSION_ERRORS
from accord.extensions import BeforePush, OnAuthenticate, OnConnect, OnDisconnect

from tests.support import edge_hooks
from tests.support.apiclient import ApiClient
from tests.support.suite import ROOT, UNPROTECTED_GRPC, Suite
from tests.support.wsclient import SECRET, Client, make_token

pytestmark = pytest.mark.e2e

NAME = "tests.support.edge_hooks:factory"
HOOKED = {"EDGE_EXTENSIONS": NAME, "EXTENSION_TIMEOUT": "0.3"}
WAIT = 10.0


def change(client_seq: int, key: str, text: str) -> dict[str, Any]:
    return {
        "client_seq": client_seq,
        "collection": "messages",
        "key": key,
        "op": {"kind": "set", "fields": {"text": text}},
    }


def errors(hook: str) -> Callable[[], float]:
    counter = EXTENSION_ERRORS.labels(hook, NAME)
    return lambda: float(counter._value.get())


def hooks() -> edge_hooks.EdgeHooks:
    assert edge_hooks.LAST is not None
    return edge_hooks.LAST


def seen(kind: type[Any]) -> list[Any]:
    return [payload for _, payload in hooks().seen if isinstance(payload, kind)]


async def hooked(make_suite: Any) -> Suite:
    suite: Suite = await make_suite(edge_env=HOOKED)
    return suite


async def joined(
    suite: Suite, room: str, sub: str = "u-1", encoding: str = "json", **claims: Any
) -> Client:
    client = await suite.client(encoding=encoding)
    await client.hello(make_token(sub, **claims), client_id=f"c-{sub}")
    await client.subscribe(room)
    return client


async def next_disconnect() -> OnDisconnect:
    return await asyncio.wait_for(hooks().disconnects.get(), WAIT)


async def test_on_connect_refuses_before_the_upgrade_with_a_typed_http_error(
    make_suite: Any,
) -> None:
    suite = await hooked(make_suite)
    failed = errors("on_connect")
    before = failed()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(suite.ws_url, headers={"User-Agent": "blocked"})
        assert refused.value.status == 403
        blocked = {"User-Agent": "blocked"}
        async with http.get(f"{suite.http_url}/ws", headers=blocked) as answer:
            assert answer.status == 403
            body = await answer.json()
        assert body == {"code": "FORBIDDEN", "message": "this client is blocked"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as broken:
            await http.ws_connect(suite.ws_url, headers={"User-Agent": "boom"})
        assert broken.value.status == 500
    assert failed() == before + 1
    sent = {"User-Agent": "fine", "Cookie": "k=v", "X-Forwarded-For": "203.0.113.7"}
    async with await suite.client(headers=sent) as client:
        await client.hello(make_token())
    (connected,) = [c for c in seen(OnConnect) if c.connection.headers.get("user-agent") == "fine"]
    connection = connected.connection
    assert (connection.transport, connection.remote) == ("websocket", "127.0.0.1")
    assert connection.headers == {"user-agent": "fine", "x-forwarded-for": "203.0.113.7"}


async def test_on_authenticate_refuses_a_hello_as_a_bad_token_is(make_suite: Any) -> None:
    suite = await hooked(make_suite)
    async with await suite.client() as client:
        reply = await client.request(
            {"type": "hello", "client_id": "c-1", "token": make_token("u-9", ban=True)}
        )
        assert (reply["type"], reply["code"]) == ("error", "FORBIDDEN")
        assert await client.closed() == 4001
    ended = await next_disconnect()
    assert (ended.session, ended.code, ended.rooms) == (None, 4001, ())


async def test_on_authenticate_enriches_the_grants_and_replaces_the_user(make_suite: Any) -> None:
    suite = await hooked(make_suite)
    async with await suite.client() as client:
        token = make_token("u-1", rooms=["lobby"], team="red", alias="ada")
        welcome = await client.hello(token, user={"name": "Ada"})
        assert welcome["user_id"] == "ada"
        await client.subscribe("team-red")
        ack = await client.push("team-red", [change(1, "m1", "hi team")])
        assert ack["results"][0]["status"] == "applied"
        other = await client.request({"type": "subscribe", "room": "team-blue", "since": 0})
        assert (other["type"], other["code"]) == ("error", "FORBIDDEN")
    (hello,) = [h for h in seen(OnAuthenticate) if h.identity.user_id == "u-1"]
    assert (hello.client_id, hello.user, hello.identity.rooms) == (
        "c-1",
        {"name": "Ada"},
        ("lobby",),
    )
    assert hello.identity.claims["team"] == "red"
    pushed = [p for p in seen(BeforePush) if p.room == "team-red"]
    assert pushed and pushed[0].session.identity.user_id == "ada"
    assert pushed[0].session.identity.claims["enriched"] is True


async def test_a_refused_refresh_keeps_the_session_on_its_old_token(make_suite: Any) -> None:
    suite = await hooked(make_suite)
    async with await joined(suite, "chat") as client:
        refused = await client.request({"type": "refresh", "token": make_token(ban=True)})
        assert (refused["type"], refused["code"]) == ("error", "FORBIDDEN")
        assert (await client.request({"type": "ping"}))["type"] == "pong"
        fine = await client.request({"type": "refresh", "token": make_token()})
        assert fine["type"] == "refreshed"


async def test_on_subscribe_refuses_that_subscribe_only(make_suite: Any) -> None:
    suite = await hooked(make_suite)
    async with await joined(suite, "chat") as client:
        vault = await client.request({"type": "subscribe", "room": "vault", "since": 0})
        assert (vault["type"], vault["code"], vault["room"]) == ("error", "FORBIDDEN", "vault")
        pushed = await client.request(
            {"type": "push", "room": "vault", "changes": [change(1, "m1", "x")]}
        )
        assert pushed["code"] == "NOT_SUBSCRIBED"
        ack = await client.push("chat", [change(2, "m2", "still subscribed")])
        assert ack["results"][0]["status"] == "applied"


@pytest.mark.parametrize(("marker", "code"), [("boom", "INTERNAL"), ("slow", "UNAVAILABLE")])
async def test_a_failing_on_subscribe_fails_that_subscribe(
    make_suite: Any, marker: str, code: str
) -> None:
    suite = await hooked(make_suite)
    failed = errors("on_subscribe")
    before = failed()
    async with await joined(suite, "chat") as client:
        reply = await client.request({"type": "subscribe", "room": marker, "since": 0})
        assert (reply["type"], reply["code"]) == ("error", code)
        assert "broke" not in reply["message"]
        again = await client.request({"type": "subscribe", "room": "other", "since": 0})
        assert again["type"] == "subscribed"
    assert failed() == before + 1


@pytest.mark.parametrize(("marker", "code"), [("boom", "INTERNAL"), ("slow", "UNAVAILABLE")])
async def test_a_failing_on_authenticate_fails_that_hello(
    make_suite: Any, marker: str, code: str
) -> None:
    suite = await hooked(make_suite)
    failed = errors("on_authenticate")
    before = failed()
    async with await suite.client() as client:
        reply = await client.request(
            {"type": "hello", "client_id": "c", "token": make_token(marker)}
        )
        assert (reply["type"], reply["code"]) == ("error", code)
        assert await client.closed() == 4001
    async with await suite.client() as client:
        await client.hello(make_token("u-2"))  # the next session is served as usual
    assert failed() == before + 1


@pytest.mark.parametrize("encoding", ["json", "binary"])
async def test_before_push_refuses_or_rewrites_each_change_the_rest_go_on(
    make_suite: Any, encoding: str
) -> None:
    suite = await hooked(make_suite)
    async with await joined(suite, "chat", encoding=encoding) as client:
        ack = await client.push(
            "chat",
            [change(1, "m1", "hello"), change(2, "m2", "refuse"), change(3, "m3", "shout this")],
        )
        ok, refused, loud = ack["results"]
        assert (ok["client_seq"], ok["status"], ok["seq"]) == (1, "applied", 1)
        assert refused == {
            "client_seq": 2,
            "seq": 0,
            "status": "error",
            "error": {"code": "BAD_REQUEST", "message": "not this text", "json_path": "$.text"},
        }
        assert (loud["client_seq"], loud["status"], loud["seq"]) == (3, "applied", 2)
        delivered: list[dict[str, Any]] = []
        while len(delivered) < 2:
            message = await client.expect("changes")
            delivered.extend(message["changes"])
        assert [(c["seq"], c["key"]) for c in delivered] == [(1, "m1"), (2, "m3")]
        assert delivered[1]["patch"] == {"set": {"text": "SHOUT THIS"}}
    api = await ApiClient.open(suite.http_url)
    try:
        stored = await api.call("GET", "/api/v1/rooms/chat/records/messages/m3", make_token())
    finally:
        await api.close()
    assert stored.body["value"] == {"text": "SHOUT THIS"}


@pytest.mark.parametrize(
    ("marker", "code"),
    [("boom", "INTERNAL"), ("slow", "UNAVAILABLE"), ("bad rewrite", "INTERNAL")],
)
async def test_a_failing_before_push_fails_that_change_and_the_session_goes_on(
    make_suite: Any, marker: str, code: str
) -> None:
    suite = await hooked(make_suite)
    failed = errors("before_push")
    before = failed()
    async with await joined(suite, "chat") as client:
        ack = await client.push("chat", [change(1, "m1", marker), change(2, "m2", "fine")])
        broken, fine = ack["results"]
        assert (broken["status"], broken["error"]["code"], broken["seq"]) == ("error", code, 0)
        assert "broke" not in broken["error"]["message"]
        assert (fine["status"], fine["seq"]) == ("applied", 1)
        assert (await client.request({"type": "ping"}))["type"] == "pong"
        again = await client.push("chat", [change(3, "m3", "still here")])
        assert again["results"][0]["seq"] == 2
    assert failed() == before + 1


async def test_a_push_whose_every_change_is_refused_reaches_no_one(make_suite: Any) -> None:
    suite = await hooked(make_suite)
    async with await joined(suite, "chat") as client:
        ack = await client.push("chat", [change(1, "m1", "refuse"), change(2, "m2", "refuse")])
        assert [r["status"] for r in ack["results"]] == ["error", "error"]
        ack = await client.push("chat", [change(3, "m3", "after")])
        assert ack["results"][0]["seq"] == 1  # nothing of the refused push took a seq


async def test_on_disconnect_sees_the_close_code_and_the_rooms(make_suite: Any) -> None:
    suite = await hooked(make_suite)
    client = await joined(suite, "chat")
    await client.subscribe("notes")
    await client.ws.close(code=4100, message=b"bye")
    await client.close()
    ended = await next_disconnect()
    assert ended.code == 4100 and ended.rooms == ("chat", "notes")
    assert ended.session is not None and ended.session.identity.user_id == "u-1"
    assert ended.session.session_id == client.welcome["session_id"]
    assert ended.connection.transport == "websocket"


async def test_the_server_api_push_goes_through_before_push(make_suite: Any) -> None:
    suite = await hooked(make_suite)
    api = await ApiClient.open(suite.http_url)
    try:
        answer = await api.call(
            "POST",
            "/api/v1/rooms/chat/changes",
            make_token("svc"),
            {
                "client_id": "billing-svc",
                "changes": [change(1, "a", "refuse"), change(2, "b", "shout it")],
            },
        )
        assert answer.status == 200
        refused, loud = answer.body["results"]
        assert (refused["status"], refused["error"]["code"]) == ("error", "BAD_REQUEST")
        assert (loud["status"], loud["seq"]) == ("applied", 1)
        stored = await api.call("GET", "/api/v1/rooms/chat/records/messages/b", make_token())
        assert stored.body["value"] == {"text": "SHOUT IT"}
    finally:
        await api.close()
    (call, _) = [p for p in seen(BeforePush) if p.session.client_id == "billing-svc"]
    assert (call.session.session_id, call.session.connection.transport) == ("", "api")
    assert call.session.identity.user_id == "svc"


@pytest.fixture
def moderated(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("MODERATION_WORDS", "darn,heck")
    monkeypatch.setenv("MODERATION_MODE", "refuse")
    return {"EDGE_EXTENSIONS": "examples.moderation:factory"}


async def test_the_moderation_example_works_at_the_edge(
    make_suite: Any, moderated: dict[str, str]
) -> None:
    suite = await make_suite(edge_env=moderated)
    async with await joined(suite, "chat") as client:
        ack = await client.push("chat", [change(1, "m1", "oh heck"), change(2, "m2", "fine")])
        refused, fine = ack["results"]
        assert (refused["status"], refused["error"]["code"]) == ("error", "BAD_REQUEST")
        assert (fine["status"], fine["seq"]) == ("applied", 1)


def test_a_bad_edge_extension_stops_start_up_with_one_line(tmp_path: Any) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "EDGE_"))},
        "JWT_SECRET": SECRET,
        "WS_ADDR": "127.0.0.1:0",
        "METRICS_ADDR": "",
        "EDGE_EXTENSIONS": "tests.support.no_such_module:factory",
        **UNPROTECTED_GRPC,
    }
    done = subprocess.run(
        [sys.executable, "-m", "accord.edge"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "configuration error: EDGE_EXTENSIONS: cannot import 'tests.support.no_such_module'"
        " (ModuleNotFoundError: No module named 'tests.support.no_such_module')"
    ]


async def test_without_extensions_no_hook_is_active(suite: Suite) -> None:
    hooks_of = suite.extra["edge"].edge.extensions
    assert not hooks_of.active
    assert not (hooks_of.on_connect.active or hooks_of.before_push.active)

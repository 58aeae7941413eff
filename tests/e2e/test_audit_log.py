"""The audit log of a running suite: every event class with its fields, and no secret in it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from accord.edge.api.keys import hash_key, new_key

from tests.e2e.test_edge_hardening import StalledClient
from tests.support.suite import Suite
from tests.support.webhook_receiver import new_secret
from tests.support.wsclient import SECRET, make_token

pytestmark = pytest.mark.e2e

ADMIN = "admin-token-audit-0123456789-abcdef"
WRONG_ADMIN = "wrong-admin-token-9876543210"


class AuditFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = [json.loads(line) for line in self.path.read_text().splitlines() if line]
        return [e for e in lines if name is None or e["event"] == name]

    async def wait(self, name: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        """The first ``name`` event with ``fields``, once it is written."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events(name):
                if all(event.get(k) == v for k, v in fields.items()):
                    return event
            assert time.monotonic() < deadline, f"no {name} {fields}: {self.events()[-5:]}"
            await asyncio.sleep(0.05)


async def http_call(
    suite: Suite, method: str, path: str, token: str | None, body: Any = None, **headers: str
) -> int:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{suite.http_url}{path}", json=body, headers=headers) as response,
    ):
        await response.read()
        return response.status


def change(client_seq: int, blob: str = "") -> dict[str, Any]:
    op = {"kind": "set", "fields": {"n": client_seq, "blob": blob}}
    return {"client_seq": client_seq, "collection": "c", "key": f"k{client_seq % 3}", "op": op}


def session_fields(event: dict[str, Any], actor: str | None) -> None:
    assert event["actor"] == actor
    assert event["session_id"].startswith("s-")
    assert event["ip"] == "127.0.0.1"
    assert event["service"] == "edge"
    assert event["time"].endswith("Z")


async def test_every_event_class_is_audited_without_secrets(
    make_suite: Any, tmp_path: Path
) -> None:
    audit = AuditFile(tmp_path / "audit.log")
    api_key = new_key()
    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps({"keys": [{"name": "billing", "hash": hash_key(api_key), "rooms": ["bill-*"]}]})
    )
    hook_secret = new_secret()
    hooks = tmp_path / "webhooks.json"

    def endpoints(*ids: str) -> str:
        return json.dumps(
            {
                "endpoints": [
                    {
                        "id": i,
                        "url": "http://127.0.0.1:9/hook",
                        "rooms": ["*"],
                        "secret": hook_secret,
                    }
                    for i in ids
                ]
            }
        )

    hooks.write_text(endpoints("one"))
    suite = await make_suite(
        edge_env={
            "AUDIT_LOG": f"file:{audit.path}",
            "ADMIN_TOKEN": ADMIN,
            "API_KEYS_FILE": str(keys),
            "ALLOWED_ORIGINS": "https://app.example.com",
            "SEND_QUEUE_SIZE": "8",
            "SEND_QUEUE_BYTES": "65536",
        },
        sync_env={
            "AUDIT_LOG": f"file:{audit.path}",
            "WEBHOOKS_FILE": str(hooks),
            "WEBHOOK_CONCURRENCY": "0",
            "WEBHOOK_POLL_INTERVAL": "0.1",
        },
    )
    tokens: list[str] = []

    def token(sub: str, **claims: Any) -> str:
        made = make_token(sub, **claims)
        tokens.append(made)
        return made

    # Authentication failures: hello, refresh, the server API.
    forged = make_token("u-eve", secret="another-secret-0123456789-0123456789")
    tokens.append(forged)
    async with await suite.client() as eve:
        await eve.send({"type": "hello", "id": 1, "client_id": "c-e", "token": forged})
        assert (await eve.reply(1))["code"] == "UNAUTHENTICATED"
    failed = await audit.wait("auth.failed", via="hello")
    session_fields(failed, None)
    assert failed["code"] == "UNAUTHENTICATED" and "signature" in failed["reason"].lower()

    async with await suite.client() as alice:
        await alice.hello(token("u-alice", rooms=["doc-*", "busy"], write=["doc-1", "busy"]))
        assert (await alice.request({"type": "refresh", "token": forged}))["code"] == (
            "UNAUTHENTICATED"
        )
        session_fields(await audit.wait("auth.failed", via="refresh"), "u-alice")
        other = token("u-mallory")
        assert (await alice.request({"type": "refresh", "token": other}))["code"] == "FORBIDDEN"
        assert (await audit.wait("auth.failed", via="refresh", code="FORBIDDEN"))["actor"] == (
            "u-alice"
        )

        # Refused room access: subscribe, push.
        assert (await alice.request({"type": "subscribe", "room": "secret"}))["code"] == (
            "FORBIDDEN"
        )
        denied = await audit.wait("access.denied", via="subscribe")
        session_fields(denied, "u-alice")
        assert denied["room"] == "secret"
        await alice.subscribe("doc-2")
        assert (await alice.push("doc-2", [change(1)]))["code"] == "FORBIDDEN"
        assert (await audit.wait("access.denied", via="push"))["room"] == "doc-2"

        # A refresh that changes the grants; one that does not is not an event.
        same = token("u-alice", rooms=["doc-*", "busy"], write=["doc-1", "busy"])
        assert (await alice.request({"type": "refresh", "token": same}))["type"] == "refreshed"
        wider = token("u-alice", rooms=["doc-*", "busy"], write=["doc-*", "busy"])
        assert (await alice.request({"type": "refresh", "token": wider}))["type"] == "refreshed"
        refreshed = await audit.wait("token.refreshed")
        session_fields(refreshed, "u-alice")
        assert refreshed["write"] == ["doc-*", "busy"]
        assert len(audit.events("token.refreshed")) == 1

        # Admin calls: who (the token's fingerprint), what, the result.
        assert await http_call(suite, "GET", "/peers", WRONG_ADMIN) == 401
        refused = await audit.wait("admin.call", result="unauthenticated")
        assert (refused["action"], refused["actor"], refused["status"]) == ("peers", None, 401)
        revoke = {"user_id": "u-alice", "room": "doc-2"}
        assert await http_call(suite, "POST", "/admin/revoke", ADMIN, revoke) == 200
        call = await audit.wait("admin.call", action="revoke")
        assert call["actor"].startswith("admin:") and call["result"] == "ok"
        added = await audit.wait("revocation.added")
        assert (added["user_id"], added["room"], added["access"]) == ("u-alice", "doc-2", "read")
        assert added["actor"] == call["actor"]
        assert await http_call(suite, "DELETE", "/admin/revoke", ADMIN, revoke) == 200
        assert (await audit.wait("revocation.lifted", reason="admin"))["room"] == "doc-2"
        expiring = {"user_id": "u-alice", "room": "doc-9", "ttl": 0.2}
        assert await http_call(suite, "POST", "/admin/revoke", ADMIN, expiring) == 200
        lifted = await audit.wait("revocation.lifted", reason="expired")
        assert (lifted["actor"], lifted["room"]) == ("system", "doc-9")

        # The server API: API key use, a refused room, an unknown key.
        assert await http_call(suite, "GET", "/api/v1/rooms/bill-1/records", api_key) == 200
        used = await audit.wait("apikey.used")
        assert (used["actor"], used["key_name"], used["ip"]) == ("billing", "billing", "127.0.0.1")
        assert await http_call(suite, "GET", "/api/v1/rooms/doc-1/records", api_key) == 403
        api_denied = await audit.wait("access.denied", via="api")
        assert (api_denied["actor"], api_denied["room"]) == ("billing", "doc-1")
        assert await http_call(suite, "GET", "/api/v1/rooms/bill-1/records", new_key()) == 401
        assert (await audit.wait("auth.failed", via="api"))["reason"] == "unknown API key"
        origin = {"Origin": "https://evil.example.net"}
        assert await http_call(suite, "GET", "/api/v1/rooms/bill-1/records", api_key, **origin) == (
            403
        )
        assert (await audit.wait("origin.refused"))["origin"] == "https://evil.example.net"

    # Abuse: a session that keeps sending past its rate limit is closed with 4008.
    edge = suite.extra["edge"]
    async with await suite.client() as flooder:
        await flooder.hello(token("u-flood"), client_id="c-f")
        for n in range(400):
            await flooder.send({"type": "ping", "id": n + 10})
        assert await flooder.closed() == 4008
    abuse = await audit.wait("session.abuse")
    session_fields(abuse, "u-flood")
    assert abuse["code"] == 4008

    # A slow consumer: a socket that stops reading is cut with 4009.
    port = edge.port
    slow = await asyncio.to_thread(StalledClient, port)
    slow_token = token("u-slow", rooms=["busy"])
    await asyncio.to_thread(
        slow.send_text, {"type": "hello", "id": 1, "client_id": "c-s", "token": slow_token}
    )
    await asyncio.to_thread(slow.send_text, {"type": "subscribe", "id": 2, "room": "busy"})
    async with await suite.client() as writer:
        await writer.hello(token("u-w"), client_id="c-w")
        await writer.subscribe("busy")
        blob = "x" * 100_000
        n = 0
        while not audit.events("session.slow_consumer"):
            n += 1
            assert n < 200, "the stalled session was never cut"
            assert (await writer.push("busy", [change(n, f"{n}{blob}")]))["type"] == "ack"
    cut = await audit.wait("session.slow_consumer")
    session_fields(cut, "u-slow")
    assert cut["code"] == 4009
    assert await asyncio.to_thread(slow.close_code) == 4009

    # Webhook configuration changes, from sync.
    hooks.write_text(endpoints("one", "two"))
    reloaded = await audit.wait("webhooks.reloaded", result="ok")
    assert (reloaded["service"], reloaded["endpoints"]) == ("sync", ["one", "two"])
    hooks.write_text("{not json")
    assert (await audit.wait("webhooks.reloaded", result="error"))["service"] == "sync"

    # No secret anywhere in the log.
    text = audit.path.read_text()
    for secret in (SECRET, ADMIN, WRONG_ADMIN, api_key, hook_secret, *tokens):
        assert secret not in text
    # Every line has the common fields.
    for event in audit.events():
        assert {"time", "event", "service", "actor", "session_id", "ip", "room"} <= set(event)

"""The edge as an internet-facing gateway: keys, origins, limits, admin, backpressure, drain."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.suite import UNPROTECTED_GRPC, Suite
from tests.support.wsclient import Client, Replica, make_token, sync_until

pytestmark = pytest.mark.e2e

ADMIN = "admin-token-0123456789-abcdef"


def claims(sub: str = "u-1", **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "exp": int(time.time()) + 600, **extra}


def change(client_seq: int, key: str, **fields: Any) -> dict[str, Any]:
    return {
        "client_seq": client_seq,
        "collection": "c",
        "key": key,
        "op": {"kind": "set", "fields": fields},
    }


async def hello_code(suite: Suite, token: str) -> str:
    async with await suite.client() as client:
        await client.send({"type": "hello", "id": 1, "client_id": "c-1", "token": token})
        reply = await client.reply(1)
        return str(reply.get("code") or reply["type"])


async def test_rs256_public_key_and_algorithm_confusion(make_suite: Any, tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(public_pem)
    suite = await make_suite(edge_env={"JWT_PUBLIC_KEY_FILE": str(key_file)})
    assert await hello_code(suite, jwt.encode(claims(), private, algorithm="RS256")) == "welcome"
    # HS256 signed with the public key as the secret: the classic confusion attack.
    forged = jwt.api_jws.PyJWS()
    header = {"alg": "HS256", "typ": "JWT"}
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(json.dumps(header).encode()) + b"." + b64(json.dumps(claims()).encode())
    signature = b64(hmac.new(public_pem, signing_input, hashlib.sha256).digest())
    confused = (signing_input + b"." + signature).decode()
    assert forged is not None
    assert await hello_code(suite, confused) == "UNAUTHENTICATED"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert (
        await hello_code(suite, jwt.encode(claims(), other, algorithm="RS256")) == "UNAUTHENTICATED"
    )


async def test_es256_from_a_jwks_file(make_suite: Any, tmp_path: Path) -> None:
    signing = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = [
        dict(json.loads(ECAlgorithm.to_jwk(signing.public_key())), kid="ec-1", alg="ES256"),
        dict(json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), kid="rsa-1", alg="RS256"),
    ]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": keys}))
    suite = await make_suite(edge_env={"JWT_JWKS_FILE": str(jwks)})
    good = jwt.encode(claims(), signing, algorithm="ES256", headers={"kid": "ec-1"})
    assert await hello_code(suite, good) == "welcome"
    unknown_kid = jwt.encode(claims(), signing, algorithm="ES256", headers={"kid": "nope"})
    assert await hello_code(suite, unknown_kid) == "UNAUTHENTICATED"
    wrong_key = jwt.encode(claims(), signing, algorithm="ES256", headers={"kid": "rsa-1"})
    assert await hello_code(suite, wrong_key) == "UNAUTHENTICATED"
    rsa_ok = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert await hello_code(suite, rsa_ok) == "welcome"


async def test_origin_allowlist(make_suite: Any) -> None:
    suite = await make_suite(
        edge_env={"ALLOWED_ORIGINS": "https://app.example.com, http://localhost:3000"}
    )
    async with await Client.connect(suite.ws_url, origin="https://app.example.com") as client:
        await client.hello(make_token())
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await Client.connect(suite.ws_url, origin="https://evil.example.net")
    assert refused.value.status == 403
    async with await Client.connect(suite.ws_url) as native:  # no Origin: not a browser
        await native.hello(make_token())


async def test_connection_rate_per_ip(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"CONNECT_RATE": "0.1", "CONNECT_BURST": "2"})
    first, second = await suite.client(), await suite.client()
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await suite.client()
        assert refused.value.status == 429
        await first.hello(make_token())  # the connections already open are unaffected
    finally:
        await first.close()
        await second.close()


async def test_message_rate_per_user_spans_sessions(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"USER_RATE_LIMIT": "0.1", "USER_RATE_BURST": "4"})
    async with await suite.client() as one, await suite.client() as two:
        await one.hello(make_token("u-shared"), client_id="c-1")
        await two.hello(make_token("u-shared"), client_id="c-2")
        for _ in range(2):
            assert (await one.request({"type": "ping"}))["type"] == "pong"
            assert (await two.request({"type": "ping"}))["type"] == "pong"
        limited = await two.request({"type": "ping"})
        assert limited["code"] == "RATE_LIMITED"
    async with await suite.client() as other:
        await other.hello(make_token("u-other"))
        assert (await other.request({"type": "ping"}))["type"] == "pong"


async def admin(
    suite: Suite, method: str, path: str, body: Any = None, token: str | None = ADMIN
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{suite.http_url}{path}", json=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_admin_disconnect_and_revoke(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"ADMIN_TOKEN": ADMIN})
    assert (await admin(suite, "POST", "/admin/disconnect", {"user_id": "x"}, token=None))[0] == 401
    assert (await admin(suite, "POST", "/admin/disconnect", {"user_id": "x"}, token="wrong"))[
        0
    ] == 401
    assert (await admin(suite, "POST", "/admin/disconnect", {"nobody": 1}))[0] == 400
    assert (
        await admin(suite, "POST", "/admin/revoke", {"user_id": "u", "room": "r", "access": "all"})
    )[0] == 400
    async with await suite.client() as mallory, await suite.client() as alice:
        await mallory.hello(make_token("u-mallory"), client_id="c-m")
        await alice.hello(make_token("u-alice"), client_id="c-a")
        await mallory.subscribe("secret-1")
        await mallory.subscribe("public")
        await alice.subscribe("secret-1")

        status, body = await admin(
            suite, "POST", "/admin/revoke", {"user_id": "u-mallory", "room": "secret-*"}
        )
        assert (status, body["subscriptions_ended"]) == (200, 1)
        revoked = await mallory.expect(
            lambda m: m.get("type") == "error" and m.get("room") == "secret-1"
        )
        assert revoked["code"] == "FORBIDDEN"
        assert (await mallory.request({"type": "subscribe", "room": "secret-2"}))[
            "code"
        ] == "FORBIDDEN"
        assert (await mallory.push("public", [change(1, "k", a=1)]))["type"] == "ack"
        assert (await alice.push("secret-1", [change(1, "k", a=1)]))["type"] == "ack"

        await admin(
            suite,
            "POST",
            "/admin/revoke",
            {"user_id": "u-mallory", "room": "public", "access": "write"},
        )
        assert (await mallory.push("public", [change(2, "k", a=2)]))["code"] == "FORBIDDEN"
        status, listing = await admin(suite, "GET", "/admin/revocations")
        assert len(listing["revocations"]) == 2
        status, body = await admin(
            suite,
            "DELETE",
            "/admin/revoke",
            {"user_id": "u-mallory", "room": "public", "access": "write"},
        )
        assert body == {"removed": True}
        assert (await mallory.push("public", [change(2, "k", a=2)]))["type"] == "ack"

        status, body = await admin(suite, "POST", "/admin/disconnect", {"user_id": "u-mallory"})
        assert (status, body) == (200, {"disconnected": 1})
        assert await mallory.closed() == 4003
        assert (await alice.request({"type": "ping"}))["type"] == "pong"


async def test_admin_api_is_off_without_a_token(suite: Suite) -> None:
    status, body = await admin(suite, "POST", "/admin/disconnect", {"user_id": "x"}, token=None)
    assert status == 403
    assert "ADMIN_TOKEN" in body["message"]


class StalledClient:
    """A raw-socket WebSocket client that sends a few frames and then never reads."""

    def __init__(self, port: int) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(1)
        assert response.startswith(b"HTTP/1.1 101"), response

    def send_text(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        assert len(payload) < 65536
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        header = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big")
        self.sock.sendall(header + mask + masked)

    def close_code(self) -> int:
        """Read everything the server sent; the code of its close frame."""
        self.sock.settimeout(30)
        data = b""
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        offset = 0
        while offset < len(data):
            opcode, length = data[offset] & 0x0F, data[offset + 1] & 0x7F
            offset += 2
            if length == 126:
                length = int.from_bytes(data[offset : offset + 2], "big")
                offset += 2
            elif length == 127:
                length = int.from_bytes(data[offset : offset + 8], "big")
                offset += 8
            if opcode == 0x8:
                return int.from_bytes(data[offset : offset + 2], "big")
            offset += length
        raise AssertionError("no close frame")


async def test_slow_consumer_is_closed_without_slowing_the_room(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"SEND_QUEUE_SIZE": "8"})
    edge = suite.extra["edge"]
    # Blocking socket calls run in a thread: the server shares this event loop.
    slow = await asyncio.to_thread(StalledClient, int(suite.http_url.rsplit(":", 1)[1]))
    await asyncio.to_thread(
        slow.send_text,
        {"type": "hello", "id": 1, "client_id": "c-s", "token": make_token("u-slow")},
    )
    await asyncio.to_thread(slow.send_text, {"type": "subscribe", "id": 2, "room": "busy"})
    async with await suite.client() as writer, await suite.client() as reader:
        await writer.hello(make_token("u-w"), client_id="c-w")
        await reader.hello(make_token("u-r"), client_id="c-r")
        await writer.subscribe("busy")
        await reader.subscribe("busy")
        stalled = next(
            s for s in edge.sessions.values() if s.identity and s.identity.user_id == "u-slow"
        )
        replica = Replica()
        total = 150  # 15 MB: more than any loopback socket buffers for the stalled peer
        reading = asyncio.create_task(sync_until(reader, replica, total, timeout=60))
        blob = "x" * 100_000
        for n in range(1, total + 1):
            # Each change rewrites the blob, so each patch carries 100 kB.
            ack = await writer.push("busy", [change(n, f"k{n % 3}", blob=f"{n}{blob}")])
            assert ack["type"] == "ack"
        # The reading subscriber got every change, in order; the stalled one was cut off.
        await reading
        assert replica.seqs == list(range(1, total + 1))
        assert stalled.close_code == 4009
    assert await asyncio.to_thread(slow.close_code) == 4009


async def test_drain_then_resume_on_another_edge_loses_nothing(make_suite: Any) -> None:
    from accord.edge.app import serve
    from accord.edge.settings import Settings

    suite = await make_suite()
    first = suite.extra["edge"]
    env = {
        "WS_ADDR": "127.0.0.1:0",
        "SYNC_ADDR": first.edge.settings.sync_target,
        "PRESENCE_ADDR": first.edge.settings.presence_target,
        "JWT_SECRET": first.edge.settings.identity.secret,
        **UNPROTECTED_GRPC,
    }
    async with serve(Settings.from_env(env)) as second:
        client = await suite.client()
        await client.hello(make_token(), client_id="c-roam")
        await client.subscribe("roam")
        acked: dict[int, int] = {}
        sent = 0
        drain = None
        for n in range(1, 41):
            await client.send(
                {"type": "push", "id": n, "room": "roam", "changes": [change(n, f"k{n}", n=n)]}
            )
            sent = n
            if n == 20:
                drain = asyncio.create_task(first.drain())
                break
        code = None
        while code is None:
            try:
                message = await client.recv()
            except Exception:
                code = client.ws.close_code
                break
            if message.get("type") == "ack":
                acked[message["results"][0]["client_seq"]] = message["results"][0]["seq"]
        assert code == 1012
        assert drain is not None
        await drain
        await client.close()

        resumed = await Client.connect(f"ws://127.0.0.1:{second.port}/ws")
        async with resumed:
            await resumed.hello(make_token(), client_id="c-roam")
            await resumed.subscribe("roam")
            # Re-push everything not acknowledged, then the rest: retries are safe.
            for n in range(1, 41):
                if n in acked:
                    continue
                reply = await resumed.push("roam", [change(n, f"k{n}", n=n)])
                assert reply["results"][0]["status"] in ("applied", "duplicate")
            head = (await resumed.request({"type": "subscribe", "room": "roam-check"}))["head"]
            assert head == 0
            final = Replica()
            watcher = await Client.connect(f"ws://127.0.0.1:{second.port}/ws")
            async with watcher:
                await watcher.hello(make_token("u-w"), client_id="c-w")
                subscribed = await watcher.subscribe("roam")
                assert subscribed["head"] == 40
                await sync_until(watcher, final, 40)
            assert final.view("c") == {f"k{n}": {"n": n} for n in range(1, 41)}
        assert sent == 20


async def test_gap_beyond_the_compacted_log_resyncs_subscribers(
    make_suite: Any, caplog: pytest.LogCaptureFixture
) -> None:
    suite = await make_suite(sync_env={"LOG_RETENTION": "10"})
    async with await suite.client() as writer, await suite.client() as reader:
        await writer.hello(make_token("u-w"), client_id="c-w")
        await reader.hello(make_token("u-r"), client_id="c-r")
        await writer.subscribe("compact")
        await reader.subscribe("compact")
        replica = Replica()
        for n in range(1, 41):
            await writer.push("compact", [change(n, f"k{n % 5}", n=n)])
        await sync_until(reader, replica, 40)
        # Pretend this edge missed changes long gone from the log: the next
        # batch reveals the gap, the backfill gets OUT_OF_RANGE, and the
        # subscribers catch up again from their own positions.
        room = suite.extra["edge"].edge.hub.rooms["compact"]
        room.position = 1
        for n in range(41, 46):
            await writer.push("compact", [change(n, f"k{n % 5}", n=n)])
        await sync_until(reader, replica, 45)
        assert "was compacted; resyncing" in caplog.text
        assert replica.seqs == list(range(1, 46))
        assert replica.view("c") == {f"k{n % 5}": {"n": n} for n in range(41, 46)}
    async with await suite.client() as late:
        await late.hello(make_token("u-l"), client_id="c-l")
        await late.subscribe("compact", since=3)  # older than the retained tail
        snapshot = await late.expect("snapshot")
        assert snapshot["seq"] == 45


async def test_half_sent_requests_are_timed_out(make_suite: Any) -> None:
    suite = await make_suite(edge_env={"REQUEST_HEADER_TIMEOUT": "0.5", "HELLO_TIMEOUT": "5"})
    port = int(suite.http_url.rsplit(":", 1)[1])
    partial = [
        b"GET /ws HTT",  # half a request line
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # headers never finished
        (
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        ),  # an upgrade that never completes
    ]
    for data in partial:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(data)
        await writer.drain()
        # The server closes the connection: the read ends (EOF) well within the bound.
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert time.monotonic() - started < 2.0
        writer.close()
    async with aiohttp.ClientSession() as http, http.get(f"{suite.http_url}/health") as response:
        assert response.status == 200
    # A WebSocket session outlives the header timeout.
    async with await suite.client() as client:
        await client.hello(make_token())
        await client.idle(1.0)
        assert (await client.request({"type": "ping"}))["type"] == "pong"


def _status_kb(pid: int, field: str) -> int:
    """A field of /proc/<pid>/status in kB (VmRSS: resident now; VmHWM: the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


async def test_clients_that_never_read_cannot_grow_the_edge(make_suite: Any) -> None:
    import sys

    from tests.support.ports import free_port
    from tests.support.suite import wait_ready

    suite = await make_suite()
    settings = suite.extra["edge"].edge.settings
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "ALLOW_"))},
        "WS_ADDR": f"127.0.0.1:{port}",
        "SYNC_ADDR": settings.sync_target,
        "PRESENCE_ADDR": settings.presence_target,
        "JWT_SECRET": settings.identity.secret or "",
        "SEND_QUEUE_BYTES": str(4 * 1024 * 1024),
        "LOG_LEVEL": "warning",
        **UNPROTECTED_GRPC,
    }
    edge = await asyncio.create_subprocess_exec(sys.executable, "-m", "accord.edge", env=env)
    try:
        await wait_ready(f"http://127.0.0.1:{port}")
        stalled = []
        for n in range(2):
            client = await asyncio.to_thread(StalledClient, port)
            token = make_token(f"u-slow-{n}")
            await asyncio.to_thread(
                client.send_text, {"type": "hello", "id": 1, "client_id": "c-s", "token": token}
            )
            await asyncio.to_thread(client.send_text, {"type": "subscribe", "id": 2, "room": "big"})
            stalled.append(client)
        async with (
            await suite.client() as writer,
            await Client.connect(f"ws://127.0.0.1:{port}/ws") as reader,
        ):
            await writer.hello(make_token("u-w"), client_id="c-w")
            await reader.hello(make_token("u-r"), client_id="c-r")
            await writer.subscribe("big")
            await reader.subscribe("big")
            baseline_kb = _status_kb(edge.pid, "VmRSS")
            replica = Replica()
            total = 160  # 160 records of 240 kB: 38 MB to each subscriber
            reading = asyncio.create_task(sync_until(reader, replica, total, timeout=120))
            blob = "y" * 240_000
            for n in range(1, total + 1):
                ack = await writer.push("big", [change(n, f"k{n % 4}", blob=f"{n}{blob}")])
                assert ack["type"] == "ack"
            await reading
            # The well-behaved subscriber got every seq, in order.
            assert replica.seqs == list(range(1, total + 1))
            peak_kb = _status_kb(edge.pid, "VmHWM")
        for client in stalled:
            assert await asyncio.to_thread(client.close_code) == 4009
        # Two stalled clients would have held 2 x 38 MB (the edge grew by 105 MB without a
        # byte bound, 15 MB with it); each is cut once 4 MiB is queued for it.
        growth_mb = (peak_kb - baseline_kb) / 1024
        assert growth_mb < 40, f"the edge grew by {growth_mb:.0f} MB"
    finally:
        edge.terminate()
        await asyncio.wait_for(edge.wait(), 30)

"""Every door of internal gRPC tried: sync and presence with mutual TLS and service tokens
(a CA and certificates made here), the edge dialling them with its own, and callers
without the right credentials refused, counted and logged."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from accord.api.presence.v1 import presence_pb2 as ppb
from accord.api.presence.v1.presence_pb2_grpc import PresenceStub
from accord.api.sync.v1 import sync_pb2 as spb
from accord.api.sync.v1.sync_pb2_grpc import SyncStub
from accord.common.grpc_security import ClientSecurity
from accord.common.grpc_tls import TlsFiles
from accord.common.grpc_tokens import Scope, entry
from accord.common.grpcutil import check_health, create_channel, reason_of
from cryptography import x509
from prometheus_client import REGISTRY

from tests.support.pki import Authority, Leaf
from tests.support.suite import Suite
from tests.support.wsclient import make_token

pytestmark = pytest.mark.e2e

DEADLINE = 5.0
EDGE_TOKEN = "st_edge-0123456789abcdefghijklmnopqrstuvwxyz"
READER_TOKEN = "st_reader-0123456789abcdefghijklmnopqrstuvwxyz"
WRITER_TOKEN = "st_writer-0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class Secured:
    suite: Suite
    ca: Authority
    server: Leaf
    client: Leaf
    tokens_file: Path
    audit_file: Path

    @property
    def sync_target(self) -> str:
        return f"127.0.0.1:{self.suite.extra['sync'].port}"

    @property
    def presence_target(self) -> str:
        return f"127.0.0.1:{self.suite.extra['presence'].port}"

    def tls(self, leaf: Leaf | None = None, ca_file: str | None = None) -> TlsFiles:
        leaf = self.client if leaf is None else leaf
        return TlsFiles(leaf.cert_file, leaf.key_file, ca_file or self.ca.ca_file)

    def security(self, token: str | None, tls: TlsFiles | None = None) -> ClientSecurity:
        return ClientSecurity(tls=tls or self.tls(), token=token, allow_unauthenticated=True)


def write_tokens(path: Path, *items: dict[str, Any]) -> None:
    aside = path.with_name(f".{path.name}.new")
    aside.write_text(json.dumps({"tokens": list(items)}))
    aside.replace(path)


@pytest.fixture
async def secured(make_suite: Any, tmp_path: Path) -> AsyncIterator[Secured]:
    ca = Authority(tmp_path / "pki")
    server = ca.issue("accord-sync")
    client = ca.issue("accord-edge", server=False)
    tokens = tmp_path / "service-tokens.json"
    write_tokens(
        tokens,
        entry("edge", EDGE_TOKEN, [Scope.READ, Scope.WRITE]),
        entry("reader", READER_TOKEN, [Scope.READ]),
        entry("writer", WRITER_TOKEN, [Scope.WRITE]),
    )
    tls = {
        "GRPC_TLS_CERT_FILE": server.cert_file,
        "GRPC_TLS_KEY_FILE": server.key_file,
        "GRPC_TLS_CA_FILE": ca.ca_file,
    }
    servers = {
        **tls,
        "SERVICE_TOKENS_FILE": str(tokens),
        "SERVICE_TOKENS_RELOAD_INTERVAL": "0",
        "AUDIT_LOG": f"file:{tmp_path / 'audit.jsonl'}",
    }
    edge = {
        "GRPC_TLS_CERT_FILE": client.cert_file,
        "GRPC_TLS_KEY_FILE": client.key_file,
        "GRPC_TLS_CA_FILE": ca.ca_file,
        "SERVICE_TOKEN": EDGE_TOKEN,
    }
    suite = await make_suite(grpc_env={}, sync_env=servers, presence_env=servers, edge_env=edge)
    yield Secured(suite, ca, server, client, tokens, tmp_path / "audit.jsonl")


def refused(service: str, reason: str, method: str) -> float:
    value = REGISTRY.get_sample_value(
        f"accord_{service}_grpc_auth_refused_total", {"reason": reason, "method": method}
    )
    return value or 0.0


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def first_reply(call: Any) -> Any:
    """Read what a bidirectional stream sends first, having written nothing: a refused stream
    ends as it opens. (Writing first raced the refusal: a write to a call the server had just
    ended failed in the client as INTERNAL "Failed execute_batch", hiding the status.)"""
    return await call.read()


async def test_the_edge_with_its_token_and_certificates_syncs_end_to_end(
    secured: Secured,
) -> None:
    async with await secured.suite.client() as alice, await secured.suite.client() as bob:
        await alice.hello(make_token("alice"), client_id="c-a")
        await bob.hello(make_token("bob"), client_id="c-b")
        await alice.subscribe("room-tls", presence={"name": "alice"})
        await bob.subscribe("room-tls")
        change = {"client_seq": 1, "collection": "todos", "key": "t-1"}
        ack = await alice.push(
            "room-tls", [{**change, "op": {"kind": "set", "fields": {"title": "milk"}}}]
        )
        assert ack["type"] == "ack", ack
        seen = await bob.expect(lambda m: m.get("type") == "changes")
        assert seen["changes"][0]["key"] == "t-1"
        joined = await bob.expect(lambda m: m.get("type") == "presence")
        assert joined["room"] == "room-tls"


async def test_a_call_without_a_token_is_unauthenticated_counted_and_logged(
    secured: Secured, caplog: pytest.LogCaptureFixture
) -> None:
    before_sync = refused("sync", "missing_token", "Head")
    before_presence = refused("presence", "missing_token", "List")
    caplog.set_level(logging.WARNING, logger="accord.common.grpc_auth")
    security = secured.security(None)
    async with (
        create_channel(secured.sync_target, security) as sync_channel,
        create_channel(secured.presence_target, security) as presence_channel,
    ):
        error = await rpc_error(
            SyncStub(sync_channel).Head(spb.HeadRequest(room="r"), timeout=DEADLINE)
        )
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert reason_of(error) == "missing_token"
        listed = PresenceStub(presence_channel).List(ppb.ListRequest(room="r"), timeout=DEADLINE)
        error = await rpc_error(listed)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused("sync", "missing_token", "Head") == before_sync + 1
    assert refused("presence", "missing_token", "List") == before_presence + 1
    events = [r for r in caplog.records if getattr(r, "event", None) == "auth_refused"]
    assert {(r.service, r.method, r.reason) for r in events} >= {  # type: ignore[attr-defined]
        ("sync", "/accord.sync.v1.Sync/Head", "missing_token"),
        ("presence", "/accord.presence.v1.Presence/List", "missing_token"),
    }
    audited = [json.loads(line) for line in secured.audit_file.read_text().splitlines()]
    refusals = {
        (e["service"], e["method"], e["reason"]) for e in audited if e["event"] == "caller.refused"
    }
    assert refusals >= {
        ("sync", "/accord.sync.v1.Sync/Head", "missing_token"),
        ("presence", "/accord.presence.v1.Presence/List", "missing_token"),
    }
    assert all(e["ip"] and e["time"] for e in audited if e["event"] == "caller.refused")


async def test_an_unknown_token_is_unauthenticated_and_never_logged(
    secured: Secured, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "st_forged-0123456789abcdefghijklmnopqrstuvwxyz"
    before = refused("sync", "invalid_token", "Head")
    caplog.set_level(logging.DEBUG)
    async with create_channel(secured.sync_target, secured.security(forged)) as channel:
        error = await rpc_error(SyncStub(channel).Head(spb.HeadRequest(room="r"), timeout=DEADLINE))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(error) == "invalid_token"
    assert refused("sync", "invalid_token", "Head") == before + 1
    assert any(getattr(r, "event", None) == "auth_refused" for r in caplog.records)
    for record in caplog.records:
        assert forged not in record.getMessage()
        assert forged not in json.dumps(record.__dict__, default=str)
    audit = secured.audit_file.read_text()
    reasons = [json.loads(line).get("reason") for line in audit.splitlines()]
    assert "invalid_token" in reasons
    assert forged not in audit


async def test_a_token_without_the_scope_is_permission_denied(secured: Secured) -> None:
    before = refused("sync", "missing_scope", "Push")
    async with (
        create_channel(secured.sync_target, secured.security(READER_TOKEN)) as reader,
        create_channel(secured.sync_target, secured.security(WRITER_TOKEN)) as writer,
    ):
        head = await SyncStub(reader).Head(spb.HeadRequest(room="r"), timeout=DEADLINE)
        assert head.head == 0
        push = SyncStub(reader).Push(spb.PushRequest(room="r", user_id="u"), timeout=DEADLINE)
        error = await rpc_error(push)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason_of(error) == "missing_scope"
        # A stream is refused as it opens, before any message.
        stream = SyncStub(writer).Subscribe(timeout=DEADLINE)
        error = await rpc_error(first_reply(stream))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused("sync", "missing_scope", "Push") == before + 1
    assert refused("sync", "missing_scope", "Subscribe") >= 1


async def test_presence_writes_need_the_write_scope_and_watching_the_read_scope(
    secured: Secured,
) -> None:
    async with (
        create_channel(secured.presence_target, secured.security(READER_TOKEN)) as reader,
        create_channel(secured.presence_target, secured.security(WRITER_TOKEN)) as writer,
    ):
        join = PresenceStub(reader).Join(
            ppb.JoinRequest(room="r", peer=ppb.Peer(session_id="s", user_id="u")),
            timeout=DEADLINE,
        )
        assert (await rpc_error(join)).code() == grpc.StatusCode.PERMISSION_DENIED
        await PresenceStub(writer).Join(
            ppb.JoinRequest(room="r", peer=ppb.Peer(session_id="s", user_id="u")),
            timeout=DEADLINE,
        )
        listed = await PresenceStub(reader).List(ppb.ListRequest(room="r"), timeout=DEADLINE)
        assert [p.session_id for p in listed.peers] == ["s"]
        watch = PresenceStub(writer).Watch(timeout=DEADLINE)
        error = await rpc_error(first_reply(watch))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused("presence", "missing_scope", "Join") >= 1
    assert refused("presence", "missing_scope", "Watch") >= 1


async def test_health_checks_stay_open_without_a_token(secured: Secured) -> None:
    async with create_channel(secured.sync_target, secured.security(None)) as channel:
        assert await check_health(channel, "accord.sync.v1.Sync", timeout=DEADLINE)


async def test_a_client_certificate_from_another_ca_fails_the_handshake(
    secured: Secured, tmp_path: Path
) -> None:
    foreign = Authority(tmp_path / "foreign", "another-ca")
    stranger = foreign.issue("stranger", server=False)
    for tls in (
        secured.tls(stranger),  # signed by a CA the server does not trust
        TlsFiles(None, None, secured.ca.ca_file),  # no client certificate at all
    ):
        async with create_channel(
            secured.sync_target, secured.security(EDGE_TOKEN, tls)
        ) as channel:
            call = SyncStub(channel).Head(spb.HeadRequest(room="r"), timeout=2.0)
            assert (await rpc_error(call)).code() == grpc.StatusCode.UNAVAILABLE
            assert not await check_health(channel, timeout=2.0)


async def test_a_client_that_does_not_trust_the_server_refuses_it(
    secured: Secured, tmp_path: Path
) -> None:
    foreign = Authority(tmp_path / "foreign", "another-ca")
    security = secured.security(EDGE_TOKEN, secured.tls(ca_file=foreign.ca_file))
    async with create_channel(secured.sync_target, security) as channel:
        call = SyncStub(channel).Head(spb.HeadRequest(room="r"), timeout=2.0)
        assert (await rpc_error(call)).code() == grpc.StatusCode.UNAVAILABLE


async def test_a_plaintext_client_fails_against_the_tls_server(secured: Secured) -> None:
    plaintext = ClientSecurity.unprotected(EDGE_TOKEN)
    async with create_channel(secured.sync_target, plaintext) as channel:
        call = SyncStub(channel).Head(spb.HeadRequest(room="r"), timeout=2.0)
        assert (await rpc_error(call)).code() == grpc.StatusCode.UNAVAILABLE


def served_serial(port: int, secured: Secured) -> int:
    """The serial of the certificate a new TLS connection to ``port`` is shown."""
    context = ssl.create_default_context(cafile=secured.ca.ca_file)
    context.load_cert_chain(secured.client.cert_file, secured.client.key_file)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


async def test_a_rotated_server_certificate_is_served_to_new_connections(
    secured: Secured,
) -> None:
    port = secured.suite.extra["sync"].port
    assert await asyncio.to_thread(served_serial, port, secured) == secured.server.serial
    async with create_channel(secured.sync_target, secured.security(EDGE_TOKEN)) as before:
        await SyncStub(before).Head(spb.HeadRequest(room="r"), timeout=DEADLINE)
        renewed = secured.ca.issue(
            "accord-sync",
            cert_file=secured.server.cert_file,
            key_file=secured.server.key_file,
        )
        async with asyncio.timeout(10):
            while await asyncio.to_thread(served_serial, port, secured) != renewed.serial:  # noqa: ASYNC110 - polling a reload
                await asyncio.sleep(0.2)
        async with create_channel(secured.sync_target, secured.security(EDGE_TOKEN)) as after:
            await SyncStub(after).Head(spb.HeadRequest(room="r"), timeout=DEADLINE)
        # The connection made before the rotation goes on.
        await SyncStub(before).Head(spb.HeadRequest(room="r"), timeout=DEADLINE)


async def test_a_client_picks_up_its_rotated_certificate_without_restart(
    secured: Secured, tmp_path: Path
) -> None:
    mine = secured.ca.issue("rotating-client", server=False)
    foreign = Authority(tmp_path / "foreign", "another-ca")
    security = secured.security(EDGE_TOKEN, secured.tls(mine))
    async with create_channel(secured.sync_target, security) as channel:
        stub = SyncStub(channel)
        await stub.Head(spb.HeadRequest(room="r"), timeout=DEADLINE)
        # Files replaced by ones the server does not trust: the next calls use them.
        foreign.issue(
            "rotating-client", server=False, cert_file=mine.cert_file, key_file=mine.key_file
        )
        async with asyncio.timeout(10):
            while True:
                try:
                    await stub.Head(spb.HeadRequest(room="r"), timeout=1.0)
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.UNAVAILABLE
                    break
                await asyncio.sleep(0.2)
        # And renewed by the right CA again: calls succeed, the channel object unchanged.
        secured.ca.issue(
            "rotating-client", server=False, cert_file=mine.cert_file, key_file=mine.key_file
        )
        async with asyncio.timeout(10):
            while True:
                try:
                    await stub.Head(spb.HeadRequest(room="r"), timeout=1.0)
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.2)


async def test_a_token_removed_from_the_file_is_refused_without_restart(
    secured: Secured,
) -> None:
    async with create_channel(secured.sync_target, secured.security(READER_TOKEN)) as channel:
        stub = SyncStub(channel)
        await stub.Head(spb.HeadRequest(room="r"), timeout=DEADLINE)
        write_tokens(secured.tokens_file, entry("edge", EDGE_TOKEN, [Scope.READ, Scope.WRITE]))
        async with asyncio.timeout(10):
            while True:
                try:
                    await stub.Head(spb.HeadRequest(room="r"), timeout=DEADLINE)
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
                    assert reason_of(error) == "invalid_token"
                    break
                await asyncio.sleep(0.1)

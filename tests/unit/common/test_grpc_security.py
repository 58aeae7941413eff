"""gRPC security settings: what is refused, with one line naming the settings, and what loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from accord.common.config import ConfigError
from accord.common.grpc_auth import bearer
from accord.common.grpc_files import WatchedFiles
from accord.common.grpc_security import ClientSecurity, ServerSecurity
from accord.common.grpc_tokens import Scope, TokenRing, entry, hash_token, parse_tokens
from accord.presence.access import SCOPES as PRESENCE_SCOPES
from accord.sync.access import SCOPES as SYNC_SCOPES

from tests.support.pki import Authority

TOKEN = "st_0123456789abcdefghijklmnopqrstuvwxyz"
WRITE_VERBS = ("Push", "Join", "Update", "Leave", "Heartbeat", "Broadcast")


def test_a_server_with_nothing_configured_refuses_naming_both_ways_out() -> None:
    with pytest.raises(ConfigError, match=r"GRPC_TLS_CERT_FILE.*GRPC_ALLOW_PLAINTEXT=true"):
        ServerSecurity.from_env({}).check()
    plaintext = ServerSecurity.from_env({"GRPC_ALLOW_PLAINTEXT": "true"})
    with pytest.raises(ConfigError, match=r"SERVICE_TOKENS_FILE.*GRPC_ALLOW_UNAUTHENTICATED=true"):
        plaintext.check()
    ServerSecurity.unprotected().check()
    assert ServerSecurity.unprotected().describe() == "plaintext, unauthenticated"


def test_a_client_with_nothing_configured_refuses() -> None:
    with pytest.raises(ConfigError, match=r"GRPC_TLS_CA_FILE.*GRPC_ALLOW_PLAINTEXT"):
        ClientSecurity.from_env({}).check()
    with pytest.raises(ConfigError, match=r"SERVICE_TOKEN.*GRPC_ALLOW_UNAUTHENTICATED"):
        ClientSecurity.from_env({"GRPC_ALLOW_PLAINTEXT": "true"}).check()
    ClientSecurity.from_env({"GRPC_ALLOW_PLAINTEXT": "true", "SERVICE_TOKEN": TOKEN}).check()


def test_a_short_service_token_is_refused_and_never_shown() -> None:
    with pytest.raises(ConfigError, match="SERVICE_TOKEN must be at least 32") as raised:
        ClientSecurity.from_env({"SERVICE_TOKEN": "hunter2"})
    assert "hunter2" not in str(raised.value)
    assert TOKEN not in repr(ClientSecurity(token=TOKEN))


def test_tls_files_are_loaded_and_checked(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    leaf, other = ca.issue("sync"), ca.issue("other")
    env = {
        "GRPC_TLS_CERT_FILE": leaf.cert_file,
        "GRPC_TLS_KEY_FILE": leaf.key_file,
        "GRPC_TLS_CA_FILE": ca.ca_file,
        "SERVICE_TOKENS_FILE": str(write_tokens(tmp_path)),
    }
    security = ServerSecurity.from_env(env)
    security.check()
    assert security.describe() == "mutual TLS, service tokens"
    with pytest.raises(ConfigError, match="not a PEM certificate and its private key"):
        ServerSecurity.from_env({**env, "GRPC_TLS_KEY_FILE": other.key_file})
    with pytest.raises(ConfigError, match="GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE go together"):
        ServerSecurity.from_env({"GRPC_TLS_CERT_FILE": leaf.cert_file})
    with pytest.raises(ConfigError, match="GRPC_TLS_CA_FILE='/nowhere' cannot be read"):
        ServerSecurity.from_env({**env, "GRPC_TLS_CA_FILE": "/nowhere"})
    with pytest.raises(ConfigError, match="holds no PEM CA certificate"):
        ServerSecurity.from_env({**env, "GRPC_TLS_CA_FILE": env["SERVICE_TOKENS_FILE"]})
    ca_only = ServerSecurity.from_env({"GRPC_TLS_CA_FILE": ca.ca_file, **unauthenticated()})
    with pytest.raises(ConfigError, match="a server needs both"):
        ca_only.check()
    # A CA alone is a fine client: it verifies the server, presenting no certificate.
    ClientSecurity.from_env({"GRPC_TLS_CA_FILE": ca.ca_file, **unauthenticated()}).check()


def unauthenticated() -> dict[str, str]:
    return {"GRPC_ALLOW_UNAUTHENTICATED": "true"}


def write_tokens(directory: Path, *items: object) -> Path:
    path = directory / "tokens.json"
    default = [entry("edge", TOKEN, [Scope.READ, Scope.WRITE])]
    path.write_text(json.dumps({"tokens": list(items) or default}))
    return path


def test_tokens_and_allowing_unauthenticated_calls_are_exclusive(tmp_path: Path) -> None:
    env = {
        "GRPC_ALLOW_PLAINTEXT": "true",
        "GRPC_ALLOW_UNAUTHENTICATED": "true",
        "SERVICE_TOKENS_FILE": str(write_tokens(tmp_path)),
    }
    with pytest.raises(ConfigError, match="choose one"):
        ServerSecurity.from_env(env).check()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[]", 'must be an object {"tokens": [...]}'),
        ("{", "is not valid JSON"),
        ('{"tokens": [{"name": "a b"}]}', "'name' must be"),
        ('{"tokens": [{"name": "a", "hash": "md5:x"}]}', "'hash' must be sha256:"),
        (
            json.dumps({"tokens": [{"name": "a", "hash": hash_token(TOKEN), "scopes": ["root"]}]}),
            "'scopes' must be a non-empty list",
        ),
        (
            json.dumps(
                {"tokens": [entry("a", TOKEN, [Scope.READ]), entry("b", TOKEN, [Scope.READ])]}
            ),
            "appears twice",
        ),
    ],
)
def test_a_bad_tokens_file_is_one_clear_error(document: str, message: str) -> None:
    with pytest.raises(ConfigError, match="SERVICE_TOKENS_FILE='f'") as raised:
        parse_tokens(document, "f")
    assert message in str(raised.value)


def test_the_ring_follows_its_file_and_keeps_the_last_good_tokens(tmp_path: Path) -> None:
    path = write_tokens(tmp_path)
    ring = TokenRing(str(path), parse_tokens(path.read_text(), str(path)), interval=0)
    found = ring.find(TOKEN)
    assert found is not None and found.name == "edge" and Scope.WRITE in found.scopes
    path.write_text("not json")
    assert ring.find(TOKEN) is not None  # a broken file changes nothing
    other = "st_other-0123456789abcdefghijklmnopqrstuvwxyz"
    write_tokens(tmp_path, entry("reader", other, [Scope.READ]))
    assert ring.find(TOKEN) is None
    reader = ring.find(other)
    assert reader is not None and reader.scopes == frozenset({Scope.READ})


def test_watched_files_report_each_change_once(tmp_path: Path) -> None:
    path = tmp_path / "cert.pem"
    path.write_text("one")
    watch = WatchedFiles((str(path),), interval=0)
    assert not watch.changed()
    aside = tmp_path / "new"
    aside.write_text("two!")
    aside.replace(path)
    assert watch.changed()
    assert not watch.changed()


@pytest.mark.parametrize(
    ("metadata", "token"),
    [
        ((("authorization", f"Bearer {TOKEN}"),), TOKEN),
        ((("authorization", f"bearer  {TOKEN} "),), TOKEN),
        ((("authorization", f"Basic {TOKEN}"),), None),
        ((("authorization", "Bearer "),), None),
        ((("x-other", "1"),), None),
        (None, None),
    ],
)
def test_bearer_reads_only_a_bearer_authorization(metadata: object, token: str | None) -> None:
    assert bearer(metadata) == token


@pytest.mark.parametrize(
    ("scopes", "module"),
    [
        (SYNC_SCOPES, "accord.api.sync.v1.sync_pb2"),
        (PRESENCE_SCOPES, "accord.api.presence.v1.presence_pb2"),
    ],
)
def test_every_rpc_has_its_scope_decided(scopes: dict[str, Scope], module: str) -> None:
    import importlib

    descriptor = importlib.import_module(module).DESCRIPTOR
    methods = {
        f"/{service.full_name}/{method.name}"
        for service in descriptor.services_by_name.values()
        for method in service.methods
    }
    assert set(scopes) == methods
    for method, scope in scopes.items():
        service, verb = method.rsplit("/", 1)
        if service.endswith(".Webhooks"):  # the operators' service
            assert scope == Scope.ADMIN, method
            continue
        assert scope == (Scope.WRITE if verb.startswith(WRITE_VERBS) else Scope.READ), method

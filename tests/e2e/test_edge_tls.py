"""TLS on the edge's own port: wss:// and https:// with a CA made here, rotation, refusals."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from accord.common.config import ConfigError
from accord.edge.settings import Settings
from accord.edge.tls import TlsSettings, server_context
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.edges import start_edge, urls
from tests.support.wsclient import SECRET, Client, make_token

pytestmark = pytest.mark.e2e


class Authority:
    """A self-signed CA that issues server certificates for 127.0.0.1."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Accord test CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, cert_file: Path, key_file: Path, common_name: str) -> x509.Certificate:
        import ipaddress

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        # Key first, then the certificate, as a rotation that replaces both files does.
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.pem().decode())
        return context


HANDSHAKE, ALERT, PROTOCOL_VERSION = 0x16, 0x15, 70


def _ext(kind: int, data: bytes) -> bytes:
    return kind.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def client_hello(version: tuple[int, int]) -> bytes:
    """A minimal ClientHello for ``version`` (no supported_versions: the legacy field decides)."""
    suites = bytes([0xC0, 0x2B, 0xC0, 0x09])  # ECDHE-ECDSA with AES-128 (GCM, CBC)
    extensions = (
        _ext(0x000A, bytes([0, 2, 0x00, 0x17]))  # supported_groups: secp256r1
        + _ext(0x000B, bytes([1, 0]))  # ec_point_formats: uncompressed
        + _ext(0x000D, bytes([0, 2, 0x04, 0x03]))  # signature_algorithms: ecdsa_secp256r1_sha256
    )
    body = (
        bytes(version)
        + bytes(32)  # random
        + b"\x00"  # session id
        + len(suites).to_bytes(2, "big")
        + suites
        + b"\x01\x00"  # compression: null
        + len(extensions).to_bytes(2, "big")
        + extensions
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return bytes([HANDSHAKE, 3, 1]) + len(handshake).to_bytes(2, "big") + handshake


async def raw_hello(port: int, version: tuple[int, int]) -> tuple[int, int] | None:
    """The first record's type and its second byte of payload (an alert's description);
    None when the server closes the connection without a word."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(client_hello(version))
        await writer.drain()
        try:
            header = await asyncio.wait_for(reader.readexactly(5), 10)
            payload = await asyncio.wait_for(reader.readexactly(2), 10)
        except asyncio.IncompleteReadError:
            return None
        return header[0], payload[1]
    finally:
        writer.close()


@pytest.fixture
def authority() -> Authority:
    return Authority()


async def presented(port: int, context: ssl.SSLContext) -> tuple[x509.Certificate, str]:
    """The certificate a new TLS connection to ``port`` is shown, and the TLS version."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der), str(tls.version())
    finally:
        writer.close()
        await writer.wait_closed()


async def test_wss_and_https_with_rotation(
    make_suite: Any, authority: Authority, tmp_path: Path
) -> None:
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    first = authority.issue(cert_file, key_file, "edge-one")
    suite = await make_suite()
    client_tls = authority.client_context()
    env = {
        "TLS_CERT_FILE": str(cert_file),
        "TLS_KEY_FILE": str(key_file),
        "TLS_RELOAD_INTERVAL": "0.1",
    }
    async with AsyncExitStack() as stack:
        edge = await start_edge(stack, suite, env, client_tls)
        wss, https = urls(edge, tls=True)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{https}/ready", ssl=client_tls) as ready,
        ):
            assert ready.status == 200
            assert (await ready.json())["ready"] is True
        async with await Client.connect(wss, ssl=client_tls) as client:
            welcome = await client.hello(make_token("u-tls"))
            assert welcome["user_id"] == "u-tls"
            cert, version = await presented(edge.port, client_tls)
            assert cert.serial_number == first.serial_number
            assert version in ("TLSv1.2", "TLSv1.3")

            # Plain WebSocket and plain HTTP on the TLS port get nowhere.
            plain_ws, plain_http = urls(edge)
            with pytest.raises((aiohttp.ClientError, ConnectionError)):
                await Client.connect(plain_ws)
            with pytest.raises((aiohttp.ClientError, ConnectionError)):
                async with aiohttp.ClientSession() as http, http.get(f"{plain_http}/ready"):
                    pass
            # A client that offers nothing newer than TLS 1.1 is refused (an alert, or the
            # connection closed, depending on OpenSSL's build); the same hello offering
            # TLS 1.2 gets a ServerHello.
            assert await raw_hello(edge.port, (3, 2)) in ((ALERT, PROTOCOL_VERSION), None)
            assert (await raw_hello(edge.port, (3, 3)) or (None,))[0] == HANDSHAKE

            # Rotation: new files, and the next handshake presents the new certificate.
            second = authority.issue(cert_file, key_file, "edge-two")
            deadline = time.monotonic() + 10
            while (await presented(edge.port, client_tls))[0].serial_number != second.serial_number:
                assert time.monotonic() < deadline, "the rotated certificate was never presented"
                await asyncio.sleep(0.1)
            # The session opened before the rotation carries on.
            assert (await client.request({"type": "ping"}))["type"] == "pong"
        async with await Client.connect(wss, ssl=client_tls) as after:
            assert (await after.hello(make_token("u-tls")))["type"] == "welcome"

        # A half-written rotation (a key that does not match) keeps the last good pair.
        other_cert, other_key = tmp_path / "other.crt", tmp_path / "other.key"
        authority.issue(other_cert, other_key, "edge-three")
        key_file.write_bytes(other_key.read_bytes())
        await asyncio.sleep(0.5)
        assert (await presented(edge.port, client_tls))[0].serial_number == second.serial_number


def _env(**tls: str) -> dict[str, str]:
    return {"JWT_SECRET": SECRET, **tls}


def test_bad_pairs_stop_start_up(authority: Authority, tmp_path: Path) -> None:
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    authority.issue(cert_file, key_file, "edge")
    other_cert, other_key = tmp_path / "other.crt", tmp_path / "other.key"
    authority.issue(other_cert, other_key, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = {
        "without TLS_KEY_FILE": _env(TLS_CERT_FILE=str(cert_file)),
        "without TLS_CERT_FILE": _env(TLS_KEY_FILE=str(key_file)),
        "not a readable file": _env(
            TLS_CERT_FILE=str(tmp_path / "missing.crt"), TLS_KEY_FILE=str(key_file)
        ),
        "do not load": _env(TLS_CERT_FILE=str(garbage), TLS_KEY_FILE=str(key_file)),
    }
    for expected, env in cases.items():
        with pytest.raises(ConfigError, match=expected):
            Settings.from_env(env)
    with pytest.raises(ConfigError, match="do not load"):
        Settings.from_env(_env(TLS_CERT_FILE=str(cert_file), TLS_KEY_FILE=str(other_key)))
    good = Settings.from_env(_env(TLS_CERT_FILE=str(cert_file), TLS_KEY_FILE=str(key_file)))
    assert good.tls == TlsSettings(str(cert_file), str(key_file))
    assert server_context(good.tls).minimum_version == ssl.TLSVersion.TLSv1_2

    # As a process: exit 2 and one line naming the setting.
    result = subprocess.run(
        [sys.executable, "-m", "accord.edge"],
        env={
            "PATH": "/usr/bin:/bin",
            **_env(TLS_CERT_FILE=str(garbage), TLS_KEY_FILE=str(key_file)),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "TLS_CERT_FILE" in lines[0], result.stderr

"""TLS for gRPC: the PEM files (``GRPC_TLS_CERT_FILE``, ``GRPC_TLS_KEY_FILE``,
``GRPC_TLS_CA_FILE``), server credentials that follow them as they rotate, and
channel credentials.

With a CA the TLS is mutual: a server requires a client certificate signed by
that CA, and a client verifies the server against it (without one, against the
system's roots). A server reads its files again when they change, at the next
handshake after the change: new connections get the new certificate, live ones
keep theirs until they end (``grpc.max_connection_age_ms`` bounds that). Files
that do not load (a key that does not match its certificate, half a rotation)
leave the last good ones in force and are logged once.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

import grpc
from accord.common.config import ConfigError, Env, get_optional
from accord.common.grpc_files import WatchedFiles, read_bytes

log = logging.getLogger(__name__)

CERT, KEY, CA = "GRPC_TLS_CERT_FILE", "GRPC_TLS_KEY_FILE", "GRPC_TLS_CA_FILE"


@dataclass(frozen=True)
class TlsMaterial:
    cert: bytes | None
    key: bytes | None
    ca: bytes | None


@dataclass(frozen=True)
class TlsFiles:
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None

    @property
    def mutual(self) -> bool:
        return self.ca_file is not None

    @property
    def has_identity(self) -> bool:
        return self.cert_file is not None and self.key_file is not None

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p for p in (self.cert_file, self.key_file, self.ca_file) if p is not None)

    @classmethod
    def from_env(cls, env: Env) -> TlsFiles | None:
        """The files named in ``env``, loaded once to check them; None when none is named."""
        cert, key, ca = get_optional(env, CERT), get_optional(env, KEY), get_optional(env, CA)
        if cert is None and key is None and ca is None:
            return None
        if (cert is None) != (key is None):
            raise ConfigError(f"{CERT} and {KEY} go together: set both or neither")
        files = cls(cert, key, ca)
        files.load()
        return files

    def load(self) -> TlsMaterial:
        """The files' PEM content, checked; ``ConfigError`` naming the setting that is wrong."""
        cert = read_bytes(CERT, self.cert_file) if self.cert_file else None
        key = read_bytes(KEY, self.key_file) if self.key_file else None
        ca = read_bytes(CA, self.ca_file) if self.ca_file else None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.cert_file and self.key_file:
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except (ssl.SSLError, OSError) as error:
                raise ConfigError(
                    f"{CERT}={self.cert_file!r} and {KEY}={self.key_file!r} are not a PEM "
                    f"certificate and its private key: {error}"
                ) from None
        if ca is not None:
            try:
                context.load_verify_locations(cadata=ca.decode("ascii"))
            except (ssl.SSLError, ValueError) as error:
                raise ConfigError(
                    f"{CA}={self.ca_file!r} holds no PEM CA certificate: {error}"
                ) from None
        return TlsMaterial(cert, key, ca)


def _server_config(material: TlsMaterial) -> Any:
    assert material.key is not None and material.cert is not None
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.cert)], root_certificates=material.ca
    )


def server_credentials(files: TlsFiles, interval: float = 1.0) -> grpc.ServerCredentials:
    """Credentials that load ``files`` again, at a handshake, when they have changed
    (looked at most every ``interval`` seconds)."""
    if not files.has_identity:
        raise ConfigError(f"a gRPC server needs {CERT} and {KEY} (a CA alone is for clients)")
    watch = WatchedFiles(files.paths, interval)
    initial = files.load()

    def fetch() -> Any:
        # Called by gRPC at each handshake; None keeps the configuration in force.
        if not watch.changed():
            return None
        try:
            material = files.load()
        except ConfigError as error:
            log.warning(
                "gRPC TLS files not reloaded, the last good ones stay: %s",
                error,
                extra={"event": "tls_reload_failed"},
            )
            return None
        log.info("gRPC TLS certificate reloaded", extra={"event": "tls_reloaded"})
        return _server_config(material)

    return grpc.dynamic_ssl_server_credentials(
        _server_config(initial), fetch, require_client_authentication=files.mutual
    )


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """Credentials of the files as they are now (a channel keeps them: see grpc_channel)."""
    material = files.load()
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca,
        private_key=material.key,
        certificate_chain=material.cert,
    )

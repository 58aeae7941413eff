"""TLS on the edge's own port: ``TLS_CERT_FILE`` / ``TLS_KEY_FILE`` serve ``wss://`` and ``https://``.

One ``ssl.SSLContext`` (TLS 1.2 and later) serves every connection. ``CertReloader``
checks the two files every ``TLS_RELOAD_INTERVAL`` seconds and, when either changed
(cert-manager or another tool rotated them), loads the new chain into the SAME
context: the handshakes after that present the new certificate, the connections
already open keep theirs. A pair that does not load (a half-written rotation, a
key that does not match) is logged and the previous one stays in force; it is
tried again once the files change again.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from accord.common import config
from accord.common.config import ConfigError, Env
from accord.common.tasks import repeating

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsSettings:
    cert_file: str
    key_file: str
    reload_interval: float = 5.0

    @classmethod
    def from_env(cls, env: Env) -> TlsSettings | None:
        cert = config.get_optional(env, "TLS_CERT_FILE")
        key = config.get_optional(env, "TLS_KEY_FILE")
        if cert is None and key is None:
            return None
        if cert is None or key is None:
            given, missing = ("TLS_CERT_FILE", "TLS_KEY_FILE")
            if cert is None:
                given, missing = missing, given
            raise ConfigError(f"{given} is set without {missing}: set both or neither")
        settings = cls(
            cert,
            key,
            config.get_float(env, "TLS_RELOAD_INTERVAL", 5.0, minimum=0.1, maximum=3600),
        )
        server_context(settings)  # a pair that does not load stops start-up here
        return settings


def _load(context: ssl.SSLContext, settings: TlsSettings) -> None:
    for name, path in (("TLS_CERT_FILE", settings.cert_file), ("TLS_KEY_FILE", settings.key_file)):
        if not os.path.isfile(path):
            raise ConfigError(f"{name}={path!r} is not a readable file")
    try:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    except ssl.SSLError as error:
        reason = error.reason or str(error)
        raise ConfigError(
            f"TLS_CERT_FILE={settings.cert_file!r} and TLS_KEY_FILE={settings.key_file!r}"
            f" do not load as a PEM certificate chain and its private key ({reason})"
        ) from None
    except OSError as error:
        raise ConfigError(
            f"TLS_CERT_FILE/TLS_KEY_FILE cannot be read: {error.strerror or error}"
        ) from None


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """A server context with the configured pair loaded; raises ``ConfigError``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    _load(context, settings)
    return context


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class CertReloader:
    """Reloads the certificate pair into ``context`` when the files change."""

    def __init__(self, context: ssl.SSLContext, settings: TlsSettings) -> None:
        self.context = context
        self._settings = settings
        self._seen = self._stamps()

    def _stamps(self) -> tuple[object, object]:
        return _stamp(self._settings.cert_file), _stamp(self._settings.key_file)

    def check(self) -> bool:
        """Reload if either file changed since the last look; True when a new pair is in force."""
        stamps = self._stamps()
        if stamps == self._seen:
            return False
        self._seen = stamps
        try:
            # Checked on a scratch context first: a pair that fails half-way through
            # ``load_cert_chain`` could leave the serving context with no usable key.
            server_context(self._settings)
            _load(self.context, self._settings)
        except ConfigError as error:
            log.error("TLS certificate not reloaded (the previous one stays): %s", error)
            return False
        log.info("TLS certificate reloaded from %s", self._settings.cert_file)
        return True

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[CertReloader]:
        async with repeating(self._settings.reload_interval, self.check, "tls-reload"):
            yield self

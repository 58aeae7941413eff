"""How a gRPC server or client protects its traffic: TLS files, service tokens, and the two
explicit permissions to go without (``GRPC_ALLOW_PLAINTEXT``, ``GRPC_ALLOW_UNAUTHENTICATED``).

Secure by default: a server without TLS files refuses to start unless
plaintext is allowed, and one without ``SERVICE_TOKENS_FILE`` unless
unauthenticated calls are allowed; a client (the edge) likewise without TLS
files or its ``SERVICE_TOKEN``. ``accord dev`` allows both on loopback.
``from_env`` checks the values it is given (files that load, tokens that
parse); ``check``, called as a service starts to serve (and by ``accord dev``
up front), refuses what is missing, with one line naming the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accord.common import config
from accord.common.config import ConfigError, Env
from accord.common.grpc_tls import CA, CERT, KEY, TlsFiles
from accord.common.grpc_tokens import SETTING as TOKENS_FILE
from accord.common.grpc_tokens import ServiceToken, check_token, read_tokens

ALLOW_PLAINTEXT = "GRPC_ALLOW_PLAINTEXT"
ALLOW_UNAUTHENTICATED = "GRPC_ALLOW_UNAUTHENTICATED"
TOKEN = "SERVICE_TOKEN"
SERVER_NAME = "GRPC_TLS_SERVER_NAME"
DOCS = 'docs/operations.md "Securing internal traffic"'


@dataclass(frozen=True)
class ServerSecurity:
    tls: TlsFiles | None = None
    tokens_file: str | None = None
    tokens: tuple[ServiceToken, ...] = ()
    """The tokens of ``tokens_file`` at start-up (a file that does not parse stops start-up)."""
    tokens_reload_interval: float = 1.0
    allow_plaintext: bool = False
    allow_unauthenticated: bool = False

    @classmethod
    def unprotected(cls) -> ServerSecurity:
        """Plaintext and no caller authentication: only for loopback (tests, ``accord dev``)."""
        return cls(allow_plaintext=True, allow_unauthenticated=True)

    @property
    def authenticates(self) -> bool:
        return self.tokens_file is not None

    def describe(self) -> str:
        """For the start-up log line: ``mutual TLS, service tokens`` and the like."""
        tls = "plaintext" if self.tls is None else "mutual TLS" if self.tls.mutual else "TLS"
        return f"{tls}, {'service tokens' if self.authenticates else 'unauthenticated'}"

    def check(self) -> None:
        """``ConfigError`` (one line) unless this is secure or its lack is allowed."""
        if self.tls is None and not self.allow_plaintext:
            raise ConfigError(
                f"gRPC has no TLS: set {CERT} and {KEY} (and {CA} for mutual TLS), "
                f"or {ALLOW_PLAINTEXT}=true on a trusted network ({DOCS})"
            )
        if self.tls is not None and not self.tls.has_identity:
            raise ConfigError(f"{CA} is set without {CERT} and {KEY}: a server needs both")
        if self.tokens_file is None and not self.allow_unauthenticated:
            raise ConfigError(
                f"gRPC callers are not authenticated: set {TOKENS_FILE}, "
                f"or {ALLOW_UNAUTHENTICATED}=true on a trusted network ({DOCS})"
            )
        if self.tokens_file is not None and self.allow_unauthenticated:
            raise ConfigError(f"{TOKENS_FILE} and {ALLOW_UNAUTHENTICATED}=true: choose one")

    @classmethod
    def from_env(cls, env: Env) -> ServerSecurity:
        tokens_file = config.get_optional(env, TOKENS_FILE)
        return cls(
            tls=TlsFiles.from_env(env),
            tokens_file=tokens_file,
            tokens=read_tokens(tokens_file) if tokens_file is not None else (),
            tokens_reload_interval=config.get_float(
                env, "SERVICE_TOKENS_RELOAD_INTERVAL", 1.0, minimum=0.0, maximum=3600.0
            ),
            allow_plaintext=config.get_bool(env, ALLOW_PLAINTEXT, False),
            allow_unauthenticated=config.get_bool(env, ALLOW_UNAUTHENTICATED, False),
        )


@dataclass(frozen=True)
class ClientSecurity:
    tls: TlsFiles | None = None
    server_name: str | None = None
    """The name to verify in the server's certificate (default: the target's host)."""
    token: str | None = field(default=None, repr=False)
    allow_plaintext: bool = False
    allow_unauthenticated: bool = False

    @classmethod
    def unprotected(cls, token: str | None = None) -> ClientSecurity:
        """Plaintext, with ``token`` if given: only for loopback (tests, ``accord dev``)."""
        return cls(token=token, allow_plaintext=True, allow_unauthenticated=token is None)

    def channel_options(self) -> list[tuple[str, str]]:
        """The channel options TLS needs beyond the credentials (the name to verify)."""
        if self.tls is None or self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]

    def check(self) -> None:
        if self.tls is None and not self.allow_plaintext:
            raise ConfigError(
                f"gRPC to sync and presence has no TLS: set {CA} (and {CERT} and {KEY} "
                f"for mutual TLS), or {ALLOW_PLAINTEXT}=true on a trusted network ({DOCS})"
            )
        if self.token is None and not self.allow_unauthenticated:
            raise ConfigError(
                f"no {TOKEN} for calls to sync and presence: set it, "
                f"or {ALLOW_UNAUTHENTICATED}=true on a trusted network ({DOCS})"
            )

    @classmethod
    def from_env(cls, env: Env) -> ClientSecurity:
        token = config.get_optional(env, TOKEN)
        return cls(
            tls=TlsFiles.from_env(env),
            server_name=config.get_optional(env, SERVER_NAME),
            token=None if token is None else check_token(TOKEN, token),
            allow_plaintext=config.get_bool(env, ALLOW_PLAINTEXT, False),
            allow_unauthenticated=config.get_bool(env, ALLOW_UNAUTHENTICATED, False),
        )

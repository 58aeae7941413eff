"""Edge settings, read once from the environment at start-up."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from accord.common import config, rules
from accord.common.config import ConfigError, Env


@dataclass(frozen=True)
class Settings:
    ws_addr: tuple[str, int] = ("0.0.0.0", 8080)  # noqa: S104 - a gateway in a container listens on all interfaces
    sync_target: str = "127.0.0.1:50051"
    presence_target: str = "127.0.0.1:50052"
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwks: str | None = None
    allowed_origins: tuple[str, ...] | None = None
    connect_rate: float = 20.0
    connect_burst: int = 40
    user_rate_limit: float = 300.0
    user_rate_burst: int = 600
    allow_anonymous: bool = False
    admin_token: str | None = None
    max_connections: int = 10000
    heartbeat_interval: float = 30.0
    max_message_size: int = 1024 * 1024
    hello_timeout: float = 10.0
    rate_limit: float = 100.0
    rate_burst: int = 200
    max_rooms_per_session: int = 100
    presence_sync_limit: int = 100
    max_json_depth: int = 32
    max_batch_changes: int = rules.DEFAULT_MAX_BATCH
    """Changes one push may carry: the same setting (``MAX_BATCH_CHANGES``) as sync's."""
    send_queue_size: int = 1024
    drain_timeout: float = 20.0
    rpc_timeout: float = 10.0
    edge_id: str = "edge"
    log_level: str = "info"
    log_format: str = "text"

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        env = config.environ() if env is None else env
        host, port = config.get_addr(env, "WS_ADDR", "0.0.0.0:8080")
        sync_host, sync_port = config.get_addr(env, "SYNC_ADDR", "127.0.0.1:50051")
        pres_host, pres_port = config.get_addr(env, "PRESENCE_ADDR", "127.0.0.1:50052")
        secret = config.get_optional(env, "JWT_SECRET")
        key_file = config.get_optional(env, "JWT_PUBLIC_KEY_FILE")
        public_key = None
        if key_file is not None:
            try:
                public_key = Path(key_file).read_text()
            except OSError as error:
                raise ConfigError(
                    f"JWT_PUBLIC_KEY_FILE={key_file!r} cannot be read: {error.strerror}"
                ) from None
        jwks_file = config.get_optional(env, "JWT_JWKS_FILE")
        jwks = None
        if jwks_file is not None:
            try:
                jwks = Path(jwks_file).read_text()
            except OSError as error:
                raise ConfigError(
                    f"JWT_JWKS_FILE={jwks_file!r} cannot be read: {error.strerror}"
                ) from None
        allow_anonymous = config.get_bool(env, "ALLOW_ANONYMOUS", False)
        if secret is None and public_key is None and jwks is None and not allow_anonymous:
            raise ConfigError(
                "no way to authenticate clients: set JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_FILE"
                " or ALLOW_ANONYMOUS=true"
            )
        if secret is not None and len(secret.encode()) < 32:
            raise ConfigError("JWT_SECRET is too short: use at least 32 bytes (RFC 7518)")
        max_message_size = config.get_int(
            env, "MAX_MESSAGE_SIZE", 1024 * 1024, minimum=1024, maximum=64 * 1024 * 1024
        )
        return cls(
            ws_addr=(host, port),
            sync_target=_target(sync_host, sync_port, "SYNC_ADDR"),
            presence_target=_target(pres_host, pres_port, "PRESENCE_ADDR"),
            jwt_secret=secret,
            jwt_public_key=public_key,
            jwks=jwks,
            allowed_origins=_origins(env),
            connect_rate=config.get_float(env, "CONNECT_RATE", 20.0, minimum=0.1, maximum=1e6),
            connect_burst=config.get_int(env, "CONNECT_BURST", 40, minimum=1, maximum=1_000_000),
            user_rate_limit=config.get_float(
                env, "USER_RATE_LIMIT", 300.0, minimum=0.1, maximum=1e6
            ),
            user_rate_burst=config.get_int(
                env, "USER_RATE_BURST", 600, minimum=1, maximum=1_000_000
            ),
            allow_anonymous=allow_anonymous,
            admin_token=config.get_optional(env, "ADMIN_TOKEN"),
            max_connections=config.get_int(
                env, "MAX_CONNECTIONS", 10000, minimum=1, maximum=10_000_000
            ),
            heartbeat_interval=config.get_float(
                env, "HEARTBEAT_INTERVAL", 30.0, minimum=0.05, maximum=3600
            ),
            max_message_size=max_message_size,
            hello_timeout=config.get_float(env, "HELLO_TIMEOUT", 10.0, minimum=0.05, maximum=600),
            rate_limit=config.get_float(env, "RATE_LIMIT", 100.0, minimum=0.1, maximum=1e6),
            rate_burst=config.get_int(env, "RATE_BURST", 200, minimum=1, maximum=1_000_000),
            max_rooms_per_session=config.get_int(
                env, "MAX_ROOMS_PER_SESSION", 100, minimum=1, maximum=100_000
            ),
            presence_sync_limit=config.get_int(
                env, "PRESENCE_SYNC_LIMIT", 100, minimum=1, maximum=100_000
            ),
            max_json_depth=config.get_int(env, "MAX_JSON_DEPTH", 32, minimum=2, maximum=1000),
            max_batch_changes=rules.max_batch_changes(env),
            send_queue_size=config.get_int(
                env, "SEND_QUEUE_SIZE", 1024, minimum=8, maximum=1_000_000
            ),
            drain_timeout=config.get_float(env, "DRAIN_TIMEOUT", 20.0, minimum=0, maximum=3600),
            rpc_timeout=config.get_float(env, "RPC_TIMEOUT", 10.0, minimum=0.1, maximum=600),
            edge_id=config.get_str(env, "EDGE_ID", f"{socket.gethostname()}-{os.getpid()}"),
            log_level=config.get_log_level(env),
            log_format=config.get_log_format(env),
        )


def _origins(env: Env) -> tuple[str, ...] | None:
    raw = config.get_optional(env, "ALLOWED_ORIGINS")
    if raw is None or raw == "*":
        return None
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        scheme, sep, host = origin.partition("://")
        if not sep or scheme not in ("http", "https") or not host or "/" in host:
            raise ConfigError(
                f"ALLOWED_ORIGINS entry {origin!r} is not an origin like https://app.example.com"
            )
    return origins


def _target(host: str, port: int, name: str) -> str:
    if port == 0:
        raise ConfigError(f"{name} needs a real port for the edge to connect to")
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - compares an address, binds nothing
        host = "127.0.0.1"
    return config.format_addr(host, port)

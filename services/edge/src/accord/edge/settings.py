"""Edge settings, read once from the environment at start-up."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field

from accord.common import config, rules
from accord.common.audit import AuditSettings
from accord.common.config import ConfigError, Env
from accord.common.grpc_security import ClientSecurity
from accord.common.push_socket import socket_path
from accord.edge.api.settings import ApiSettings
from accord.edge.auth import IdentitySettings
from accord.edge.tls import TlsSettings
from accord.extensions import parse_specs

_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True)
class Settings:
    ws_addr: tuple[str, int] = ("0.0.0.0", 8080)  # noqa: S104 - a gateway in a container listens on all interfaces
    sync_target: str = "127.0.0.1:50051"
    presence_target: str = "127.0.0.1:50052"
    push_socket: str | None = None
    """``SYNC_PUSH_SOCKET``: sync's same-host push socket (None: pushes go over gRPC)."""
    grpc: ClientSecurity = field(default_factory=ClientSecurity)
    """TLS and the service token for calls to sync and presence (default: none, refused)."""
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    allowed_origins: tuple[str, ...] | None = None
    connect_rate: float = 20.0
    connect_burst: int = 40
    user_rate_limit: float = 300.0
    user_rate_burst: int = 600
    admin_token: str | None = None
    max_connections: int = 10000
    heartbeat_interval: float = 30.0
    max_message_size: int = 1024 * 1024
    hello_timeout: float = 10.0
    request_header_timeout: float = 10.0
    rate_limit: float = 100.0
    rate_burst: int = 200
    max_rooms_per_session: int = 100
    presence_sync_limit: int = 100
    max_json_depth: int = 32
    max_batch_changes: int = rules.DEFAULT_MAX_BATCH
    """Changes one push may carry: the same setting (``MAX_BATCH_CHANGES``) as sync's."""
    send_queue_size: int = 1024
    send_queue_bytes: int = 8 * 1024 * 1024
    edge_queue_bytes: int = 256 * 1024 * 1024
    drain_timeout: float = 20.0
    sse_inbox_size: int = 64
    """Messages POSTed to an HTTP-fallback session and not yet handled (``SSE_INBOX_SIZE``)."""
    rpc_timeout: float = 10.0
    edge_id: str = "edge"
    extensions: tuple[str, ...] = ()
    """``EDGE_EXTENSIONS``: the factories, ``package.module:factory``, in order."""
    extension_timeout: float = 1.0
    """``EXTENSION_TIMEOUT``: seconds each hook call may take."""
    log_level: str = "info"
    log_format: str = "text"
    tls: TlsSettings | None = None
    """``TLS_CERT_FILE``/``TLS_KEY_FILE``: serve wss:// and https:// on ``WS_ADDR``."""
    redis_url: str | None = None
    """Revocations and admin disconnects shared by every edge (None: this edge's memory)."""
    redis_prefix: str = "accord"
    audit: AuditSettings = field(default_factory=AuditSettings)

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        env = config.environ() if env is None else env
        host, port = config.get_addr(env, "WS_ADDR", "0.0.0.0:8080")
        sync_host, sync_port = config.get_addr(env, "SYNC_ADDR", "127.0.0.1:50051")
        pres_host, pres_port = config.get_addr(env, "PRESENCE_ADDR", "127.0.0.1:50052")
        identity = IdentitySettings.from_env(env)
        max_message_size = config.get_int(
            env, "MAX_MESSAGE_SIZE", 1024 * 1024, minimum=1024, maximum=64 * 1024 * 1024
        )
        send_queue_bytes = config.get_int(
            env, "SEND_QUEUE_BYTES", 8 * 1024 * 1024, minimum=64 * 1024, maximum=1 << 40
        )
        edge_queue_bytes = config.get_int(
            env, "EDGE_QUEUE_BYTES", 256 * 1024 * 1024, minimum=64 * 1024, maximum=1 << 44
        )
        if edge_queue_bytes < send_queue_bytes:
            raise ConfigError(
                f"EDGE_QUEUE_BYTES={edge_queue_bytes} is below SEND_QUEUE_BYTES={send_queue_bytes}:"
                " the edge's budget must hold at least one session's queue"
            )
        return cls(
            ws_addr=(host, port),
            sync_target=_target(sync_host, sync_port, "SYNC_ADDR"),
            presence_target=_target(pres_host, pres_port, "PRESENCE_ADDR"),
            push_socket=socket_path(env.get("SYNC_PUSH_SOCKET")),
            grpc=ClientSecurity.from_env(env),
            identity=identity,
            api=ApiSettings.from_env(env),
            allowed_origins=_origins(env),
            connect_rate=config.get_float(env, "CONNECT_RATE", 20.0, minimum=0.1, maximum=1e6),
            connect_burst=config.get_int(env, "CONNECT_BURST", 40, minimum=1, maximum=1_000_000),
            user_rate_limit=config.get_float(
                env, "USER_RATE_LIMIT", 300.0, minimum=0.1, maximum=1e6
            ),
            user_rate_burst=config.get_int(
                env, "USER_RATE_BURST", 600, minimum=1, maximum=1_000_000
            ),
            admin_token=config.get_optional(env, "ADMIN_TOKEN"),
            max_connections=config.get_int(
                env, "MAX_CONNECTIONS", 10000, minimum=1, maximum=10_000_000
            ),
            heartbeat_interval=config.get_float(
                env, "HEARTBEAT_INTERVAL", 30.0, minimum=0.05, maximum=3600
            ),
            max_message_size=max_message_size,
            hello_timeout=config.get_float(env, "HELLO_TIMEOUT", 10.0, minimum=0.05, maximum=600),
            request_header_timeout=config.get_float(
                env, "REQUEST_HEADER_TIMEOUT", 10.0, minimum=0.05, maximum=600
            ),
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
            send_queue_bytes=send_queue_bytes,
            edge_queue_bytes=edge_queue_bytes,
            sse_inbox_size=config.get_int(env, "SSE_INBOX_SIZE", 64, minimum=1, maximum=100_000),
            drain_timeout=config.get_float(env, "DRAIN_TIMEOUT", 20.0, minimum=0, maximum=3600),
            rpc_timeout=config.get_float(env, "RPC_TIMEOUT", 10.0, minimum=0.1, maximum=600),
            edge_id=config.get_str(env, "EDGE_ID", f"{socket.gethostname()}-{os.getpid()}"),
            extensions=parse_specs(env.get("EDGE_EXTENSIONS", ""), "EDGE_EXTENSIONS"),
            extension_timeout=config.get_float(
                env, "EXTENSION_TIMEOUT", 1.0, minimum=0.001, maximum=60.0
            ),
            log_level=config.get_log_level(env),
            log_format=config.get_log_format(env),
            tls=TlsSettings.from_env(env),
            redis_url=config.get_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
            redis_prefix=_redis_prefix(env),
            audit=AuditSettings.from_env(env),
        )


def _redis_prefix(env: Env) -> str:
    prefix = config.get_str(env, "REDIS_PREFIX", "accord").strip()
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(f"REDIS_PREFIX={prefix!r} must be 1-64 chars of A-Z a-z 0-9 _ . : -")
    return prefix


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

"""The sync service's settings: read once from the environment, validated, passed down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from accord.common import config, rules
from accord.common.audit import AuditSettings
from accord.common.config import ConfigError
from accord.common.grpc_security import ServerSecurity
from accord.common.grpcutil import MAX_GRPC_MESSAGE
from accord.common.push_socket import socket_path
from accord.extensions import parse_specs
from accord.sync.webhooks import EndpointDefaults, WebhookConfig, WebhookSettings

MEMORY = ":memory:"
NO_WEBHOOKS = WebhookConfig()


@dataclass(frozen=True)
class PostgresTarget:
    url: str


@dataclass(frozen=True)
class SqliteTarget:
    path: str
    """A filesystem path, or ``:memory:``."""


DatabaseTarget = PostgresTarget | SqliteTarget


def parse_database_url(url: str, name: str = "DATABASE_URL") -> DatabaseTarget:
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        if not rest:
            raise ConfigError(f"{name}={url!r} names no server")
        return PostgresTarget(url)
    if sep and scheme == "sqlite":
        if rest == MEMORY:
            return SqliteTarget(MEMORY)
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(
                f"{name}={url!r}: use sqlite:///relative/path, sqlite:////absolute/path "
                "or sqlite://:memory:"
            )
        path = rest[1:]
        if path.endswith("/"):
            raise ConfigError(f"{name}={url!r} names a directory, not a database file")
        return SqliteTarget(path)
    raise ConfigError(f"{name}={url!r} must start with postgresql://, postgres:// or sqlite://")


@dataclass(frozen=True)
class Settings:
    sync_addr: tuple[str, int] = ("127.0.0.1", 50051)
    grpc: ServerSecurity = field(default_factory=ServerSecurity)
    """TLS and caller authentication; the default (neither, nor allowed) refuses to serve."""
    push_socket: str | None = None
    """``SYNC_PUSH_SOCKET``: a Unix socket for a same-host edge's pushes (None: none)."""
    metrics_addr: tuple[str, int] | None = ("127.0.0.1", 9101)
    database: DatabaseTarget = SqliteTarget("data/accord.db")
    redis_url: str | None = None
    redis_prefix: str = "accord"
    bus_shards: int = 16
    bus_skip_unheard: bool = True
    """Publish nothing to a Redis shard no other replica listens to (``bus_redis.py``)."""
    max_clock_skew: float = 60.0
    max_batch_changes: int = rules.DEFAULT_MAX_BATCH
    max_record_bytes: int = 262144
    max_json_depth: int = 32
    log_retention: int = 10_000
    conflict_retention: int = 1000
    room_memory_bytes: int = 8 * 1024 * 1024
    recheck_interval: float = 30.0
    """Seconds between re-checks of every Subscribe stream against the log; 0: none."""
    webhooks_file: str | None = None
    webhooks: WebhookConfig = NO_WEBHOOKS
    """The endpoints in ``webhooks_file`` at start-up (re-read while running)."""
    webhook_concurrency: int = 8
    """Webhook requests this replica has in flight at most; 0: it delivers none."""
    webhook_backoff_base: float = 1.0
    webhook_backoff_max: float = 300.0
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 10
    webhook_poll_interval: float = 1.0
    log_level: str = "info"
    log_format: str = "text"
    audit: AuditSettings = field(default_factory=AuditSettings)
    extensions: tuple[str, ...] = ()
    """``SYNC_EXTENSIONS``: the factories, ``package.module:factory``, in order."""
    extension_timeout: float = 1.0
    """Seconds a hook may run (each call) before it counts as failed."""
    schemas_file: str | None = None
    """JSON or YAML record schemas (``accord.sync.schemas``)."""

    @property
    def max_clock_skew_us(self) -> int:
        return int(self.max_clock_skew * 1_000_000)

    @property
    def webhook_defaults(self) -> EndpointDefaults:
        return EndpointDefaults(self.webhook_timeout, self.webhook_max_attempts)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        metrics_raw = env.get("METRICS_ADDR")
        metrics_addr = (
            None
            if metrics_raw is not None and metrics_raw.strip() == ""
            else config.get_addr(env, "METRICS_ADDR", "127.0.0.1:9101")
        )
        hooks = WebhookSettings.from_env(env)
        prefix = config.get_str(env, "REDIS_PREFIX", "accord").strip()
        if not prefix or any(ch.isspace() for ch in prefix):
            raise ConfigError(f"REDIS_PREFIX={prefix!r} must be non-empty without spaces")
        return cls(
            sync_addr=config.get_addr(env, "SYNC_ADDR", "127.0.0.1:50051"),
            grpc=ServerSecurity.from_env(env),
            push_socket=socket_path(env.get("SYNC_PUSH_SOCKET")),
            metrics_addr=metrics_addr,
            database=parse_database_url(
                config.get_str(env, "DATABASE_URL", "sqlite:///data/accord.db").strip()
            ),
            redis_url=config.get_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
            redis_prefix=prefix,
            bus_shards=config.get_int(env, "BUS_SHARDS", 16, minimum=1, maximum=4096),
            bus_skip_unheard=config.get_bool(env, "BUS_SKIP_UNHEARD", True),
            max_clock_skew=config.get_float(
                env, "MAX_CLOCK_SKEW", 60.0, minimum=0.0, maximum=86400.0
            ),
            max_batch_changes=rules.max_batch_changes(env),
            max_record_bytes=config.get_int(
                env, "MAX_RECORD_BYTES", 262144, minimum=64, maximum=MAX_GRPC_MESSAGE // 2
            ),
            max_json_depth=config.get_int(env, "MAX_JSON_DEPTH", 32, minimum=1, maximum=500),
            log_retention=config.get_int(env, "LOG_RETENTION", 10_000, minimum=0, maximum=2**62),
            conflict_retention=config.get_int(
                env, "CONFLICT_RETENTION", 1000, minimum=1, maximum=1_000_000
            ),
            room_memory_bytes=config.get_int(
                env, "ROOM_MEMORY_BYTES", 8 * 1024 * 1024, minimum=0, maximum=2**36
            ),
            recheck_interval=config.get_float(
                env, "RECHECK_INTERVAL", 30.0, minimum=0.0, maximum=86400.0
            ),
            webhooks_file=hooks.file,
            webhooks=hooks.config,
            webhook_concurrency=config.get_int(
                env, "WEBHOOK_CONCURRENCY", 8, minimum=0, maximum=1000
            ),
            webhook_backoff_base=hooks.backoff_base,
            webhook_backoff_max=hooks.backoff_max,
            webhook_timeout=hooks.timeout,
            webhook_max_attempts=hooks.max_attempts,
            webhook_poll_interval=hooks.poll_interval,
            log_level=config.get_log_level(env),
            log_format=config.get_log_format(env),
            audit=AuditSettings.from_env(env),
            extensions=parse_specs(env.get("SYNC_EXTENSIONS", ""), "SYNC_EXTENSIONS"),
            extension_timeout=config.get_float(
                env, "EXTENSION_TIMEOUT", 1.0, minimum=0.001, maximum=60.0
            ),
            schemas_file=config.get_optional(env, "SCHEMAS_FILE"),
        )

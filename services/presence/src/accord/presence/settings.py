"""The presence service's settings: read once from the environment, validated."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from accord.common.audit import AuditSettings
from accord.common.config import (
    ConfigError,
    get_addr,
    get_float,
    get_int,
    get_log_format,
    get_log_level,
    get_str,
    get_url,
)
from accord.common.grpc_security import ServerSecurity
from accord.common.webhooks import WebhookSettings

_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Settings:
    presence_addr: tuple[str, int] = ("127.0.0.1", 50052)
    # TLS and caller authentication; the default (neither, nor allowed) refuses to serve.
    grpc: ServerSecurity = field(default_factory=ServerSecurity)
    audit: AuditSettings = field(default_factory=AuditSettings)
    # None: no metrics endpoint.
    metrics_addr: tuple[str, int] | None = ("127.0.0.1", 9102)
    # None: the in-memory store (one replica only).
    redis_url: str | None = None
    redis_prefix: str = "accord"
    heartbeat_interval: float = 30.0
    presence_ttl: float = 90.0
    sweep_interval: float = 1.0
    max_state_bytes: int = 4096
    max_rooms_per_session: int = 100
    # Events buffered per Watch stream before the stream is dropped.
    watch_queue_size: int = 10000
    # Broadcasts per second per sending session, with bursts of broadcast_burst.
    broadcast_rate: float = 30.0
    broadcast_burst: int = 60
    # At most one broadcast per (room, session, channel) per window.
    broadcast_window: float = 0.05
    shutdown_grace: float = 5.0
    # WEBHOOKS_FILE and the WEBHOOK_* settings sync reads too (presence sends the
    # endpoints' ``presence`` events).
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    # Presence events waiting per webhook endpoint; beyond, the oldest are dropped.
    webhook_queue_size: int = 10000
    log_level: str = "info"
    log_format: str = "text"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        heartbeat = get_float(env, "HEARTBEAT_INTERVAL", 30.0, minimum=0.01, maximum=_DAY)
        ttl = get_float(env, "PRESENCE_TTL", 3 * heartbeat, minimum=0.01, maximum=7 * _DAY)
        if ttl <= heartbeat:
            raise ConfigError(
                f"PRESENCE_TTL={ttl:g} must be longer than HEARTBEAT_INTERVAL={heartbeat:g}"
            )
        # Sweeping a few times per TTL bounds how late a timeout leave comes.
        sweep = get_float(env, "SWEEP_INTERVAL", min(1.0, ttl / 3), minimum=0.01, maximum=ttl)
        prefix = get_str(env, "REDIS_PREFIX", "accord").strip()
        if not _PREFIX.fullmatch(prefix):
            raise ConfigError(f"REDIS_PREFIX={prefix!r} must be 1-64 chars of A-Z a-z 0-9 _ . : -")
        metrics_raw = env.get("METRICS_ADDR")
        metrics_addr = (
            None
            if metrics_raw is not None and metrics_raw.strip() == ""
            else get_addr(env, "METRICS_ADDR", "127.0.0.1:9102")
        )
        return cls(
            presence_addr=get_addr(env, "PRESENCE_ADDR", "127.0.0.1:50052"),
            grpc=ServerSecurity.from_env(env),
            audit=AuditSettings.from_env(env),
            metrics_addr=metrics_addr,
            redis_url=get_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
            redis_prefix=prefix,
            heartbeat_interval=heartbeat,
            presence_ttl=ttl,
            sweep_interval=sweep,
            max_state_bytes=get_int(env, "MAX_STATE_BYTES", 4096, minimum=2, maximum=1 << 20),
            max_rooms_per_session=get_int(
                env, "MAX_ROOMS_PER_SESSION", 100, minimum=1, maximum=100_000
            ),
            watch_queue_size=get_int(env, "WATCH_QUEUE_SIZE", 10000, minimum=1, maximum=10_000_000),
            broadcast_rate=get_float(env, "BROADCAST_RATE", 30.0, minimum=0.01, maximum=1e6),
            broadcast_burst=get_int(env, "BROADCAST_BURST", 60, minimum=1, maximum=1_000_000),
            broadcast_window=get_float(env, "BROADCAST_WINDOW", 0.05, minimum=0.0, maximum=60.0),
            shutdown_grace=get_float(env, "SHUTDOWN_GRACE", 5.0, minimum=0.0, maximum=3600.0),
            webhooks=WebhookSettings.from_env(env),
            webhook_queue_size=get_int(
                env, "WEBHOOK_QUEUE_SIZE", 10000, minimum=1, maximum=10_000_000
            ),
            log_level=get_log_level(env),
            log_format=get_log_format(env),
        )

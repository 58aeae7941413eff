"""The presence service's Prometheus metrics (default registry)."""

from __future__ import annotations

from accord.common.grpc_auth import refused_counter
from accord.common.grpcutil import server_latency_histogram
from prometheus_client import Counter, Gauge, Histogram

GRPC_HANDLING = server_latency_histogram("presence")
GRPC_AUTH_REFUSED = refused_counter("presence")
SESSIONS = Gauge("accord_presence_sessions", "Sessions present in at least one room")
USERS = Gauge(
    "accord_presence_users", "Distinct users with at least one session present in any room"
)
JOINS = Counter("accord_presence_joins_total", "Sessions that joined a room (re-joins excluded)")
LEAVES = Counter("accord_presence_leaves_total", "Sessions that left a room, by reason", ["reason"])
EXPIRED = Counter("accord_presence_expired_total", "Sessions expired by this replica's sweeper")
HEARTBEAT_BATCH = Histogram(
    "accord_presence_heartbeat_batch_size",
    "Session ids per Heartbeat call",
    buckets=(1, 10, 100, 1000, 10_000, 100_000),
)
BROADCASTS = Counter("accord_presence_broadcasts_total", "Broadcasts published")
BROADCASTS_DEFERRED = Counter(
    "accord_presence_broadcasts_deferred_total",
    "Broadcasts held back by their sender's rate, to be published later",
)
BROADCASTS_SUPERSEDED = Counter(
    "accord_presence_broadcasts_superseded_total",
    "Held-back broadcasts replaced by a newer one on the same channel, never published",
)
BROADCASTS_REFUSED = Counter(
    "accord_presence_broadcasts_rate_limited_total",
    "Broadcasts refused because their sender was over its rate",
)
WEBHOOK_DELIVERIES = Counter(
    "accord_presence_webhook_deliveries_total",
    "Presence webhook requests by endpoint and outcome (delivered: 2xx; failed: retried; "
    "abandoned: the event's last attempt failed and it was dropped)",
    ["endpoint", "outcome"],
)
WEBHOOK_OVERFLOWS = Counter(
    "accord_presence_webhook_overflow_total",
    "Presence events dropped unsent because their endpoint's queue was full (the oldest go)",
    ["endpoint"],
)
WEBHOOK_QUEUED = Gauge(
    "accord_presence_webhook_queued", "Presence events waiting for their endpoint", ["endpoint"]
)
WEBHOOK_SECONDS = Histogram(
    "accord_presence_webhook_request_seconds",
    "One presence webhook request, sent to answered (or failed), by endpoint",
    ["endpoint"],
)
WEBHOOK_RELOADS = Counter(
    "accord_presence_webhook_config_reloads_total",
    "WEBHOOKS_FILE re-reads after it changed, by result (ok; error: the previous endpoints stay)",
    ["result"],
)

"""The edge's Prometheus metrics (default registry, served on /metrics)."""

from __future__ import annotations

from accord.common.hot_counter import HotChild, HotCounter
from accord.common.metrics import BATCH_SIZES, CALL_SECONDS
from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge("accord_edge_connections", "WebSocket sessions currently open")
MAX_CONNECTIONS = Gauge("accord_edge_max_connections", "The MAX_CONNECTIONS setting")
OPENED = Counter("accord_edge_connections_opened_total", "WebSocket connections accepted")
CLOSED = Counter(
    "accord_edge_connections_closed_total", "WebSocket sessions closed, by close code", ["code"]
)
# Counted once per message in and out: lock-free counters (accord.common.hot_counter).
MESSAGES_IN = HotCounter(
    "accord_edge_messages_in_total", "Client messages received, by type", ["type"]
)
MESSAGES_OUT = HotCounter(
    "accord_edge_messages_out_total", "Messages sent to clients, by type", ["type"]
)
BYTES_IN = HotCounter("accord_edge_bytes_in_total", "Payload bytes received from clients")
BYTES_OUT = HotCounter("accord_edge_bytes_out_total", "Payload bytes sent to clients")
ERRORS = Counter("accord_edge_errors_total", "Error replies sent to clients, by code", ["code"])
ROOMS = Gauge("accord_edge_rooms", "Rooms with at least one local subscriber")
FANOUT_LATENCY = Histogram(
    "accord_edge_fanout_latency_seconds",
    "Time from a change's commit timestamp to its write to the subscribers' queues",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
GRPC_CLIENT = Histogram(
    "accord_edge_grpc_client_seconds",
    "Latency of the edge's unary gRPC calls, by method",
    ["method"],
    buckets=CALL_SECONDS,
)
PUSH_SOCKET_FALLBACKS = Counter(
    "accord_edge_push_socket_fallbacks_total",
    "Push exchanges sent on the gRPC stream because sync's push socket (SYNC_PUSH_SOCKET) "
    "could not be reached",
)
BATCHED_ITEMS = Histogram(
    "accord_edge_batched_call_items",
    "Client pushes or presence updates carried by one PushMany or UpdateMany call, by method",
    ["method"],
    buckets=BATCH_SIZES,
)
CATCHUP_SKIPPED = Counter(
    "accord_edge_catchup_skipped_total",
    "Subscribes answered without a Pull: the room was live here and the client up to date",
)
SLOW_CONSUMERS = Counter(
    "accord_edge_slow_consumers_total", "Sessions closed because they could not keep up"
)
GAP_BACKFILLS = Counter(
    "accord_edge_gap_backfills_total", "Seq gaps in the live stream filled from the log"
)
CONNECTS_REFUSED = Counter(
    "accord_edge_connects_refused_total", "Upgrades refused by the per-IP connection rate limit"
)
SEND_QUEUE = Histogram(
    "accord_edge_send_queue_depth",
    "Outbound queue depth of a session, sampled at each heartbeat",
    buckets=(0, 1, 4, 16, 64, 256, 1024, 4096),
)
COALESCED = Counter(
    "accord_edge_coalesced_total", "Queued presence/broadcast messages replaced by a newer one"
)
EXTENSION_ERRORS = Counter(
    "accord_edge_extension_errors_total",
    "Extension hooks that raised, ran past EXTENSION_TIMEOUT or answered something they may "
    "not, by hook and extension",
    ["hook", "extension"],
)


_messages_out: dict[str, HotChild] = {}
_messages_in: dict[str, HotChild] = {}


def count_in(kind: str) -> None:
    """Count one message received from a client (a handled type or "unknown")."""
    child = _messages_in.get(kind)
    if child is None:
        child = _messages_in[kind] = MESSAGES_IN.labels(kind)
    child.inc()


def count_out(kind: str, size: int) -> None:
    """Count one message sent to a client (labelled children are cached: hot path)."""
    child = _messages_out.get(kind)
    if child is None:
        child = _messages_out[kind] = MESSAGES_OUT.labels(kind)
    child.inc()
    BYTES_OUT.inc(size)


JWKS_FETCHES = Counter(
    "accord_edge_jwks_fetches_total", "Fetches of the JWKS_URL key set, by result", ["result"]
)
JWKS_REFETCHES = Counter(
    "accord_edge_jwks_unknown_kid_total",
    "Tokens naming a key id the JWKS_URL set lacks: refetched, or limited (no refetch yet)",
    ["action"],
)
JWKS_STALE = Gauge(
    "accord_edge_jwks_stale", "1 while the JWKS_URL cannot be fetched (the last good set is used)"
)
JWKS_KEYS = Gauge("accord_edge_jwks_keys", "Usable keys in the last JWKS_URL key set fetched")

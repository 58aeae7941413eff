"""Shared by the deployment tests (a unique module name: other test folders have a conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "charts"
MONITORING = REPO / "monitoring"

# The environment each service reads (docs/operations.md "Settings" and the services' settings).
KNOWN_ENV = {
    "WS_ADDR",
    "SYNC_ADDR",
    "PRESENCE_ADDR",
    "METRICS_ADDR",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_PREFIX",
    "JWT_SECRET",
    "JWT_PUBLIC_KEY_FILE",
    "ALLOW_ANONYMOUS",
    "ADMIN_TOKEN",
    "MAX_CONNECTIONS",
    "HEARTBEAT_INTERVAL",
    "MAX_MESSAGE_SIZE",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "DRAIN_TIMEOUT",
    "PRESENCE_TTL",
    "MAX_CLOCK_SKEW",
    "EDGE_ID",
    "HELLO_TIMEOUT",
    "RATE_LIMIT",
    "RATE_BURST",
    "MAX_ROOMS_PER_SESSION",
    "MAX_JSON_DEPTH",
    "SEND_QUEUE_SIZE",
    "RPC_TIMEOUT",
    "GRPC_ALLOW_PLAINTEXT",
    "GRPC_ALLOW_UNAUTHENTICATED",
    "GRPC_TLS_CERT_FILE",
    "GRPC_TLS_KEY_FILE",
    "GRPC_TLS_CA_FILE",
    "GRPC_TLS_SERVER_NAME",
    "SERVICE_TOKEN",
    "SERVICE_TOKENS_FILE",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "TLS_RELOAD_INTERVAL",
}

# Every metric the services export (besides prometheus_client's process_* defaults).
KNOWN_METRICS = {
    "accord_edge_connections",
    "accord_edge_max_connections",
    "accord_edge_connections_opened_total",
    "accord_edge_connections_closed_total",
    "accord_edge_messages_in_total",
    "accord_edge_messages_out_total",
    "accord_edge_errors_total",
    "accord_edge_fanout_latency_seconds",
    "accord_edge_grpc_client_seconds",
    "accord_sync_grpc_handling_seconds",
    "accord_sync_push_seconds",
    "accord_sync_changes_total",
    "accord_sync_conflicts_total",
    "accord_presence_grpc_handling_seconds",
    "accord_presence_sessions",
    "accord_presence_joins_total",
    "accord_presence_leaves_total",
    "accord_presence_expired_total",
    "accord_presence_broadcasts_total",
}

Manifest = dict[str, Any]


def render(
    chart: str, values: dict[str, Any] | None = None, release: str = "rel"
) -> list[Manifest]:
    """Every Kubernetes object the chart renders for ``values`` (offline, no cluster)."""
    import helm_python as helm

    helm.disable_logging()
    with helm.Chart.load(CHARTS / chart) as loaded:
        rendered = loaded.render(values or {}, name=release, namespace="accord", is_install=True)
    objects: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def one(objects: list[Manifest], kind: str, name: str) -> Manifest:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def kinds(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]

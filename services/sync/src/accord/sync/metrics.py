"""The sync service's Prometheus metrics (default registry, created once per process)."""

from __future__ import annotations

from accord.common.grpc_auth import refused_counter
from accord.common.grpcutil import server_latency_histogram
from accord.common.metrics import BATCH_SIZES, CALL_SECONDS
from prometheus_client import Counter, Gauge, Histogram

GRPC_HANDLING = server_latency_histogram("sync")
GRPC_AUTH_REFUSED = refused_counter("sync")

PUSH_SECONDS = Histogram(
    "accord_sync_push_seconds",
    "Time from a push's arrival to its commit, including the wait for its commit group",
    buckets=CALL_SECONDS,
)
COMMIT_SECONDS = Histogram(
    "accord_sync_commit_seconds",
    "Time to merge and commit one group of pushes to a room, from lock to commit",
    buckets=CALL_SECONDS,
)
COMMIT_GROUP = Histogram(
    "accord_sync_commit_group_pushes",
    "Pushes committed together in one transaction (group commit)",
    buckets=BATCH_SIZES,
)
CHANGES = Counter(
    "accord_sync_changes_total", "Pushed changes by outcome (applied or duplicate)", ["status"]
)
APPLIED = CHANGES.labels("applied")
DUPLICATE = CHANGES.labels("duplicate")
CONFLICTS = Counter(
    "accord_sync_conflicts_total",
    "Pushed fields that lost to a newer value (each is recorded: ListConflicts)",
)
CONTENDED = Counter(
    "accord_sync_commit_contended_total",
    "Optimistic commit groups that found a room moved on (another replica wrote to it) "
    "and ran again locked",
)
READS_SKIPPED = Counter(
    "accord_sync_commit_reads_skipped_total",
    "Optimistic commit groups that took their rooms' state from what this replica last "
    "wrote instead of reading it (one statement instead of two)",
)
STALE = Counter(
    "accord_sync_commit_reads_stale_total",
    "Optimistic commit groups that found a room they took from memory written by another "
    "replica meanwhile (nothing written; run again reading it)",
)
COMPACTIONS = Counter(
    "accord_sync_compactions_total", "Log compactions (tail cut, old conflicts pruned)"
)
INLINE_BATCHES = Counter(
    "accord_sync_inline_batches_total",
    "Committed room batches answered in a push's response (PushManyResponse.batches) "
    "instead of sent on the caller's Subscribe stream",
)
PUSH_SOCKET_REQUESTS = Counter(
    "accord_sync_push_socket_requests_total",
    "PushManyRequests read from the same-host push socket (SYNC_PUSH_SOCKET)",
)
BACKFILLS = Counter(
    "accord_sync_backfills_total", "Subscribe gaps filled from the log (a missed bus message)"
)
RECHECKS = Counter(
    "accord_sync_rechecks_total",
    "Re-checks of every Subscribe stream of this replica against the log's heads, by reason "
    "(reconnected: the bus connection came back; requested: a replica asked, after a failed "
    "publish or at its start; interval: the periodic safety net)",
    ["reason"],
)
RECHECK_RECOVERED = Counter(
    "accord_sync_recheck_recovered_changes_total",
    "Changes sent to subscribers by a re-check: committed, but not delivered by the bus",
)
BUS_UNPUBLISHED = Counter(
    "accord_sync_bus_unpublished_total",
    "Bus messages (a commit group's batches of one shard) not published to Redis because "
    "no other replica listened on that shard (BUS_SKIP_UNHEARD)",
)
SUBSCRIBERS = Gauge("accord_sync_subscribers", "Rooms subscribed across all open Subscribe streams")
WEBHOOK_DELIVERIES = Counter(
    "accord_sync_webhook_deliveries_total",
    "Webhook requests by endpoint and outcome (delivered: a 2xx; failed: anything else, "
    "retried after a backoff; parked: the last attempt failed, the endpoint is parked)",
    ["endpoint", "outcome"],
)
WEBHOOK_DELIVERED_CHANGES = Counter(
    "accord_sync_webhook_delivered_changes_total",
    "Changes delivered to webhook endpoints (a 2xx), by endpoint",
    ["endpoint"],
)
WEBHOOK_SECONDS = Histogram(
    "accord_sync_webhook_request_seconds",
    "One webhook request, sent to answered (or failed), by endpoint",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_BACKLOG = Gauge(
    "accord_sync_webhook_backlog_changes",
    "Committed changes not yet delivered to the endpoint, as this replica last read the "
    "outbox (every replica reports the same database: take the max)",
    ["endpoint"],
)
WEBHOOK_OLDEST = Gauge(
    "accord_sync_webhook_oldest_seconds",
    "Age of the endpoint's oldest undelivered change (0: none), as last read",
    ["endpoint"],
)
WEBHOOK_PARKED = Gauge(
    "accord_sync_webhook_parked",
    "1 while the endpoint's backlog is parked (after its last attempt failed; "
    "`accord webhooks resume` resumes it), as last read",
    ["endpoint"],
)
WEBHOOK_RELOADS = Counter(
    "accord_sync_webhook_config_reloads_total",
    "WEBHOOKS_FILE re-reads after it changed, by result (ok; error: the previous "
    "endpoints stay in force)",
    ["result"],
)
REFUSED = CHANGES.labels("refused")
EXTENSION_ERRORS = Counter(
    "accord_sync_extension_errors_total",
    "Extension hooks that raised, ran past EXTENSION_TIMEOUT or answered something they may "
    "not (the change got INTERNAL or UNAVAILABLE; an after_commit delivery is retried)",
    ["hook", "extension"],
)
EXTENSION_DELIVERED = Counter(
    "accord_sync_extension_delivered_changes_total",
    "Committed changes an extension's after_commit returned from (its cursor advanced)",
    ["extension"],
)
EXTENSION_BEHIND = Gauge(
    "accord_sync_extension_behind_rooms",
    "Rooms with committed changes an extension's after_commit has not yet returned from",
    ["extension"],
)

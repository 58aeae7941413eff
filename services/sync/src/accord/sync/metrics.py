"""The sync service's Prometheus metrics (default registry, created once per process)."""

from __future__ import annotations

from accord.common.grpc_auth import refused_counter
from accord.common.grpcutil import server_latency_histogram
from prometheus_client import Counter, Gauge, Histogram

GRPC_HANDLING = server_latency_histogram("sync")
GRPC_AUTH_REFUSED = refused_counter("sync")

_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
PUSH_SECONDS = Histogram(
    "accord_sync_push_seconds",
    "Time from a push's arrival to its commit, including the wait for its commit group",
    buckets=_SECONDS,
)
COMMIT_SECONDS = Histogram(
    "accord_sync_commit_seconds",
    "Time to merge and commit one group of pushes to a room, from lock to commit",
    buckets=_SECONDS,
)
COMMIT_GROUP = Histogram(
    "accord_sync_commit_group_pushes",
    "Pushes committed together in one transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
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
SUBSCRIBERS = Gauge("accord_sync_subscribers", "Rooms subscribed across all open Subscribe streams")

"""Rate limits (accord.edge.limits) and operator revocations (accord.edge.revocations)."""

from __future__ import annotations

import math
import time

from accord.edge.limits import SharedBuckets, TokenBucket
from accord.edge.revocations import Revocations


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=8.0, burst=3)
    # Later than the bucket's own start (full), and a whole number of seconds, so that the
    # steps below (binary fractions) are exact in floating point.
    start = float(math.ceil(time.monotonic())) + 1.0
    assert [bucket.take(start) for _ in range(3)] == [0, 0, 0]
    assert bucket.take(start) == 125, "one token per 125 ms"
    assert bucket.take(start + 0.0625) == 63, "half a token there: 62.5 ms, rounded up"
    assert bucket.take(start + 0.125) == 0
    assert not bucket.full(start + 0.125)
    assert bucket.full(start + 1.0) and bucket.take(start + 10) == 0, "capped at the burst"
    assert [bucket.take(start + 10) for _ in range(3)] == [0, 0, 125]


def test_shared_buckets_are_shared_by_key() -> None:
    buckets = SharedBuckets(rate=0.001, burst=2)
    assert [buckets.take("ip-1"), buckets.take("ip-1")] == [0, 0]
    assert buckets.take("ip-1") > 0, "two sessions of one key share one bucket"
    assert buckets.take("ip-2") == 0
    buckets.prune()
    assert len(buckets) == 2, "neither has refilled: both kept, with their debt"
    assert buckets.take("ip-1") > 0


def test_shared_buckets_are_pruned_once_idle_and_full() -> None:
    buckets = SharedBuckets(rate=1000.0, burst=1)
    buckets.hold("ip")
    assert buckets.take("ip") == 0
    time.sleep(0.01)  # refills (1 token per ms)
    buckets.prune()
    assert len(buckets) == 1, "in use: kept"
    buckets.release("ip")
    buckets.prune()
    assert len(buckets) == 0


def test_revocations_match_globs_and_read_also_revokes_write() -> None:
    revoked = Revocations()
    revoked.add("u-1", "team-*", "write")
    revoked.add("u-1", "secret", "read")
    assert revoked.denies("u-1", "team-a", "write") and not revoked.denies("u-1", "team-a", "read")
    assert revoked.denies("u-1", "secret", "read") and revoked.denies("u-1", "secret", "write")
    assert not revoked.denies("u-2", "secret", "read") and not revoked.denies(
        "u-1", "other", "write"
    )
    assert revoked.listing() == [
        {"user_id": "u-1", "room": "secret", "access": "read", "expires_at": None},
        {"user_id": "u-1", "room": "team-*", "access": "write", "expires_at": None},
    ]
    assert revoked.remove("u-1", "secret", "read") and not revoked.remove("u-1", "secret", "read")
    assert revoked.remove("u-1", "team-*", "write")
    assert revoked.listing() == [] and not revoked.denies("u-1", "team-a", "write")

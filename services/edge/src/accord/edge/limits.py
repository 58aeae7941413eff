"""Rate limiting: a token bucket per session, and buckets shared by key (user, client IP)."""

from __future__ import annotations

import math
import time


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self, now: float | None = None) -> int:
        """Take one token: 0 when allowed, else the milliseconds until one is available."""
        now = time.monotonic() if now is None else now
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - self._tokens) / self._rate * 1000))

    def full(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self._tokens + (now - self._stamp) * self._rate >= self._burst


class SharedBuckets:
    """Token buckets shared by key (a user's sessions, an IP's connections).

    Buckets of keys that are no longer in use are dropped by ``prune`` once
    they have refilled, so the map stays as small as the active set.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        self._users: dict[str, int] = {}

    def take(self, key: str) -> int:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst)
        return bucket.take()

    def hold(self, key: str) -> None:
        self._users[key] = self._users.get(key, 0) + 1

    def release(self, key: str) -> None:
        left = self._users.get(key, 0) - 1
        if left > 0:
            self._users[key] = left
        else:
            self._users.pop(key, None)

    def prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, b in self._buckets.items() if k not in self._users and b.full(now)]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)

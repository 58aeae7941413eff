"""Broadcast rate limits and coalescing, free of I/O: time is an argument.

Each sending session has a token bucket (``rate`` per second, ``burst`` deep);
every broadcast published takes a token.

- A broadcast without a channel is published at once, or refused with
  :class:`RateLimited` when the bucket is empty.
- A broadcast with a channel ("cursor", "typing", ...) is keyed by (session,
  room, channel). It is published at once when that key published nothing in
  the last ``window`` seconds and a token is free. Otherwise it waits as the
  key's pending broadcast, replacing any older pending one, and is published
  when both allow: a flood of cursor moves ends in the latest position, not
  a backlog, and no channel sends more than once per window.

A session may have at most ``max_pending`` keys waiting; a broadcast that would
add one more is refused, so that inventing channels cannot grow memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    SENT = "sent"
    # Waiting for its turn; nothing older was waiting on its channel.
    DEFERRED = "deferred"
    # Waiting for its turn, in place of an older broadcast now never sent.
    REPLACED = "replaced"


class RateLimited(Exception):
    """Over the sender's broadcast rate, and not coalescable."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"broadcast rate exceeded; retry in {retry_after * 1000:.0f} ms")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Key:
    session_id: str
    room: str
    channel: str


@dataclass(frozen=True, slots=True)
class Due:
    key: Key
    data_json: str


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    pending: int = 0


@dataclass(slots=True)
class _Channel:
    last_sent: float = -math.inf
    pending: str | None = None
    due_at: float = 0.0


class Throttle:
    def __init__(self, rate: float, burst: int, window: float, max_pending: int) -> None:
        if rate <= 0 or burst < 1 or window < 0 or max_pending < 1:
            raise ValueError("rate and burst must be positive, window not negative")
        self.rate = rate
        self.burst = burst
        self.window = window
        self.max_pending = max_pending
        self._buckets: dict[str, _Bucket] = {}
        self._channels: dict[Key, _Channel] = {}
        # Keys with a waiting broadcast, in the order they started waiting.
        self._pending: dict[Key, None] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def offer(self, key: Key, data_json: str, now: float) -> Outcome:
        """Decide what happens to one broadcast; raises :class:`RateLimited`."""
        bucket = self._bucket(key.session_id, now)
        if not key.channel:
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return Outcome.SENT
            raise RateLimited(self._token_wait(bucket))
        channel = self._channels.get(key)
        if channel is not None and channel.pending is not None:
            channel.pending = data_json
            return Outcome.REPLACED
        ready_at = now if channel is None else channel.last_sent + self.window
        if ready_at <= now and bucket.tokens >= 1:
            bucket.tokens -= 1
            if channel is None:
                channel = self._channels[key] = _Channel()
            channel.last_sent = now
            return Outcome.SENT
        if bucket.pending >= self.max_pending:
            raise RateLimited(max(ready_at - now, self._token_wait(bucket)))
        if channel is None:
            channel = self._channels[key] = _Channel()
        channel.pending = data_json
        channel.due_at = max(ready_at, now + self._token_wait(bucket))
        bucket.pending += 1
        self._pending[key] = None
        return Outcome.DEFERRED

    def due(self, now: float) -> list[Due]:
        """The waiting broadcasts that may go now, earliest due first; each takes a token."""
        ready: list[Due] = []
        for key in sorted(self._pending, key=lambda k: self._channels[k].due_at):
            channel = self._channels[key]
            if channel.due_at > now:
                break
            bucket = self._bucket(key.session_id, now)
            if bucket.tokens < 1:
                channel.due_at = now + self._token_wait(bucket)
                continue
            assert channel.pending is not None
            bucket.tokens -= 1
            bucket.pending -= 1
            ready.append(Due(key, channel.pending))
            channel.pending = None
            channel.last_sent = now
            del self._pending[key]
        return ready

    def next_due(self) -> float | None:
        """When the earliest waiting broadcast may go; None when none waits."""
        return min((self._channels[key].due_at for key in self._pending), default=None)

    def prune(self, now: float) -> None:
        """Forget state that no longer changes any decision."""
        for key in [
            key
            for key, channel in self._channels.items()
            if channel.pending is None and channel.last_sent + self.window <= now
        ]:
            del self._channels[key]
        for session_id in [
            session_id
            for session_id, bucket in self._buckets.items()
            if bucket.pending == 0 and self._refill(bucket, now) >= self.burst
        ]:
            del self._buckets[session_id]

    def tracked(self) -> tuple[int, int]:
        """(sessions, channels) held in memory, for tests and diagnostics."""
        return len(self._buckets), len(self._channels)

    def _bucket(self, session_id: str, now: float) -> _Bucket:
        bucket = self._buckets.get(session_id)
        if bucket is None:
            bucket = self._buckets[session_id] = _Bucket(float(self.burst), now)
        self._refill(bucket, now)
        return bucket

    def _refill(self, bucket: _Bucket, now: float) -> float:
        if now > bucket.stamp:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        return bucket.tokens

    def _token_wait(self, bucket: _Bucket) -> float:
        return max(0.0, (1 - bucket.tokens) / self.rate)

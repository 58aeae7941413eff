"""A hybrid logical clock in microseconds since the Unix epoch.

``now()`` never goes backwards and is strictly increasing within the process,
even when the wall clock steps back; ``observe()`` folds in clocks seen from
clients so later stamps order after them.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wall_clock_us() -> int:
    return time.time_ns() // 1000


class HybridClock:
    def __init__(self, max_skew_us: int, wall: Callable[[], int] = wall_clock_us) -> None:
        self._wall = wall
        self._max_skew_us = max_skew_us
        self._last = 0

    def now(self) -> int:
        self._last = max(self._wall(), self._last + 1)
        return self._last

    def observe(self, ts: int) -> None:
        self._last = max(self._last, ts)

    def clamp(self, ts: int) -> tuple[int, bool]:
        """``ts`` limited to the wall clock plus the allowed skew; True when it was cut."""
        limit = self._wall() + self._max_skew_us
        return (limit, True) if ts > limit else (ts, False)

"""The hybrid logical clock that stamps local changes (microseconds since the epoch)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["HybridClock"]


class HybridClock:
    """Never goes backwards, and ranks after every ``ts`` it has observed.

    A change made after seeing another is therefore "later" in the
    last-writer-wins order even when this machine's clock lags.
    """

    def __init__(self, wall: Callable[[], int] | None = None) -> None:
        self._wall = wall or (lambda: time.time_ns() // 1000)
        self._last = 0

    def now(self) -> int:
        self._last = max(self._wall(), self._last + 1)
        return self._last

    def observe(self, ts: int) -> None:
        self._last = max(self._last, ts)

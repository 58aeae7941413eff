"""Reconnect delays: exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

from accord.client.codes import THROTTLED

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Attempt ``n`` (from 0) waits ``min(maximum, initial * multiplier**n)``, of which
    a random ``jitter`` fraction is taken off, so clients cut off together do not
    come back together.

    ``throttled`` is the least wait after the server said it is full (1013) or
    closed the session for abuse (4008); a ``retry_after_ms`` the server named is
    waited out too.
    """

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    throttled: float = 5.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.multiplier < 1:
            raise ValueError("backoff needs 0 <= initial <= maximum and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter is a fraction in [0, 1]")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.maximum, self.initial * self.multiplier ** min(attempt, 64))
        draw = (rng or random).random()
        return ceiling * (1 - self.jitter * draw)

    def after(self, attempt: int, close_code: int | None, retry_after: float = 0.0) -> float:
        """The wait before attempt ``attempt`` after a session ended with ``close_code``
        (None: no close frame) and the server asked for ``retry_after`` seconds."""
        wait = max(self.delay(attempt), retry_after)
        return max(wait, self.throttled) if close_code in THROTTLED else wait

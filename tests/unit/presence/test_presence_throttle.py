"""Broadcast rate limits and coalescing, with time as a plain number."""

from __future__ import annotations

import pytest
from accord.presence.throttle import Due, Key, Outcome, RateLimited, Throttle

CURSOR = Key("s1", "r", "cursor")
PLAIN = Key("s1", "r", "")


def throttle(
    rate: float = 10.0, burst: int = 3, window: float = 0.05, max_pending: int = 4
) -> Throttle:
    return Throttle(rate, burst, window, max_pending)


def test_plain_broadcasts_use_the_burst_then_are_refused_until_tokens_refill() -> None:
    limiter = throttle()
    assert [limiter.offer(PLAIN, "{}", now=0) for _ in range(3)] == [Outcome.SENT] * 3
    with pytest.raises(RateLimited) as refused:
        limiter.offer(PLAIN, "{}", now=0)
    assert refused.value.retry_after == pytest.approx(0.1)
    assert limiter.offer(PLAIN, "{}", now=0.1) is Outcome.SENT
    assert limiter.pending == 0


def test_the_limit_is_per_session() -> None:
    limiter = throttle(burst=1)
    assert limiter.offer(PLAIN, "{}", now=0) is Outcome.SENT
    assert limiter.offer(Key("s2", "r", ""), "{}", now=0) is Outcome.SENT
    with pytest.raises(RateLimited):
        limiter.offer(Key("s1", "other-room", ""), "{}", now=0)


def test_a_flood_on_one_channel_sends_the_first_then_only_the_latest() -> None:
    limiter = throttle(rate=100.0, burst=100, window=0.05)
    assert limiter.offer(CURSOR, '{"x":0}', now=0) is Outcome.SENT
    assert limiter.offer(CURSOR, '{"x":1}', now=0.01) is Outcome.DEFERRED
    outcomes = [limiter.offer(CURSOR, f'{{"x":{x}}}', now=0.01 + x / 1000) for x in range(2, 30)]
    assert set(outcomes) == {Outcome.REPLACED}
    assert limiter.next_due() == pytest.approx(0.05)
    assert limiter.due(now=0.049) == []
    assert limiter.due(now=0.05) == [Due(CURSOR, '{"x":29}')]
    assert limiter.pending == 0
    assert limiter.next_due() is None
    # The window restarts from the flush: the next move waits for it.
    assert limiter.offer(CURSOR, '{"x":30}', now=0.06) is Outcome.DEFERRED
    assert limiter.due(now=0.1) == [Due(CURSOR, '{"x":30}')]
    # A move after a quiet window goes at once.
    assert limiter.offer(CURSOR, '{"x":31}', now=0.5) is Outcome.SENT


def test_channels_are_coalesced_separately_per_room_and_channel() -> None:
    limiter = throttle(rate=100.0, burst=100, window=1.0)
    typing, elsewhere = Key("s1", "r", "typing"), Key("s1", "other", "cursor")
    for key in (CURSOR, typing, elsewhere):
        assert limiter.offer(key, '{"n":1}', now=0) is Outcome.SENT
        assert limiter.offer(key, '{"n":2}', now=0.1) is Outcome.DEFERRED
    assert limiter.due(now=1.0) == [
        Due(CURSOR, '{"n":2}'),
        Due(typing, '{"n":2}'),
        Due(elsewhere, '{"n":2}'),
    ]


def test_without_tokens_a_channel_waits_for_one_and_keeps_the_latest() -> None:
    limiter = throttle(rate=10.0, burst=2, window=0.0)
    assert limiter.offer(PLAIN, "{}", now=0) is Outcome.SENT
    assert limiter.offer(CURSOR, '{"x":1}', now=0) is Outcome.SENT
    assert limiter.offer(CURSOR, '{"x":2}', now=0) is Outcome.DEFERRED
    assert limiter.offer(CURSOR, '{"x":3}', now=0.01) is Outcome.REPLACED
    assert limiter.next_due() == pytest.approx(0.1)
    assert limiter.due(now=0.1) == [Due(CURSOR, '{"x":3}')]
    # The flush took the token: a plain broadcast now has to wait.
    with pytest.raises(RateLimited):
        limiter.offer(PLAIN, "{}", now=0.1)


def test_a_due_broadcast_whose_tokens_went_elsewhere_is_rescheduled() -> None:
    limiter = throttle(rate=10.0, burst=1, window=0.0)
    assert limiter.offer(CURSOR, '{"x":1}', now=0) is Outcome.SENT
    assert limiter.offer(CURSOR, '{"x":2}', now=0) is Outcome.DEFERRED
    assert limiter.offer(PLAIN, "{}", now=0.1) is Outcome.SENT  # took the refilled token
    assert limiter.due(now=0.1) == []
    assert limiter.next_due() == pytest.approx(0.2)
    assert limiter.due(now=0.2) == [Due(CURSOR, '{"x":2}')]


def test_too_many_waiting_channels_are_refused() -> None:
    limiter = throttle(rate=1.0, burst=1, window=10.0, max_pending=2)
    assert limiter.offer(Key("s1", "r", "c0"), "{}", now=0) is Outcome.SENT
    for n in range(2):
        assert limiter.offer(Key("s1", "r", f"c{n}"), "{}", now=0) is Outcome.DEFERRED
    with pytest.raises(RateLimited):
        limiter.offer(Key("s1", "r", "c9"), "{}", now=0)
    # Replacing what already waits is always allowed.
    assert limiter.offer(Key("s1", "r", "c1"), "{}", now=0) is Outcome.REPLACED


def test_prune_forgets_idle_senders_only() -> None:
    limiter = throttle(rate=10.0, burst=2, window=0.05)
    limiter.offer(CURSOR, "{}", now=0)
    limiter.offer(CURSOR, "{}", now=0)
    limiter.offer(Key("s2", "r", "cursor"), "{}", now=0)
    limiter.prune(now=0.01)
    assert limiter.tracked() == (2, 2)
    limiter.due(now=0.05)
    limiter.prune(now=1.0)
    assert limiter.tracked() == (0, 0)
    assert limiter.offer(CURSOR, "{}", now=1.0) is Outcome.SENT


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Throttle(0, 1, 0.0, 1)
    with pytest.raises(ValueError):
        Throttle(1, 0, 0.0, 1)

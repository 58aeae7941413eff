"""Reconnect delays, the hybrid clock, token expiry parsing and status text."""

from __future__ import annotations

import random

import pytest
from accord.client.backoff import Backoff
from accord.client.client import token_expiry
from accord.client.clock import HybridClock
from accord.client.status import State, Status

from tests.support.wsclient import make_token


def test_backoff_grows_exponentially_up_to_the_maximum_with_jitter() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, multiplier=2.0, jitter=0.5)
    rng = random.Random(7)
    for attempt, ceiling in enumerate([1, 2, 4, 8, 8, 8]):
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling * 0.5 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling * 0.3, "jitter spreads the delays"


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(initial=2, maximum=1)
    with pytest.raises(ValueError):
        Backoff(jitter=1.5)


def test_hybrid_clock_never_goes_back_and_ranks_after_what_it_saw() -> None:
    wall = iter([100, 90, 90, 500])
    clock = HybridClock(lambda: next(wall))
    assert clock.now() == 100
    assert clock.now() == 101
    clock.observe(1000)
    assert clock.now() == 1001
    assert clock.now() == 1002


def test_token_expiry_reads_exp_without_verifying() -> None:
    token = make_token("u-1", ttl=100)
    expiry = token_expiry(token)
    assert expiry is not None and expiry > 0
    assert token_expiry("garbage") is None
    assert token_expiry(None) is None


def test_status_text() -> None:
    assert str(Status(State.SYNCED)) == "synced"
    assert str(Status(State.SYNCING, 3)) == "pending 3"
    assert str(Status(State.OFFLINE, 2)) == "offline (pending 2)"
    assert str(Status(State.CONNECTING)) == "connecting"

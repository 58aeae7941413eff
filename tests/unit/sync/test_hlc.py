from __future__ import annotations

from accord.sync.hlc import HybridClock


class FakeWall:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_now_follows_the_wall_clock() -> None:
    wall = FakeWall(1_000)
    clock = HybridClock(max_skew_us=10, wall=wall)
    assert clock.now() == 1_000
    wall.now = 5_000
    assert clock.now() == 5_000


def test_now_is_strictly_increasing_when_the_wall_clock_stalls_or_steps_back() -> None:
    wall = FakeWall(1_000)
    clock = HybridClock(max_skew_us=10, wall=wall)
    first, second = clock.now(), clock.now()
    wall.now = 10
    third = clock.now()
    assert first < second < third


def test_observe_moves_the_clock_past_a_seen_ts() -> None:
    clock = HybridClock(max_skew_us=10, wall=FakeWall(1_000))
    clock.observe(9_000)
    assert clock.now() == 9_001
    clock.observe(5)
    assert clock.now() == 9_002


def test_clamp_limits_future_ts_to_now_plus_skew() -> None:
    clock = HybridClock(max_skew_us=500, wall=FakeWall(1_000))
    assert clock.clamp(1_500) == (1_500, False)
    assert clock.clamp(1_501) == (1_500, True)
    assert clock.clamp(3) == (3, False)

"""Open-loop send schedules: when each message is due, fixed before the run starts.

A worker that owns ``n`` clients each sending ``rate`` updates/s sends one
update every ``1 / (n * rate)`` seconds, rotating through its clients, so every
client sends exactly ``rate``/s, evenly phased. Latency is measured from these
scheduled times, never from when the generator got round to sending, so a
generator or server that falls behind shows up as latency, not as a lower rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    index: int
    rate: float  # updates per second per active client
    duration: float  # seconds of sending


def rising_steps(rates: list[float], duration: float) -> list[Step]:
    """The rising-rate steps of a scenario, in order, each ``duration`` seconds."""
    if duration <= 0:
        raise ValueError("duration must be positive")
    if any(r <= 0 for r in rates) or list(rates) != sorted(rates):
        raise ValueError("rates must be positive and rising")
    return [Step(i, float(r), float(duration)) for i, r in enumerate(rates)]


def send_count(n_clients: int, rate: float, duration: float) -> int:
    """How many sends a worker with ``n_clients`` makes in ``duration`` seconds."""
    return int(n_clients * rate * duration + 1e-9)


def send_offsets(n_clients: int, rate: float, duration: float) -> Iterator[tuple[float, int]]:
    """(seconds after the step's start, local client index) for every send, in time order."""
    if n_clients <= 0 or rate <= 0:
        return
    interval = 1.0 / (n_clients * rate)
    for j in range(send_count(n_clients, rate, duration)):
        yield j * interval, j % n_clients


def split_clients(n_clients: int, workers: int) -> list[range]:
    """Contiguous, near-equal client ranges, one per worker (empty workers dropped)."""
    workers = max(1, min(workers, n_clients)) if n_clients else 1
    base, extra = divmod(n_clients, workers)
    out, start = [], 0
    for w in range(workers):
        size = base + (1 if w < extra else 0)
        if size:
            out.append(range(start, start + size))
        start += size
    return out


def active_clients(n_clients: int, fraction: float) -> list[int]:
    """Which clients send (S3: 1% of 10,000): evenly spread, at least one."""
    if fraction >= 1:
        return list(range(n_clients))
    count = max(1, round(n_clients * fraction))
    stride = n_clients / count
    return sorted({int(i * stride) for i in range(count)})

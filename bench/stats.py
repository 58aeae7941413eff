"""Statistics: mergeable latency histograms, percentiles, validity, the headline, repetitions."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Log buckets with ~1% relative width; values are microseconds.
_SCALE = 100.0
_log = math.log

P99_LIMIT_MS = 100.0
COMPLETENESS_LIMIT = 0.999
GEN_LAG_P99_LIMIT_MS = 5.0
GEN_CPU_LIMIT = 0.8


def bucket_of(us: float) -> int:
    return 0 if us < 1 else int(math.log(us) * _SCALE) + 1


def value_of(bucket: int) -> float:
    """The upper edge of a bucket, in microseconds (percentiles err on the slow side)."""
    return 1.0 if bucket <= 0 else math.exp(bucket / _SCALE)


@dataclass
class Histogram:
    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0
    max_us: float = 0.0

    def add(self, us: float) -> None:
        b = (
            0 if us < 1 else int(_log(us) * _SCALE) + 1
        )  # bucket_of, inlined: the generator's hot path
        counts = self.counts
        counts[b] = counts.get(b, 0) + 1
        self.total += 1
        if us > self.max_us:
            self.max_us = us

    def merge(self, other: Histogram) -> Histogram:
        for b, c in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + c
        self.total += other.total
        self.max_us = max(self.max_us, other.max_us)
        return self

    def percentile(self, p: float) -> float | None:
        """The p-th percentile in microseconds (None when empty)."""
        if not self.total:
            return None
        rank = max(1, math.ceil(p / 100.0 * self.total))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return min(value_of(b), self.max_us) if b == max(self.counts) else value_of(b)
        return self.max_us

    def to_json(self) -> dict[str, Any]:
        return {
            "c": {str(b): c for b, c in self.counts.items()},
            "n": self.total,
            "max": self.max_us,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Histogram:
        h = cls({int(b): int(c) for b, c in data.get("c", {}).items()}, int(data.get("n", 0)))
        h.max_us = float(data.get("max", 0.0))
        return h


def ms(us: float | None) -> float | None:
    return None if us is None else us / 1000.0


def latency_summary(h: Histogram) -> dict[str, float | None]:
    return {
        "p50_ms": ms(h.percentile(50)),
        "p95_ms": ms(h.percentile(95)),
        "p99_ms": ms(h.percentile(99)),
        "p999_ms": ms(h.percentile(99.9)),
        "max_ms": ms(h.max_us) if h.total else None,
    }


def generator_verdict(lag_p99_ms: float | None, cpu_max: float) -> list[str]:
    """Why the generator's own measurement cannot be trusted (empty: it can)."""
    reasons = []
    if lag_p99_ms is not None and lag_p99_ms > GEN_LAG_P99_LIMIT_MS:
        reasons.append(f"generator p99 lag {lag_p99_ms:.1f} ms > {GEN_LAG_P99_LIMIT_MS:g} ms")
    if cpu_max > GEN_CPU_LIMIT:
        reasons.append(f"generator CPU {cpu_max:.2f} > {GEN_CPU_LIMIT}")
    return reasons


def meets_slo(step: Mapping[str, Any]) -> bool:
    """p99 <= 100 ms (or the step's own ``slo_p99_ms``) and >= 99.9% delivered
    (validity is checked separately)."""
    p99 = step.get("p99_ms")
    return (
        p99 is not None
        and p99 <= step.get("slo_p99_ms", P99_LIMIT_MS)
        and step.get("completeness", 0.0) >= COMPLETENESS_LIMIT
    )


def headline(steps: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Maximum deliveries/s over the valid steps that meet the SLO.

    ``limited_by_generator`` is set when a step was invalid before any valid
    step failed the SLO: the server's limit was then not reached, and the
    headline is a lower bound.
    """
    best: Mapping[str, Any] | None = None
    limited = False
    failed = False
    for step in steps:
        if not step.get("valid", False):
            if not failed:
                limited = True
            continue
        if meets_slo(step):
            if best is None or step["delivered_per_s"] > best["delivered_per_s"]:
                best = step
        else:
            failed = True
    return {
        "deliveries_per_s": None if best is None else best["delivered_per_s"],
        "at_rate": None if best is None else best.get("rate"),
        "limited_by_generator": limited,
    }


def spread(values: Iterable[float | None]) -> dict[str, float | None]:
    """Median and min-max of repetitions (None values ignored)."""
    xs = [v for v in values if v is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}

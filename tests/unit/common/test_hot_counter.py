"""accord.common.hot_counter: lock-free counters exposed as ordinary Prometheus counters."""

from __future__ import annotations

import pytest
from accord.common.hot_counter import HotCounter
from prometheus_client import CollectorRegistry, Counter, generate_latest


def test_exposition_is_that_of_a_prometheus_counter() -> None:
    hot_registry, plain_registry = CollectorRegistry(), CollectorRegistry()
    hot = HotCounter("demo_messages_total", "Messages, by type", ["type"], registry=hot_registry)
    plain = Counter("demo_messages_total", "Messages, by type", ["type"], registry=plain_registry)
    for counter in (hot, plain):
        counter.labels("push").inc()
        counter.labels("push").inc(4)
        counter.labels("ping").inc()
    hot_lines = generate_latest(hot_registry).decode().splitlines()
    plain_lines = generate_latest(plain_registry).decode().splitlines()
    # The same lines but for the _created timestamps' values.
    assert [line.rsplit(" ", 1)[0] for line in hot_lines] == [
        line.rsplit(" ", 1)[0] for line in plain_lines
    ]
    assert 'demo_messages_total{type="push"} 5.0' in hot_lines
    assert hot.value("push") == 5 and hot.value("ping") == 1 and hot.value("none") == 0


def test_unlabelled_counter_and_refusals() -> None:
    registry = CollectorRegistry()
    hot = HotCounter("demo_bytes_total", "Bytes", registry=registry)
    hot.inc(120)
    hot.inc()
    assert "demo_bytes_total 121.0" in generate_latest(registry).decode()
    assert hot.value() == 121
    with pytest.raises(ValueError, match="only be increased"):
        hot.inc(-1)
    labelled = HotCounter("demo_typed_total", "Typed", ["type"], registry=registry)
    with pytest.raises(ValueError, match="labelled"):
        labelled.inc()
    with pytest.raises(ValueError, match="takes labels"):
        labelled.labels("a", "b")
    with pytest.raises(ValueError, match="Duplicated"):
        HotCounter("demo_bytes_total", "Again", registry=registry)

"""The quiet room: a change committed while Redis is down, and then no other change.

Its live subscribers must get it within a few seconds of Redis coming back, exactly
once — without a later change revealing the gap. Run with one sync and one edge, and
in the production shape: two sync replicas and two edges, the change pushed through one
and awaited on the other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault.cluster import running
from tests.fault.quiet import DELIVERY_DEADLINE, quiet_room

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.usefixtures("postgres_binaries"),
]


@pytest.mark.parametrize(
    ("syncs", "edges"),
    [pytest.param(1, 1, id="one-of-each"), pytest.param(2, 2, id="production-two-syncs")],
)
async def test_a_change_made_while_redis_is_down_reaches_every_subscriber(
    tmp_path: Path, syncs: int, edges: int
) -> None:
    async with running(tmp_path, syncs=syncs, edges=edges) as cluster:
        result = await quiet_room(cluster)
    assert result.acked_seq == 2, result
    assert result.violations == [], result
    late = {name: t for name, t in result.latency.items() if t is None or t > DELIVERY_DEADLINE}
    assert not late, f"not delivered within {DELIVERY_DEADLINE}s of Redis answering: {result}"
    assert result.seqs == {"quiet-pusher": [1, 2], "quiet-watcher": [1, 2]}, result

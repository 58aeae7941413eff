"""Crash consistency with real processes: the short version of ``make soak``.

Edge, sync and presence run as separate processes on a private PostgreSQL cluster and a
private redis-server. Clients push LWW sets and counter increments while every kind of
fault happens once: SIGKILL of sync, edge and presence; PostgreSQL stopped fast,
immediate, and for a few seconds; Redis SIGKILLed. Afterwards every acknowledged change
is in the log exactly once, the log is gapless, the counters are the sums of the
acknowledged increments and every client's replica is the server's snapshot
(tests/fault/accounting.py has the exact rules).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault.chaos import Config, run
from tests.fault.cluster import FAULTS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.usefixtures("postgres_binaries"),
]


@pytest.mark.parametrize(
    ("syncs", "edges", "clients", "changes", "sockets"),
    [
        pytest.param(1, 1, 8, 1200, False, id="one-of-each"),
        pytest.param(2, 2, 10, 1500, False, id="production-two-syncs-two-edges"),
        pytest.param(1, 1, 8, 1200, True, id="one-of-each-over-the-push-socket"),
    ],
)
async def test_no_acknowledged_change_is_lost_duplicated_or_reordered(
    tmp_path: Path, syncs: int, edges: int, clients: int, changes: int, sockets: bool
) -> None:
    config = Config(
        clients=clients,
        changes=changes,
        faults=len(FAULTS),
        seed=syncs,
        syncs=syncs,
        edges=edges,
        rooms=3,
        push_sockets=sockets,
    )
    report = await run(config, tmp_path)
    details = "\n".join([report.summary(), *report.faults, *report.problems[:30]])
    assert len(report.faults) == len(FAULTS), details
    assert {f.split(":")[0] for f in report.faults} == set(FAULTS), details
    assert report.changes == changes and report.acked == changes, details
    assert (report.lost, report.duplicated, report.gaps) == (0, 0, 0), details
    assert report.ok, details
    # The faults hit the writers: some pushes had to be sent again.
    assert report.retries > 0, details
    if sockets:
        # sync listened on its push socket again after being SIGKILLed (which left its file
        # behind). Whether the edge was back on it by the end depends on a push coming after
        # the restart; tests/e2e/test_push_socket.py checks that it comes back.
        sync_log = (tmp_path / "sync-0.log").read_text(errors="replace")
        assert sync_log.count("sync push socket:") >= 2, details

"""The fault run's accounting catches what it claims to: a log built by hand, no servers."""

from __future__ import annotations

import json

from accord.api.sync.v1 import sync_pb2 as pb

from tests.fault.accounting import Report, _check_room
from tests.fault.chaos import Config
from tests.fault.client import FaultClient


def _client_with(changes: int) -> FaultClient:
    client = FaultClient("c0", "r", ["ws://127.0.0.1:1/ws"], home=0, seed="t")
    for n in range(1, changes + 1):
        sent = client.next_change(keys=2)
        sent.status, sent.seq = "applied", n
    return client


def _logged(client: FaultClient, seqs: list[int]) -> list[pb.CommittedChange]:
    log = []
    for seq in seqs:
        sent = client.sent[seq - 1]
        op = sent.change["op"]
        patch = {"incr": {op["field"]: op["by"]}} if op["kind"] == "incr" else {"set": op["fields"]}
        log.append(
            pb.CommittedChange(
                seq=seq, collection=sent.change["collection"], key=sent.change["key"],
                client_id=client.name, client_seq=sent.client_seq, patch_json=json.dumps(patch),
            )
        )  # fmt: skip
    return log


def _fold(log: list[pb.CommittedChange]) -> dict[tuple[str, str], dict[str, object]]:
    client = _client_with(0)
    for c in log:
        client.replica.seq = c.seq - 1  # the state of the log as given, gaps and all
        client.replica.apply_change(
            {"seq": c.seq, "collection": c.collection, "key": c.key,
             "patch": json.loads(c.patch_json)}
        )  # fmt: skip
    return client.replica.records


def _check(client: FaultClient, log: list[pb.CommittedChange], head: int) -> Report:
    report = Report(Config())
    _check_room(report, "r", head, log, _fold(log), [client])
    return report


def test_a_complete_log_is_clean() -> None:
    client = _client_with(20)
    log = _logged(client, list(range(1, 21)))
    client.replica.records, client.replica.seq = _fold(log), 20
    report = _check(client, log, 20)
    assert report.ok and report.acked == 20, report.problems


def test_a_missing_acknowledged_change_is_lost_and_a_gap() -> None:
    client = _client_with(20)
    log = _logged(client, [s for s in range(1, 21) if s != 7])
    report = _check(client, log, 20)
    assert (report.lost, report.gaps) == (1, 1), report.problems
    assert not report.ok


def test_a_change_logged_twice_is_duplicated() -> None:
    client = _client_with(5)
    log = _logged(client, [1, 2, 3, 4, 5])
    again = pb.CommittedChange()
    again.CopyFrom(log[2])
    again.seq = 6
    log.append(again)
    report = _check(client, log, 6)
    assert report.duplicated == 1, report.problems


def test_an_unacknowledged_committed_change_is_counted_not_an_error() -> None:
    client = _client_with(5)
    client.sent[4].status = client.sent[4].seq = None
    log = _logged(client, [1, 2, 3, 4, 5])
    client.replica.records, client.replica.seq = _fold(log), 5
    report = _check(client, log, 5)
    assert (report.committed_unacked, report.acked, report.lost) == (1, 4, 0)
    assert report.ok, report.problems


def test_a_replica_behind_the_head_diverged() -> None:
    client = _client_with(5)
    log = _logged(client, [1, 2, 3, 4, 5])
    client.replica.records, client.replica.seq = _fold(log[:4]), 4
    assert _check(client, log, 5).diverged == 1

"""What a fault run proves: every acknowledged change once in a gapless log, and convergence.

After the writes, each subscriber gets time to reach its room's head; then each room's
whole log (``Pull`` since 0, changes only) and its snapshot (``Pull`` since 0) are read
from sync through raw gRPC and checked against what the clients were told:

- lost: an acknowledged (client_id, client_seq) missing from the log;
- duplicated: a (client_id, client_seq) in the log more than once;
- gaps: seqs missing from 1..head (or out of order);
- ack_mismatch: an acknowledged change logged at another seq than its ack said, or
  logged with another effect than the one pushed;
- committed_unacked: in the log but never acknowledged (its ack was lost and no retry
  came back): not an error;
- counter_errors: a counter in the snapshot that is not the sum of the increments
  acknowledged (plus committed-unacknowledged ones);
- delivery_errors: a subscription that saw a seq twice, out of order or with a gap;
- diverged: a client whose replica is not the room's snapshot (or never reached its head),
  and a snapshot that is not the fold of the room's own log.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from accord.api.sync.v1 import sync_pb2 as pb

from tests.fault.client import FaultClient
from tests.fault.cluster import Cluster, sync_stub
from tests.support.wsclient import Replica

if TYPE_CHECKING:
    from tests.fault.chaos import Config

ERRORS = ("lost", "duplicated", "gaps", "ack_mismatch", "counter_errors", "delivery_errors",
          "diverged", "rejected", "abandoned")  # fmt: skip


@dataclass
class Report:
    config: Config
    changes: int = 0
    acked: int = 0
    committed_unacked: int = 0
    lost: int = 0
    duplicated: int = 0
    gaps: int = 0
    ack_mismatch: int = 0
    counter_errors: int = 0
    delivery_errors: int = 0
    diverged: int = 0
    rejected: int = 0
    abandoned: int = 0
    retries: int = 0
    reconnects: int = 0
    faults: list[str] = field(default_factory=list)
    heads: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(getattr(self, name) for name in ERRORS) and not self.problems

    def summary(self) -> str:
        kinds = Counter(f.split(":")[0] for f in self.faults)
        c = self.config
        return (
            f"fault run seed={c.seed} clients={c.clients} syncs={c.syncs} edges={c.edges} "
            f"rooms={c.rooms}: changes={self.changes} acked={self.acked} "
            f"committed_unacked={self.committed_unacked} faults={len(self.faults)} "
            f"({' '.join(f'{k}={n}' for k, n in sorted(kinds.items()))}) | "
            + " ".join(f"{name}={getattr(self, name)}" for name in ERRORS)
            + f" | retries={self.retries} reconnects={self.reconnects} "
            f"elapsed={self.elapsed:.1f}s {'OK' if self.ok else 'FAILED'}"
        )


async def _read_room(stub: Any, room: str) -> tuple[int, list[Any], dict[tuple[str, str], Any]]:
    """The room's head, whole log and snapshot records, as sync serves them."""
    log: list[Any] = []
    head = 0
    async for item in stub.Pull(pb.PullRequest(room=room, changes_only=True), timeout=60):
        if item.WhichOneof("item") == "head":
            head = item.head
        elif item.WhichOneof("item") == "changes":
            log.extend(item.changes.changes)
    records: dict[tuple[str, str], Any] = {}
    async for item in stub.Pull(pb.PullRequest(room=room), timeout=60):
        if item.WhichOneof("item") == "snapshot":
            for r in item.snapshot.records:
                records[(r.collection, r.key)] = json.loads(r.value_json)
    return head, log, records


def _expected_patch(change: dict[str, Any]) -> dict[str, Any]:
    op = change["op"]
    if op["kind"] == "incr":
        return {"incr": {op["field"]: op["by"]}}
    return {"set": op["fields"]}


def _same_effect(sent: dict[str, Any], patch: dict[str, Any]) -> bool:
    """An increment is logged as itself, or as a ``set`` of the counter's new value (the
    one that creates the record does); a set as the fields that won (a subset)."""
    expected = _expected_patch(sent)
    if "incr" in expected:
        field_ = sent["op"]["field"]
        created = set(patch) == {"set"} and set(patch["set"]) == {field_}
        return patch == expected or (created and isinstance(patch["set"][field_], int))
    won = patch.get("set", {})
    return set(patch) <= {"set"} and all(expected["set"].get(k) == v for k, v in won.items())


def _check_room(
    report: Report,
    room: str,
    head: int,
    log: list[Any],
    records: dict[tuple[str, str], Any],
    clients: list[FaultClient],
) -> None:
    seqs = [c.seq for c in log]
    if seqs != list(range(1, head + 1)):
        present = set(seqs)
        report.gaps += sum(1 for s in range(1, head + 1) if s not in present) or 1
        report.problems.append(f"{room}: log seqs are not 1..{head}: {len(seqs)} entries")
    logged = Counter((c.client_id, c.client_seq) for c in log)
    report.duplicated += sum(n - 1 for n in logged.values() if n > 1)
    by_id = {(c.client_id, c.client_seq): c for c in log}
    sent_by_id = {(cl.name, s.client_seq): s for cl in clients for s in cl.sent}
    foreign = set(by_id) - set(sent_by_id)
    if foreign:
        report.problems.append(f"{room}: {len(foreign)} logged changes nobody pushed")
    counters: Counter[tuple[str, str]] = Counter()
    for key, sent in sent_by_id.items():
        entry = by_id.get(key)
        if sent.acknowledged:
            report.acked += 1
            if entry is None:
                report.lost += 1
                report.problems.append(f"{room}: lost {key} (acked at seq {sent.seq})")
                continue
            if sent.seq is not None and sent.seq != entry.seq:
                report.ack_mismatch += 1
                report.problems.append(f"{room}: {key} acked at {sent.seq}, logged at {entry.seq}")
        elif entry is not None:
            report.committed_unacked += 1
        if entry is None:
            continue
        if not _same_effect(sent.change, json.loads(entry.patch_json)):
            report.ack_mismatch += 1
            report.problems.append(f"{room}: {key} logged as {entry.patch_json}")
        op = sent.change["op"]
        if op["kind"] == "incr":
            counters[(sent.change["key"], op["field"])] += op["by"]
    for (record, name), total in counters.items():
        if records.get(("counters", record), {}).get(name) != total:
            report.counter_errors += 1
            found = records.get(("counters", record))
            report.problems.append(f"{room}: counter {record}.{name} is {found}, acked {total}")
    reference = Replica()
    if seqs == list(range(1, head + 1)):  # (a log with gaps cannot be folded; counted above)
        reference.apply({"type": "changes", "changes": [_as_json(c) for c in log]})
    if seqs == list(range(1, head + 1)) and reference.records != records:
        report.diverged += 1
        report.problems.append(f"{room}: the snapshot is not the fold of the log")
    for client in clients:
        if client.replica.seq != head or client.replica.records != records:
            report.diverged += 1
            report.problems.append(
                f"{room}: {client.name} at seq {client.replica.seq} of {head}, "
                f"{'same' if client.replica.records == records else 'different'} records"
            )


def _as_json(change: Any) -> dict[str, Any]:
    return {"seq": change.seq, "collection": change.collection, "key": change.key,
            "patch": json.loads(change.patch_json)}  # fmt: skip


async def account(
    cluster: Cluster,
    clients: list[FaultClient],
    config: Config,
    settle: Callable[[FaultClient, int], Awaitable[None]],
) -> Report:
    report = Report(config, faults=list(cluster.fault_log))
    for client in clients:
        report.changes += len(client.sent)
        report.rejected += sum(1 for s in client.sent if s.rejected)
        report.problems.extend(
            f"{client.name}: push {s.client_seq} rejected: {s.rejected}"
            for s in client.sent
            if s.rejected
        )
        report.abandoned += sum(1 for s in client.sent if not s.acknowledged and not s.rejected)
        report.retries += client.retries
        report.reconnects += client.connects - 1
    rooms = sorted({c.room for c in clients})
    async with sync_stub(cluster.sync_addrs[0]) as stub:
        for room in rooms:
            reply = await stub.Head(pb.HeadRequest(room=room), timeout=30)
            report.heads[room] = reply.head
        await asyncio.gather(*(settle(c, report.heads[c.room]) for c in clients))
        for client in clients:
            report.delivery_errors += len(client.violations)
            report.problems.extend(client.violations[:5])
        for room in rooms:
            head, log, records = await _read_room(stub, room)
            if head != report.heads[room]:
                report.problems.append(f"{room}: head moved after the writes: {head}")
            members = [c for c in clients if c.room == room]
            _check_room(report, room, head, log, records, members)
    if len(report.faults) < config.faults:
        report.problems.append(f"only {len(report.faults)} of {config.faults} faults injected")
    return report

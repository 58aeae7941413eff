"""Property: replicas driven by the server's own merge converge on the server's state.

A fake server built on ``accord.sync.merge`` stands in for the suite. Clients
make local changes, push them, lose acks, reconnect (re-pushing: duplicates),
resubscribe from a snapshot and receive changes in random interleavings; at the
end every replica's confirmed state and visible view equal the server's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.client.replica import PendingChange, Replica

merge = pytest.importorskip("accord.sync.merge")

KEYS = ["a", "b"]
FIELDS = ["x", "y", "n"]


@dataclass
class FakeServer:
    states: dict[str, Any] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    marks: dict[str, int] = field(default_factory=dict)
    stored: dict[tuple[str, int], int] = field(default_factory=dict)

    def push(self, client_id: str, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = []
        for wire in changes:
            seq_key = (client_id, wire["client_seq"])
            if wire["client_seq"] <= self.marks.get(client_id, 0):
                results.append({"client_seq": wire["client_seq"], "seq": self.stored.get(seq_key, 0), "status": "duplicate"})
                continue
            raw = wire["op"]
            op = (
                merge.SetOp(raw["fields"])
                if raw["kind"] == "set"
                else merge.DeleteOp()
                if raw["kind"] == "delete"
                else merge.IncrOp(raw["field"], raw.get("by", 1))
            )
            state = self.states.get(wire["key"], merge.RecordState())
            before = merge.visible(state)
            clock = (wire["ts"], client_id, client_id, wire["client_seq"])
            state, _ = merge.merge(state, clock, op)
            self.states[wire["key"]] = state
            seq = len(self.log) + 1
            self.log.append(
                {
                    "seq": seq,
                    "collection": "c",
                    "key": wire["key"],
                    "client_id": client_id,
                    "client_seq": wire["client_seq"],
                    "ts": wire["ts"],
                    "patch": merge.diff(before, merge.visible(state), op),
                }
            )
            self.marks[client_id] = wire["client_seq"]
            self.stored[seq_key] = seq
            results.append({"client_seq": wire["client_seq"], "seq": seq, "status": "applied"})
        return results

    def visible(self) -> dict[str, dict[str, Any]]:
        view = {key: merge.visible(state) for key, state in self.states.items()}
        return {key: value for key, value in view.items() if value is not None}

    def snapshot_records(self) -> list[dict[str, Any]]:
        return [{"collection": "c", "key": k, "value": v} for k, v in self.visible().items()]


@dataclass
class SimClient:
    replica: Replica
    next_seq: int = 1
    acks: list[list[dict[str, Any]]] = field(default_factory=list)


ops = st.one_of(
    st.builds(lambda f, v: {"kind": "set", "fields": {f: v}}, st.sampled_from(FIELDS), st.integers(0, 3)),
    st.just({"kind": "delete"}),
    st.builds(lambda f, by: {"kind": "incr", "field": f, "by": by}, st.sampled_from(FIELDS), st.integers(-2, 3)),
)
actions = st.lists(
    st.tuples(
        st.sampled_from(["write", "push", "ack", "deliver", "reconnect", "snapshot"]),
        st.integers(0, 2),
        st.sampled_from(KEYS),
        ops,
        st.integers(1, 4),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(actions)
def test_replicas_converge_on_the_server_state(script: list[tuple[str, int, str, dict[str, Any], int]]) -> None:
    server = FakeServer()
    clients = [SimClient(Replica("room", f"c{i}")) for i in range(3)]
    clock = 0

    def push(client: SimClient) -> None:
        unsent = client.replica.unsent()
        if unsent:
            client.acks.append(server.push(client.replica.client_id, [c.wire() for c in unsent]))

    def deliver(client: SimClient, count: int) -> None:
        replica = client.replica
        replica.apply_changes(server.log[replica.seq : replica.seq + count])

    for action, index, key, op, count in script:
        client = clients[index]
        clock += 1
        if action == "write":
            client.replica.add_local(PendingChange(client.next_seq, "c", key, op, ts=clock * 10 + index))
            client.next_seq += 1
        elif action == "push":
            push(client)
        elif action == "ack" and client.acks:
            client.replica.ack(client.acks.pop(0))
        elif action == "deliver":
            deliver(client, count)
        elif action == "reconnect":
            client.acks.clear()  # in-flight acks are lost with the connection
            client.replica.subscribed(since=client.replica.seq, head=len(server.log))
        elif action == "snapshot":
            client.acks.clear()
            client.replica.subscribed(since=0, head=len(server.log))
            if server.log:
                client.replica.snapshot_chunk(server.snapshot_records(), len(server.log), True)

    for _ in range(4):
        for client in clients:
            client.acks.clear()
            push(client)
        for client in clients:
            while client.acks:
                client.replica.ack(client.acks.pop(0))
            deliver(client, len(server.log))

    expected = server.visible()
    for client in clients:
        replica = client.replica
        assert replica.pending == []
        assert replica.seq == len(server.log)
        assert {k: v for (_, k), v in replica.confirmed_items()} == expected
        assert replica.records("c") == expected

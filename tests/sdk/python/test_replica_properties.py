"""Property: replicas driven by the server's own merge converge on the server's state.

A fake server built on the sync service's ``merge`` and ``patch`` modules stands
in for the suite; every op kind is covered, the set and list ones included. Clients
make local changes, push them, lose acks, reconnect (re-pushing: duplicates),
resubscribe from a snapshot and receive changes in random interleavings; at the
end every replica's confirmed state and visible view equal the server's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accord.client.replica import PendingChange, Replica
from accord.sync import merge
from accord.sync import patch as reference
from hypothesis import given, settings
from hypothesis import strategies as st

KEYS = ["a", "b"]
FIELDS = ["x", "y", "n"]


def to_op(raw: dict[str, Any]) -> Any:
    kind = raw["kind"]
    if kind == "set":
        return merge.SetOp(raw["fields"])
    if kind == "delete":
        return merge.DeleteOp()
    if kind == "incr":
        return merge.IncrOp(raw["field"], raw.get("by", 1))
    if kind == "add":
        return merge.AddOp(raw["field"], tuple(raw["values"]))
    if kind == "remove":
        return merge.RemoveOp(raw["field"], tuple(raw["values"]), raw.get("seen"))
    if kind == "insert":
        return merge.InsertOp(raw["field"], raw["after"], tuple(raw["values"]))
    return merge.RemoveItemsOp(raw["field"], tuple(raw["ids"]))


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
                results.append(
                    {
                        "client_seq": wire["client_seq"],
                        "seq": self.stored.get(seq_key, 0),
                        "status": "duplicate",
                    }
                )
                continue
            op = to_op(wire["op"])
            state = self.states.get(wire["key"], merge.RecordState())
            if merge.unknown_ids(state, op):
                results.append({"client_seq": wire["client_seq"], "refused": True})
                continue
            before = merge.view(state)
            clock = (wire["ts"], client_id, client_id, wire["client_seq"])
            seq = len(self.log) + 1
            state, _ = merge.merge(state, clock, op, seq)
            self.states[wire["key"]] = state
            self.log.append(
                {
                    "seq": seq,
                    "collection": "c",
                    "key": wire["key"],
                    "client_id": client_id,
                    "client_seq": wire["client_seq"],
                    "ts": wire["ts"],
                    "patch": reference.diff(before, merge.view(state), op),
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
    st.builds(
        lambda f, v: {"kind": "set", "fields": {f: v}}, st.sampled_from(FIELDS), st.integers(0, 3)
    ),
    st.just({"kind": "delete"}),
    st.builds(
        lambda f, by: {"kind": "incr", "field": f, "by": by},
        st.sampled_from(FIELDS),
        st.integers(-2, 3),
    ),
    st.builds(
        lambda v: {"kind": "add", "field": "s", "values": v},
        st.lists(st.integers(0, 3), max_size=2),
    ),
    st.builds(
        lambda v: {"kind": "remove", "field": "s", "values": v},
        st.lists(st.integers(0, 3), max_size=2),
    ),
    st.builds(
        lambda v: {"kind": "insert", "field": "l", "values": v},
        st.lists(st.integers(0, 3), min_size=1, max_size=2),
    ),
    st.just({"kind": "remove_items", "field": "l"}),
)


def concrete(op: dict[str, Any], replica: Replica, key: str, pick: int) -> dict[str, Any]:
    """Fill in what a real client takes from its view: list element ids, the seen seq."""
    op = dict(op)
    items = (replica.visible(("c", key)) or {}).get("l")
    ids = [item["id"] for item in items] if isinstance(items, list) else []
    if op["kind"] == "insert":
        op["after"] = ids[pick % len(ids)] if ids and pick % 3 else None
    elif op["kind"] == "remove_items":
        op["ids"] = ids[pick % len(ids) :][:1] if ids else []
    elif op["kind"] == "remove":
        op["seen"] = replica.seq
    return op


actions = st.lists(
    st.tuples(
        st.sampled_from(["write"] * 4 + ["push", "ack", "deliver"] * 2 + ["reconnect", "snapshot"]),
        st.integers(0, 2),
        st.sampled_from(KEYS),
        ops,
        st.integers(1, 4),
    ),
    min_size=5,
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(actions)
def test_replicas_converge_on_the_server_state(
    script: list[tuple[str, int, str, dict[str, Any], int]],
) -> None:
    server = FakeServer()
    clients = [SimClient(Replica("room", f"c{i}")) for i in range(3)]

    def push(client: SimClient) -> None:
        unsent = client.replica.unsent()
        if unsent:
            client.acks.append(server.push(client.replica.client_id, [c.wire() for c in unsent]))

    def settle(client: SimClient, results: list[dict[str, Any]]) -> None:
        client.replica.reject(r["client_seq"] for r in results if r.get("refused"))
        client.replica.ack([r for r in results if not r.get("refused")])

    def deliver(client: SimClient, count: int) -> None:
        replica = client.replica
        replica.apply_changes(server.log[replica.seq : replica.seq + count])

    for clock, (action, index, key, op, count) in enumerate(script, start=1):
        client = clients[index]
        if action == "write":
            wire_op = concrete(op, client.replica, key, count)
            client.replica.add_local(
                PendingChange(client.next_seq, "c", key, wire_op, ts=clock * 10 + index)
            )
            client.next_seq += 1
        elif action == "push":
            push(client)
        elif action == "ack" and client.acks:
            settle(client, client.acks.pop(0))
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
                settle(client, client.acks.pop(0))
            deliver(client, len(server.log))

    expected = server.visible()
    for client in clients:
        replica = client.replica
        assert replica.pending == []
        assert replica.seq == len(server.log)
        assert {k: v for (_, k), v in replica.confirmed_items()} == expected
        assert replica.records("c") == expected

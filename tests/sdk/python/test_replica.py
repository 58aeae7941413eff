"""The replica: snapshot + patches, optimistic local changes and their rebase, without I/O."""

from __future__ import annotations

from typing import Any

import pytest
from accord.client.errors import SequenceGap
from accord.client.replica import PendingChange, Replica

ROOM = "r"


def change(
    seq: int, key: str, patch: dict[str, Any], client_id: str = "other", client_seq: int = 1
) -> dict[str, Any]:
    return {
        "seq": seq,
        "collection": "todos",
        "key": key,
        "client_id": client_id,
        "client_seq": client_seq,
        "ts": seq,
        "patch": patch,
    }


def local(client_seq: int, key: str, op: dict[str, Any]) -> PendingChange:
    return PendingChange(client_seq, "todos", key, op, ts=client_seq)


def test_snapshot_chunks_replace_the_records_then_changes_follow() -> None:
    replica = Replica(ROOM, "me", seq=3, records={("todos", "old"): {"x": 1}})
    replica.subscribed(since=0, head=5)
    assert not replica.caught_up
    assert (
        replica.snapshot_chunk(
            [{"collection": "todos", "key": "a", "value": {"t": 1}}], 5, False
        ).events
        == []
    )
    assert replica.records("todos") == {"old": {"x": 1}}, "nothing changes before the last chunk"
    applied = replica.snapshot_chunk(
        [{"collection": "todos", "key": "b", "value": {"t": 2}}], 5, True
    )
    assert replica.records("todos") == {"a": {"t": 1}, "b": {"t": 2}}
    assert replica.seq == 5 and replica.caught_up and applied.replaced
    assert {(e.key, e.value is None) for e in applied.events} == {
        ("old", True),
        ("a", False),
        ("b", False),
    }
    replica.apply_changes([change(6, "a", {"set": {"t": 9}}), change(7, "b", {"deleted": True})])
    assert replica.records("todos") == {"a": {"t": 9}}
    assert replica.seq == 7


def test_changes_skip_repeats_and_refuse_gaps() -> None:
    replica = Replica(ROOM, "me")
    replica.apply_changes([change(1, "a", {"set": {"n": 1}})])
    assert replica.apply_changes([change(1, "a", {"set": {"n": 99}})]).events == []
    with pytest.raises(SequenceGap):
        replica.apply_changes([change(3, "a", {"set": {"n": 3}})])
    assert replica.seq == 1 and replica.records("todos") == {"a": {"n": 1}}, "a gap changes nothing"


def test_local_changes_show_at_once_and_rebase_over_server_changes() -> None:
    replica = Replica(ROOM, "me")
    replica.apply_changes([change(1, "t", {"set": {"title": "milk", "done": False, "votes": 1}})])
    events = replica.add_local(local(10, "t", {"kind": "set", "fields": {"done": True}}))
    replica.add_local(local(11, "t", {"kind": "incr", "field": "votes", "by": 2}))
    assert events[0].origin == "local" and events[0].value == {
        "title": "milk",
        "done": True,
        "votes": 1,
    }
    assert replica.records("todos") == {"t": {"title": "milk", "done": True, "votes": 3}}

    # Another client renames and votes; the pending changes stay on top.
    replica.apply_changes([change(2, "t", {"set": {"title": "oat milk"}, "incr": {"votes": 5}})])
    assert replica.records("todos") == {"t": {"title": "oat milk", "done": True, "votes": 8}}
    assert replica.confirmed_record(("todos", "t")) == {
        "title": "oat milk",
        "done": False,
        "votes": 6,
    }

    # Our own changes come back: pending is dropped, the view is the server's.
    replica.apply_changes([change(3, "t", {"set": {"done": True}}, client_id="me", client_seq=10)])
    assert [c.client_seq for c in replica.pending] == [11]
    replica.apply_changes([change(4, "t", {"incr": {"votes": 2}}, client_id="me", client_seq=11)])
    assert replica.pending == []
    assert replica.records("todos") == {"t": {"title": "oat milk", "done": True, "votes": 8}}


def test_a_local_change_that_lost_is_replaced_by_the_server_value() -> None:
    replica = Replica(ROOM, "me")
    replica.add_local(local(1, "t", {"kind": "set", "fields": {"title": "mine"}}))
    # The server ordered a concurrent write after ours: our change's patch is empty.
    replica.apply_changes([change(1, "t", {"set": {"title": "theirs"}})])
    assert replica.records("todos") == {"t": {"title": "mine"}}
    applied = replica.apply_changes([change(2, "t", {}, client_id="me", client_seq=1)])
    assert replica.records("todos") == {"t": {"title": "theirs"}}
    assert [(e.previous, e.value) for e in applied.events] == [
        ({"title": "mine"}, {"title": "theirs"})
    ]


def test_acks_keep_pending_until_the_change_arrives_and_drop_duplicates() -> None:
    replica = Replica(ROOM, "me")
    for n in (1, 2, 3):
        replica.add_local(local(n, f"k{n}", {"kind": "incr", "field": "n"}))
    replica.apply_changes([change(1, "k1", {"set": {"n": 1}}, client_id="me", client_seq=1)])
    applied = replica.ack(
        [
            {"client_seq": 1, "seq": 1, "status": "applied"},
            {"client_seq": 2, "seq": 2, "status": "applied"},
            {"client_seq": 3, "seq": 0, "status": "duplicate"},
        ]
    )
    assert applied.dropped == [3], "a duplicate the log no longer holds is long confirmed"
    assert [c.client_seq for c in replica.pending] == [2]
    assert replica.unsent() == [], "acknowledged changes are not pushed again"
    assert replica.records("todos")["k2"] == {"n": 1}
    replica.apply_changes([change(2, "k2", {"set": {"n": 1}}, client_id="me", client_seq=2)])
    assert replica.pending == []


def test_rejected_changes_vanish_from_the_view() -> None:
    replica = Replica(ROOM, "me")
    replica.add_local(local(1, "t", {"kind": "set", "fields": {"a": 1}}))
    applied = replica.reject([1])
    assert replica.records("todos") == {} and replica.pending == []
    assert applied.dropped == [1] and applied.events[0].deleted


def test_a_server_behind_the_client_resets_or_resends_a_snapshot() -> None:
    replica = Replica(ROOM, "me", seq=9, records={("todos", "a"): {"x": 1}})
    replica.add_local(local(5, "b", {"kind": "set", "fields": {"y": 2}}))
    replica.pending[0].acked_seq = 9
    applied = replica.subscribed(since=9, head=0)
    assert replica.seq == 0 and applied.replaced
    assert replica.records("todos") == {"b": {"y": 2}}
    assert [c.client_seq for c in replica.unsent()] == [5], "the server lost it: push again"

    replica = Replica(ROOM, "me", seq=9, records={("todos", "a"): {"x": 1}})
    replica.subscribed(since=9, head=4)
    assert not replica.caught_up
    replica.snapshot_chunk([], 4, True)
    assert replica.caught_up and replica.seq == 4 and replica.records("todos") == {}


def test_resuming_with_since_expects_only_the_missing_changes() -> None:
    replica = Replica(ROOM, "me", seq=4)
    replica.subscribed(since=4, head=6)
    assert not replica.caught_up
    replica.apply_changes([change(5, "a", {"set": {"n": 1}}), change(6, "a", {"incr": {"n": 1}})])
    assert replica.caught_up and replica.records("todos") == {"a": {"n": 2}}

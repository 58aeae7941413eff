"""The merge rules of docs/merge.md, one scenario each."""

from __future__ import annotations

from accord.sync.merge import (
    Clock,
    Conflict,
    DeleteOp,
    Fields,
    IncrOp,
    Op,
    RecordState,
    SetOp,
    View,
    dump_state,
    load_state,
    merge,
    visible,
)
from accord.sync.patch import apply_patch, diff


def clock(ts: int, client_id: str = "c", user_id: str = "u", client_seq: int = 1) -> Clock:
    return (ts, client_id, user_id, client_seq)


def run(*ops: tuple[Clock, Op]) -> tuple[RecordState, list[list[Conflict]]]:
    state = RecordState()
    conflicts = []
    for seq, (at, op) in enumerate(ops, start=1):
        state, lost = merge(state, at, op, seq)
        conflicts.append(lost)
    return state, conflicts


def test_set_creates_a_record() -> None:
    state, conflicts = run((clock(1), SetOp({"title": "milk", "done": False})))
    assert visible(state) == {"done": False, "title": "milk"}
    assert conflicts == [[]]


def test_concurrent_sets_with_equal_ts_are_won_by_the_higher_client_id() -> None:
    a = (clock(5, "alice"), SetOp({"title": "from alice"}))
    b = (clock(5, "bob"), SetOp({"title": "from bob"}))
    one, lost_one = run(a, b)
    two, lost_two = run(b, a)
    assert visible(one) == visible(two) == {"title": "from bob"}
    assert lost_one == [[], []]
    assert lost_two == [[], [Conflict("title", clock(5, "bob"))]]


def test_later_set_wins_per_field_and_older_fields_survive() -> None:
    state, conflicts = run(
        (clock(2), SetOp({"a": 1, "b": 1})),
        (clock(1, "z"), SetOp({"b": 2, "c": 2})),
    )
    assert visible(state) == {"a": 1, "b": 1, "c": 2}
    assert conflicts[1] == [Conflict("b", clock(2))]


def test_delete_then_later_set_revives_with_only_the_new_fields() -> None:
    state, _ = run(
        (clock(1), SetOp({"a": 1, "b": 2})),
        (clock(2), DeleteOp()),
        (clock(3), SetOp({"b": 3})),
    )
    assert visible(state) == {"b": 3}


def test_delete_beats_an_earlier_set_delivered_late() -> None:
    state, conflicts = run((clock(5), DeleteOp()), (clock(3), SetOp({"a": 1})))
    assert visible(state) is None
    assert conflicts[1] == [Conflict("a", clock(5))]


def test_delete_keeps_fields_newer_than_itself() -> None:
    state, _ = run(
        (clock(1), SetOp({"a": 1})),
        (clock(3), SetOp({"b": 2})),
        (clock(2), DeleteOp()),
    )
    assert visible(state) == {"b": 2}


def test_increments_from_many_clients_all_count() -> None:
    ops = [(clock(1, f"c{i}", client_seq=i), IncrOp("votes", i)) for i in range(1, 6)]
    forward, _ = run(*ops)
    backward, _ = run(*reversed(ops))
    assert visible(forward) == visible(backward) == {"votes": 15}


def test_incr_on_a_set_number_adds_to_it() -> None:
    state, _ = run((clock(1), SetOp({"votes": 10})), (clock(2, "b"), IncrOp("votes", -3)))
    assert visible(state) == {"votes": 7}


def test_set_on_a_counter_field_replaces_earlier_increments_only() -> None:
    state, conflicts = run(
        (clock(1, "a"), IncrOp("votes", 4)),
        (clock(3, "b"), IncrOp("votes", 2)),
        (clock(2, "c"), SetOp({"votes": 100})),
    )
    assert visible(state) == {"votes": 102}
    assert conflicts == [[], [], []]


def test_incr_older_than_the_register_loses() -> None:
    state, conflicts = run((clock(5), SetOp({"votes": 1})), (clock(4, "b"), IncrOp("votes", 9)))
    assert visible(state) == {"votes": 1}
    assert conflicts[1] == [Conflict("votes", clock(5))]


def test_incr_vs_delete() -> None:
    late_delete, _ = run((clock(1), IncrOp("votes", 2)), (clock(2), DeleteOp()))
    assert visible(late_delete) is None
    late_incr, conflicts = run((clock(2), DeleteOp()), (clock(1), IncrOp("votes", 2)))
    assert visible(late_incr) is None
    assert conflicts[1] == [Conflict("votes", clock(2))]
    revived, _ = run((clock(2), DeleteOp()), (clock(3), IncrOp("votes", 2)))
    assert visible(revived) == {"votes": 2}


def test_incr_on_a_string_field_is_kept_but_not_shown() -> None:
    state, _ = run((clock(1), SetOp({"votes": "many"})), (clock(2), IncrOp("votes", 1)))
    assert visible(state) == {"votes": "many"}
    assert state.increments == {"votes": {clock(2): 1}}


def test_incr_on_a_bool_field_is_not_arithmetic() -> None:
    state, _ = run((clock(1), SetOp({"flag": True})), (clock(2), IncrOp("flag", 1)))
    assert visible(state) == {"flag": True}


def test_float_base_plus_increments() -> None:
    state, _ = run((clock(1), SetOp({"score": 1.5})), (clock(2), IncrOp("score", 2)))
    assert visible(state) == {"score": 3.5}


def test_state_survives_a_storage_round_trip() -> None:
    state, _ = run(
        (clock(1), SetOp({"a": {"nested": [1, 2.5, None]}})),
        (clock(2, "x"), IncrOp("n", 3)),
        (clock(0, "y"), DeleteOp()),
    )
    assert load_state(dump_state(state)) == state


def _plain(fields: Fields | None) -> View | None:
    return None if fields is None else {name: ("value", v) for name, v in fields.items()}


def _patch(before: Fields | None, after: Fields | None, op: Op) -> dict[str, object]:
    return diff(_plain(before), _plain(after), op)


def test_patch_shapes() -> None:
    assert _patch(None, {"a": 1}, SetOp({"a": 1})) == {"set": {"a": 1}}
    assert _patch(None, {"votes": 3}, IncrOp("votes", 3)) == {"set": {"votes": 3}}
    assert _patch({"a": 1}, None, DeleteOp()) == {"deleted": True}
    assert _patch({"v": 1}, {"v": 4}, IncrOp("v", 3)) == {"incr": {"v": 3}}
    assert _patch({"a": 1}, {"a": 1}, SetOp({"a": 0})) == {}
    assert _patch(None, None, DeleteOp()) == {}
    mixed = _patch({"a": 1, "b": 2}, {"b": 3, "c": 4}, SetOp({"b": 3, "c": 4}))
    assert list(mixed) == ["unset", "set"]
    assert mixed == {"unset": ["a"], "set": {"b": 3, "c": 4}}


def test_patch_distinguishes_int_from_float_and_bool() -> None:
    assert _patch({"a": 1}, {"a": 1.0}, SetOp({"a": 1.0})) == {"set": {"a": 1.0}}
    assert _patch({"a": 1}, {"a": True}, SetOp({"a": True})) == {"set": {"a": True}}


def test_apply_patch() -> None:
    assert apply_patch(None, {"set": {"a": 1}}) == {"a": 1}
    assert apply_patch({"a": 1}, {"deleted": True}) is None
    assert apply_patch({"a": 1, "b": 2}, {"unset": ["a"], "set": {"c": 3}}) == {"b": 2, "c": 3}
    assert apply_patch({"v": 1}, {"incr": {"v": 2, "w": 5}}) == {"v": 3, "w": 5}
    assert apply_patch({"a": 1}, {}) == {"a": 1}


def test_pages_are_cut_by_bytes_but_never_empty() -> None:
    from accord.sync.engine import split_by_bytes

    assert split_by_bytes([3, 3, 3, 9, 1], lambda n: n, budget=6) == [[3, 3], [3], [9], [1]]
    assert split_by_bytes([], lambda n: n, budget=6) == []

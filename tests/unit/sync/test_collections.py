"""Add-wins sets and RGA lists in a record, and their patches: one scenario each."""

from __future__ import annotations

from accord.sync.lattice import Clock
from accord.sync.merge import (
    AddOp,
    Conflict,
    DeleteOp,
    InsertOp,
    Op,
    RecordState,
    RemoveItemsOp,
    RemoveOp,
    SetOp,
    dump_state,
    load_state,
    merge,
    unknown_ids,
    view,
    visible,
)
from accord.sync.patch import apply_patch, diff
from accord.sync.rga import element_id


def clock(ts: int, client_id: str = "c", user_id: str = "u", client_seq: int = 1) -> Clock:
    return (ts, client_id, user_id, client_seq)


def run(*ops: tuple[Clock, Op]) -> tuple[RecordState, list[list[Conflict]]]:
    """Merge in the order given; the n-th op gets seq n."""
    state = RecordState()
    conflicts = []
    for seq, (at, op) in enumerate(ops, start=1):
        state, lost = merge(state, at, op, seq)
        conflicts.append(lost)
    return state, conflicts


def ids(state: RecordState, name: str = "text") -> list[str]:
    shown = visible(state)
    assert shown is not None
    return [item["id"] for item in shown[name]]  # type: ignore[index, union-attr, call-overload]


def values(state: RecordState, name: str = "text") -> list[object]:
    shown = visible(state)
    assert shown is not None
    return [item["value"] for item in shown[name]]  # type: ignore[index, union-attr, call-overload]


# Sets


def test_add_creates_the_record_and_lists_elements_in_canonical_order() -> None:
    state, conflicts = run((clock(1), AddOp("tags", ("b", "a", 3, "a"))))
    # By JSON text: "\"a\"" < "\"b\"" < "3".
    assert visible(state) == {"tags": ["a", "b", 3]}
    assert conflicts == [[]]


def test_a_remove_takes_out_the_adds_it_had_seen() -> None:
    state, _ = run(
        (clock(1, "a", client_seq=1), AddOp("tags", ("x", "y"))),
        (clock(2, "b", client_seq=2), RemoveOp("tags", ("x",), seen=1)),
    )
    assert visible(state) == {"tags": ["y"]}


def test_concurrent_add_and_remove_the_add_wins() -> None:
    # b removes "x" having seen only seq 1; a's second add (seq 2) was not seen.
    add_1 = (clock(1, "a", client_seq=1), AddOp("tags", ("x",)))
    add_2 = (clock(3, "a", client_seq=2), AddOp("tags", ("x",)))
    remove = (clock(4, "b", client_seq=1), RemoveOp("tags", ("x",), seen=1))
    state, _ = run(add_1, add_2, remove)
    assert visible(state) == {"tags": ["x"]}


def test_a_remove_without_seen_takes_out_every_earlier_add() -> None:
    state, _ = run(
        (clock(5, "a", client_seq=1), AddOp("tags", ("x",))),
        (clock(1, "b", client_seq=1), RemoveOp("tags", ("x",))),
        (clock(2, "c", client_seq=1), AddOp("tags", ("x", "z"))),
    )
    assert visible(state) == {"tags": ["x", "z"]}
    emptied, _ = run(
        (clock(1, "a", client_seq=1), AddOp("tags", ("x",))),
        (clock(2, "b", client_seq=1), RemoveOp("tags", ("x",))),
    )
    assert visible(emptied) == {"tags": []}


def test_a_remove_covers_the_removers_own_earlier_adds_even_unseen() -> None:
    state, _ = run(
        (clock(1, "a", client_seq=7), AddOp("tags", ("x",))),
        (clock(2, "a", client_seq=8), RemoveOp("tags", ("x",), seen=0)),
    )
    assert visible(state) == {"tags": []}


def test_delete_removes_older_adds_and_a_later_add_revives() -> None:
    state, conflicts = run(
        (clock(1), AddOp("tags", ("old",))),
        (clock(3), DeleteOp()),
        (clock(2, "late"), AddOp("tags", ("concurrent",))),
    )
    assert visible(state) is None
    assert conflicts[2] == [Conflict("tags", clock(3))]
    revived, _ = run(
        (clock(1), AddOp("tags", ("old",))),
        (clock(3), DeleteOp()),
        (clock(4), AddOp("tags", ("new",))),
    )
    assert visible(revived) == {"tags": ["new"]}


def test_a_plain_write_replaces_a_set_and_older_adds_lose() -> None:
    state, conflicts = run(
        (clock(1), AddOp("tags", ("a",))),
        (clock(3), SetOp({"tags": "none"})),
        (clock(2, "z"), AddOp("tags", ("b",))),
    )
    assert visible(state) == {"tags": "none"}
    assert conflicts[2] == [Conflict("tags", clock(3))]
    again, _ = run((clock(3), SetOp({"tags": "none"})), (clock(4), AddOp("tags", ("c",))))
    assert visible(again) == {"tags": ["c"]}


# Lists


def test_insert_gives_clock_derived_ids_in_order() -> None:
    at = clock(1, "web", client_seq=4)
    state, _ = run((at, InsertOp("text", None, ("h", "i"))))
    assert ids(state) == ["4.0@web", "4.1@web"] == [element_id(at, 0), element_id(at, 1)]
    assert values(state) == ["h", "i"]


def test_insert_after_an_element_and_at_the_start() -> None:
    state, _ = run(
        (clock(1, client_seq=1), InsertOp("text", None, ("a", "c"))),
        (clock(2, client_seq=2), InsertOp("text", "1.0@c", ("b",))),
        (clock(3, client_seq=3), InsertOp("text", None, ("_",))),
    )
    assert values(state) == ["_", "a", "b", "c"]


def test_concurrent_runs_at_one_place_do_not_interleave_and_the_newest_comes_first() -> None:
    base = (clock(1, "a", client_seq=1), InsertOp("text", None, ("[", "]")))
    older = (clock(5, "a", client_seq=2), InsertOp("text", "1.0@a", ("a", "b")))
    newer = (clock(6, "b", client_seq=1), InsertOp("text", "1.0@a", ("x", "y")))
    one, _ = run(base, older, newer)
    two, _ = run(base, newer, older)
    assert values(one) == values(two) == ["[", "x", "y", "a", "b", "]"]


def test_removed_elements_stay_as_anchors() -> None:
    state, _ = run(
        (clock(1, client_seq=1), InsertOp("text", None, ("a", "b", "c"))),
        (clock(2, client_seq=2), RemoveItemsOp("text", ("1.1@c",))),
        (clock(3, "z", client_seq=1), InsertOp("text", "1.1@c", ("B",))),
    )
    assert values(state) == ["a", "B", "c"]
    assert unknown_ids(state, RemoveItemsOp("text", ("1.1@c", "9.0@c"))) == ["9.0@c"]
    assert unknown_ids(state, InsertOp("text", "1.1@c", ("x",))) == []
    assert unknown_ids(state, InsertOp("other", "1.1@c", ("x",))) == ["1.1@c"]


def test_a_remove_that_arrives_before_its_insert_still_removes_it() -> None:
    insert = (clock(1, client_seq=1), InsertOp("text", None, ("a", "b")))
    remove = (clock(2, "r"), RemoveItemsOp("text", ("1.0@c",)))
    first, _ = run(insert, remove)
    second, _ = run(remove, insert)
    assert dump_state(first) == dump_state(second)
    assert values(first) == ["b"]


def test_delete_drops_older_elements_but_later_inserts_after_them_show() -> None:
    state, _ = run(
        (clock(1, client_seq=1), InsertOp("text", None, ("a", "b"))),
        (clock(2, client_seq=2), DeleteOp()),
        (clock(3, client_seq=3), InsertOp("text", "1.1@c", ("c",))),
    )
    assert values(state) == ["c"]


def test_state_with_sets_and_lists_survives_a_storage_round_trip() -> None:
    state, _ = run(
        (clock(1, client_seq=1), AddOp("tags", ("x", 1, None))),
        (clock(2, client_seq=2), RemoveOp("tags", ("x",), seen=1)),
        (clock(3, client_seq=3), InsertOp("text", None, ("a", {"b": [1]}))),
        (clock(4, client_seq=4), RemoveItemsOp("text", ("3.0@c", "8.0@c"))),
    )
    assert load_state(dump_state(state)) == state


# Patches


def patch_of(state: RecordState, at: Clock, op: Op, seq: int) -> dict[str, object]:
    after, _ = merge(state, at, op, seq)
    return diff(view(state), view(after), op)


def test_set_patches_add_and_remove_elements() -> None:
    state, _ = run((clock(1, client_seq=1), AddOp("tags", ("a", "b"))))
    assert patch_of(state, clock(2, client_seq=2), AddOp("tags", ("c", "a")), 2) == {
        "add": {"tags": ["c"]}
    }
    assert patch_of(state, clock(2, client_seq=2), RemoveOp("tags", ("a",)), 2) == {
        "remove": {"tags": ["a"]}
    }
    assert patch_of(state, clock(2, client_seq=2), RemoveOp("tags", ("zz",)), 2) == {}


def test_list_patches_insert_after_the_visible_neighbour_and_delete_by_id() -> None:
    state, _ = run(
        (clock(1, client_seq=1), InsertOp("text", None, ("a", "b", "c"))),
        (clock(2, client_seq=2), RemoveItemsOp("text", ("1.1@c",))),
    )
    # Inserted after the removed "b": the patch anchors it on the visible "a".
    assert patch_of(state, clock(3, client_seq=3), InsertOp("text", "1.1@c", ("X", "Y")), 3) == {
        "list": {
            "text": [
                {
                    "insert": [{"id": "3.0@c", "value": "X"}, {"id": "3.1@c", "value": "Y"}],
                    "after": "1.0@c",
                }
            ]
        }
    }
    assert patch_of(state, clock(3, client_seq=3), RemoveItemsOp("text", ("1.0@c",)), 3) == {
        "list": {"text": [{"delete": "1.0@c"}]}
    }


def test_a_change_of_kind_is_sent_as_a_whole_value() -> None:
    state, _ = run((clock(1, client_seq=1), AddOp("tags", ("a",))))
    assert patch_of(state, clock(2, client_seq=2), SetOp({"tags": 5}), 2) == {"set": {"tags": 5}}
    assert patch_of(state, clock(2, client_seq=2), InsertOp("tags", None, (1,)), 2) == {
        "set": {"tags": [{"id": "2.0@c", "value": 1}]}
    }


def test_apply_patch_for_sets_and_lists() -> None:
    record = {"tags": ["a", "c"], "text": [{"id": "1.0@c", "value": "a"}]}
    assert apply_patch(record, {"remove": {"tags": ["a"]}, "add": {"tags": ["b"]}}) == {
        "tags": ["b", "c"],
        "text": [{"id": "1.0@c", "value": "a"}],
    }
    patched = apply_patch(
        record,
        {
            "list": {
                "text": [
                    {"insert": [{"id": "2.0@c", "value": "z"}], "after": None},
                    {"insert": [{"id": "3.0@c", "value": "q"}], "after": "1.0@c"},
                    {"delete": "1.0@c"},
                ]
            }
        },
    )
    assert patched is not None
    assert patched["text"] == [{"id": "2.0@c", "value": "z"}, {"id": "3.0@c", "value": "q"}]
    assert record["text"] == [{"id": "1.0@c", "value": "a"}]

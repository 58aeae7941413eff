"""Patch application and local op approximations, without I/O."""

from __future__ import annotations

from typing import Any

import pytest
from accord.client.patch import PATCH_HANDLERS, UnknownPatch, apply_local_op, apply_patch


@pytest.mark.parametrize(
    ("record", "patch", "expected"),
    [
        (None, {"set": {"a": 1}}, {"a": 1}),
        ({"a": 1, "b": 2}, {"deleted": True}, None),
        ({"a": 1, "b": 2}, {"unset": ["a"]}, {"b": 2}),
        ({"a": 1}, {"set": {"a": 2, "b": 3}}, {"a": 2, "b": 3}),
        ({"n": 5}, {"incr": {"n": -2}}, {"n": 3}),
        (None, {"incr": {"n": 4}}, {"n": 4}),
        ({"a": 1}, {}, {"a": 1}),
        ({"a": 1, "b": 1}, {"unset": ["a"], "set": {"c": 1}, "incr": {"b": 2}}, {"b": 3, "c": 1}),
        (None, {"unset": ["a"]}, None),
    ],
)
def test_patches_follow_the_protocol_table(
    record: dict[str, Any] | None, patch: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    before = None if record is None else dict(record)
    assert apply_patch(record, patch) == expected
    assert record == before, "patches never mutate their input"


def test_patch_keys_apply_in_the_order_listed() -> None:
    assert apply_patch({"a": 1}, {"deleted": True, "set": {"b": 2}}) == {"b": 2}
    assert apply_patch({"a": 1}, {"set": {"b": 2}, "deleted": True}) is None


def test_unknown_patch_keys_fail_loudly_and_new_ones_plug_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(UnknownPatch):
        apply_patch({"a": 1}, {"frobnicate": {"a": 2}})

    def double(record: dict[str, Any] | None, fields: Any) -> dict[str, Any]:
        result = dict(record or {})
        for name in fields:
            result[name] = result.get(name, 0) * 2
        return result

    monkeypatch.setitem(PATCH_HANDLERS, "frobnicate", double)
    assert apply_patch({"a": 3}, {"frobnicate": ["a"]}) == {"a": 6}


def test_set_and_list_patches() -> None:
    record = {
        "tags": ["b", "d"],
        "items": [{"id": "1.0@x", "value": "a"}, {"id": "1.1@x", "value": "b"}],
    }
    patched = apply_patch(record, {"remove": {"tags": ["d"]}, "add": {"tags": ["c", "a"]}})
    assert patched is not None and patched["tags"] == ["a", "b", "c"]
    steps = [
        {"delete": "1.0@x"},
        {"insert": [{"id": "2.0@y", "value": "z"}], "after": "1.1@x"},
        {"insert": [{"id": "3.0@y", "value": "s"}], "after": None},
    ]
    listed = apply_patch(record, {"list": {"items": steps}})
    assert listed is not None
    assert [i["value"] for i in listed["items"]] == [
        "s",
        "b",
        "z",
    ]
    assert apply_patch(None, {"add": {"tags": [{"k": 1}]}}) == {"tags": [{"k": 1}]}


def test_local_ops_approximate_the_server() -> None:
    assert apply_local_op(None, {"kind": "set", "fields": {"a": 1}}) == {"a": 1}
    assert apply_local_op({"a": 1}, {"kind": "delete"}) is None
    assert apply_local_op({"n": 2}, {"kind": "incr", "field": "n", "by": 3}) == {"n": 5}
    assert apply_local_op(None, {"kind": "incr", "field": "n"}) == {"n": 1}
    # The server keeps a non-numeric value and ignores the increment.
    assert apply_local_op({"n": "x"}, {"kind": "incr", "field": "n", "by": 3}) == {"n": "x"}
    assert apply_local_op({"n": True}, {"kind": "incr", "field": "n", "by": 3}) == {"n": True}
    assert apply_local_op({"t": ["b"]}, {"kind": "add", "field": "t", "values": ["a", "b"]}) == {
        "t": ["a", "b"]
    }
    assert apply_local_op({"t": ["a", "b"]}, {"kind": "remove", "field": "t", "values": ["a"]}) == {
        "t": ["b"]
    }
    inserted = apply_local_op(
        {"l": [{"id": "1.0@o", "value": "x"}]},
        {"kind": "insert", "field": "l", "after": "1.0@o", "values": ["y", "z"]},
        ("me", 7),
    )
    assert inserted == {
        "l": [
            {"id": "1.0@o", "value": "x"},
            {"id": "7.0@me", "value": "y"},
            {"id": "7.1@me", "value": "z"},
        ]
    }
    assert apply_local_op(inserted, {"kind": "remove_items", "field": "l", "ids": ["7.0@me"]}) == {
        "l": [{"id": "1.0@o", "value": "x"}, {"id": "7.1@me", "value": "z"}]
    }
    # A kind without an approximation shows nothing until the server confirms it.
    assert apply_local_op({"a": 1}, {"kind": "teleport"}) == {"a": 1}

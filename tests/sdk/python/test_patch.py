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


def test_unknown_patch_keys_fail_loudly_and_new_ones_plug_in(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownPatch):
        apply_patch({"tags": ["a"]}, {"add": {"tags": ["b"]}})

    def add(record: dict[str, Any] | None, fields: Any) -> dict[str, Any]:
        result = dict(record or {})
        for name, items in fields.items():
            result[name] = sorted({*result.get(name, []), *items})
        return result

    monkeypatch.setitem(PATCH_HANDLERS, "add", add)
    assert apply_patch({"tags": ["a"]}, {"add": {"tags": ["b"]}}) == {"tags": ["a", "b"]}


def test_local_ops_approximate_the_server() -> None:
    assert apply_local_op(None, {"kind": "set", "fields": {"a": 1}}) == {"a": 1}
    assert apply_local_op({"a": 1}, {"kind": "delete"}) is None
    assert apply_local_op({"n": 2}, {"kind": "incr", "field": "n", "by": 3}) == {"n": 5}
    assert apply_local_op(None, {"kind": "incr", "field": "n"}) == {"n": 1}
    # The server keeps a non-numeric value and ignores the increment.
    assert apply_local_op({"n": "x"}, {"kind": "incr", "field": "n", "by": 3}) == {"n": "x"}
    assert apply_local_op({"n": True}, {"kind": "incr", "field": "n", "by": 3}) == {"n": True}
    # A kind without an approximation shows nothing until the server confirms it.
    assert apply_local_op({"a": 1}, {"kind": "add", "field": "tags", "value": "x"}) == {"a": 1}

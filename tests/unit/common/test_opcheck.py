"""accord.common.opcheck: every pushed change either checks out in its stored form or
raises OpError with the protocol code and the path of the bad value."""

from __future__ import annotations

from typing import Any

import pytest
from accord.common.opcheck import OpError, check_change, check_op
from accord.common.rules import MAX_IDS, MAX_INT64, MAX_SAFE_INT, MIN_INT64
from hypothesis import given, settings
from hypothesis import strategies as st


def change(op: Any, **over: Any) -> dict[str, Any]:
    return {"client_seq": 1, "collection": "todos", "key": "t-1", "op": op} | over


@pytest.mark.parametrize(
    ("op", "stored"),
    [
        (
            {"kind": "set", "fields": {"a": 1}, "extra": True},
            {"kind": "set", "fields": {"a": 1}},
        ),
        ({"kind": "delete", "fields": {}}, {"kind": "delete"}),
        ({"field": "n", "kind": "incr"}, {"kind": "incr", "field": "n", "by": 1}),
        (
            {"kind": "incr", "field": "n", "by": MIN_INT64},
            {"kind": "incr", "field": "n", "by": MIN_INT64},
        ),
        (
            {"kind": "add", "field": "t", "values": ["a", MAX_SAFE_INT, -MAX_SAFE_INT, True, None]},
            {"kind": "add", "field": "t", "values": ["a", MAX_SAFE_INT, -MAX_SAFE_INT, True, None]},
        ),
        (
            {"kind": "remove", "field": "t", "values": ["a"]},
            {"kind": "remove", "field": "t", "values": ["a"]},
        ),
        (
            {"kind": "remove", "field": "t", "values": ["a"], "seen": MAX_INT64},
            {"kind": "remove", "field": "t", "values": ["a"], "seen": MAX_INT64},
        ),
        (
            {"kind": "insert", "field": "x", "values": [{"any": [1.5]}]},
            {"kind": "insert", "field": "x", "after": None, "values": [{"any": [1.5]}]},
        ),
        (
            {"kind": "remove_items", "field": "x", "ids": ["1.0@a", "1.1@a", "1.0@a"]},
            {"kind": "remove_items", "field": "x", "ids": ["1.0@a", "1.1@a"]},
        ),
    ],
)
def test_good_ops_come_back_in_their_stored_form(
    op: dict[str, Any], stored: dict[str, Any]
) -> None:
    checked = check_change(change(op), 0)
    assert checked == (1, "todos", "t-1", 0, stored)
    assert list(checked[4]) == list(stored)  # the key order too: it is stored as text
    assert check_op(checked[4], 0) == stored  # the stored form checks out again


def test_ts_and_client_seq_at_their_bounds() -> None:
    assert check_change(change({"kind": "delete"}, client_seq=MAX_INT64, ts=MAX_INT64), 0)[:4] == (
        MAX_INT64,
        "todos",
        "t-1",
        MAX_INT64,
    )
    assert check_change(change({"kind": "delete"}, ts=None), 0)[3] == 0


BAD = [
    ("not a change", "BAD_REQUEST", "changes[4]"),
    (change({"kind": "delete"}, client_seq=0), "BAD_REQUEST", "changes[4].client_seq"),
    (change({"kind": "delete"}, client_seq=2**63), "BAD_REQUEST", "changes[4].client_seq"),
    (change({"kind": "delete"}, client_seq=True), "BAD_REQUEST", "changes[4].client_seq"),
    (change({"kind": "delete"}, client_seq=1.0), "BAD_REQUEST", "changes[4].client_seq"),
    (change({"kind": "delete"}, client_seq="1"), "BAD_REQUEST", "changes[4].client_seq"),
    (change({"kind": "delete"}, ts=-1), "BAD_REQUEST", "changes[4].ts"),
    (change({"kind": "delete"}, ts=2**63), "BAD_REQUEST", "changes[4].ts"),
    (change({"kind": "delete"}, ts=1.5), "BAD_REQUEST", "changes[4].ts"),
    (change({"kind": "delete"}, ts=False), "BAD_REQUEST", "changes[4].ts"),
    (change({"kind": "delete"}, collection=""), "BAD_REQUEST", "changes[4].collection"),
    (change({"kind": "delete"}, collection="c" * 257), "BAD_REQUEST", "changes[4].collection"),
    (change({"kind": "delete"}, key="k\x00"), "BAD_REQUEST", "changes[4].key"),
    (change({"kind": "delete"}, key=5), "BAD_REQUEST", "changes[4].key"),
    (change(None), "BAD_REQUEST", "changes[4].op"),
    (change({"kind": 3}), "BAD_REQUEST", "changes[4].op.kind"),
    (change({}), "BAD_REQUEST", "changes[4].op.kind"),
    (change({"kind": "teleport"}), "UNSUPPORTED", "changes[4].op.kind"),
    (change({"kind": "set", "fields": [1]}), "BAD_REQUEST", "changes[4].op.fields"),
    (change({"kind": "set", "fields": {"": 1}}), "BAD_REQUEST", "changes[4].op.fields['']"),
    (change({"kind": "set", "fields": {"a\x00": 1}}), "BAD_REQUEST", "changes[4].op.fields["),
    (change({"kind": "incr", "by": 1}), "BAD_REQUEST", "changes[4].op.field"),
    (change({"kind": "incr", "field": "n", "by": 1.5}), "BAD_REQUEST", "changes[4].op.by"),
    (change({"kind": "incr", "field": "n", "by": True}), "BAD_REQUEST", "changes[4].op.by"),
    (change({"kind": "incr", "field": "n", "by": 2**63}), "BAD_REQUEST", "changes[4].op.by"),
    (
        change({"kind": "incr", "field": "n", "by": MIN_INT64 - 1}),
        "BAD_REQUEST",
        "changes[4].op.by",
    ),
    (change({"kind": "add", "field": "t"}), "BAD_REQUEST", "changes[4].op.values"),
    (change({"kind": "add", "field": "t", "values": []}), "BAD_REQUEST", "changes[4].op.values"),
    (change({"kind": "add", "field": "t", "values": [0.5]}), "BAD_REQUEST", "changes[4].op.values"),
    (change({"kind": "add", "field": "t", "values": [{}]}), "BAD_REQUEST", "changes[4].op.values"),
    (
        change({"kind": "add", "field": "t", "values": [MAX_SAFE_INT + 1]}),
        "BAD_REQUEST",
        "changes[4].op.values",
    ),
    (
        change({"kind": "remove", "field": "t", "values": [-MAX_SAFE_INT - 1]}),
        "BAD_REQUEST",
        "changes[4].op.values",
    ),
    (
        change({"kind": "remove", "field": "t", "values": ["a"], "seen": -1}),
        "BAD_REQUEST",
        "changes[4].op.seen",
    ),
    (
        change({"kind": "remove", "field": "t", "values": ["a"], "seen": 2**63}),
        "BAD_REQUEST",
        "changes[4].op.seen",
    ),
    (
        change({"kind": "remove", "field": "t", "values": ["a"], "seen": 3.0}),
        "BAD_REQUEST",
        "changes[4].op.seen",
    ),
    (
        change({"kind": "insert", "field": "x", "after": "", "values": [1]}),
        "BAD_REQUEST",
        "changes[4].op.after",
    ),
    (
        change({"kind": "insert", "field": "x", "values": "ab"}),
        "BAD_REQUEST",
        "changes[4].op.values",
    ),
    (change({"kind": "remove_items", "field": "x", "ids": []}), "BAD_REQUEST", "changes[4].op.ids"),
    (
        change({"kind": "remove_items", "field": "x", "ids": ["a", 1]}),
        "BAD_REQUEST",
        "changes[4].op.ids[1]",
    ),
    (
        change({"kind": "remove_items", "field": "x", "ids": ["a"] * (MAX_IDS + 1)}),
        "TOO_LARGE",
        "changes[4].op.ids",
    ),
]


@pytest.mark.parametrize(("raw", "code", "path"), BAD, ids=[p for _, _, p in BAD])
def test_bad_changes_raise_the_code_and_the_path(raw: Any, code: str, path: str) -> None:
    with pytest.raises(OpError) as caught:
        check_change(raw, 4)
    assert caught.value.code == code
    assert caught.value.path.startswith(path)
    assert caught.value.message.startswith(caught.value.path + " ")


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**65), 2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)
op_keys = st.sampled_from(["kind", "field", "fields", "by", "values", "seen", "after", "ids"])
kinds = st.sampled_from(["set", "delete", "incr", "add", "remove", "insert", "remove_items", "x"])
ops = st.dictionaries(op_keys, json_values, max_size=5) | st.fixed_dictionaries(
    {"kind": kinds},
    optional={
        "field": st.text(max_size=3) | json_values,
        "fields": st.dictionaries(st.text(max_size=3), json_values, max_size=3) | json_values,
        "by": st.integers(-(2**64), 2**64) | json_values,
        "values": st.lists(scalars, max_size=3) | json_values,
        "seen": st.integers(-2, 2**64) | json_values,
        "after": st.text(max_size=3) | json_values,
        "ids": st.lists(st.text(max_size=3), max_size=3) | json_values,
    },
)
changes = json_values | st.fixed_dictionaries(
    {"op": ops | json_values},
    optional={
        "client_seq": st.integers(-2, 2**64) | json_values,
        "collection": st.text(max_size=3) | json_values,
        "key": st.text(max_size=3) | json_values,
        "ts": st.integers(-2, 2**64) | json_values,
    },
)


@settings(max_examples=1500)
@given(changes)
def test_random_changes_check_out_or_raise_op_error(raw: Any) -> None:
    try:
        client_seq, collection, key, ts, op = check_change(raw, 0)
    except OpError as error:
        assert error.code in ("BAD_REQUEST", "TOO_LARGE", "UNSUPPORTED")
        assert error.path.startswith("changes[0]")
        return
    assert 1 <= client_seq <= MAX_INT64 and 0 <= ts <= MAX_INT64
    assert isinstance(collection, str) and isinstance(key, str)
    assert check_op(op, 0) == op
    if op["kind"] == "incr":
        assert type(op["by"]) is int and MIN_INT64 <= op["by"] <= MAX_INT64
    if op["kind"] in ("add", "remove"):
        assert all(type(v) is not float and type(v) is not dict for v in op["values"])

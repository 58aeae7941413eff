"""No accepted change ever leaves an invalid record: random sequences of every op kind,
merged one at a time under a schema (``BatchMerge`` with the schemas' check, as the
engine runs it); after each accepted change the record's view validates, and a refused
change leaves the record exactly as it was."""

from __future__ import annotations

import json
from typing import Any

from accord.sync import merge
from accord.sync.batchmerge import BatchMerge
from accord.sync.errors import BadRequest
from accord.sync.lattice import compact_json
from accord.sync.model import ChangeOutcome, IncomingChange, Limits, PushBatch
from accord.sync.rga import element_id
from accord.sync.schemas import Rule, SchemaSet
from hypothesis import event, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from tests.unit.sync.profiles import PROFILE

SCHEMA = {
    "type": "object",
    "required": ["title"],
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string", "maxLength": 4},
        "n": {"type": "integer", "minimum": 0, "maximum": 5},
        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
        "lines": {
            "type": "array",
            "maxItems": 3,
            "items": {"properties": {"value": {"type": "string"}}},
        },
    },
}
VALIDATOR = Draft202012Validator(SCHEMA)
SCHEMAS = SchemaSet((Rule(("*",), "todos", VALIDATOR),))
RECORD = ("todos", "t")

values = st.one_of(st.text(max_size=6), st.integers(-2, 8), st.none())
ops = st.one_of(
    st.builds(lambda t: {"kind": "set", "fields": {"title": t}}, st.text(max_size=5)),
    st.builds(
        lambda f, v: {"kind": "set", "fields": {f: v}},
        st.sampled_from(["title", "n", "extra", "tags"]),
        values,
    ),
    st.just({"kind": "delete"}),
    st.builds(lambda by: {"kind": "incr", "field": "n", "by": by}, st.integers(-3, 3)),
    st.builds(
        lambda vs: {"kind": "add", "field": "tags", "values": vs},
        st.lists(st.sampled_from(["a", "b", "c", 1]), min_size=1, max_size=2),
    ),
    st.builds(
        lambda vs: {"kind": "remove", "field": "tags", "values": vs},
        st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=2),
    ),
    st.builds(
        lambda vs: {"kind": "insert", "field": "lines", "after": None, "values": vs},
        st.lists(st.sampled_from(["x", "y", 3]), min_size=1, max_size=2),
    ),
    st.just({"kind": "remove_items", "field": "lines"}),
)


def merge_op(raw: dict[str, Any]) -> merge.Op:
    kind = raw["kind"]
    if kind == "set":
        return merge.SetOp(raw["fields"])
    if kind == "delete":
        return merge.DeleteOp()
    if kind == "incr":
        return merge.IncrOp(raw["field"], raw["by"])
    if kind == "add":
        return merge.AddOp(raw["field"], tuple(raw["values"]))
    if kind == "remove":
        return merge.RemoveOp(raw["field"], tuple(raw["values"]), None)
    if kind == "insert":
        return merge.InsertOp(raw["field"], raw["after"], tuple(raw["values"]))
    return merge.RemoveItemsOp(raw["field"], tuple(raw["ids"]))


def check(collection: str, key: str, value: Any) -> Any:
    return SCHEMAS.check("room", collection, key, value)


@PROFILE
@given(st.lists(ops, min_size=1, max_size=25), st.booleans())
def test_no_accepted_change_leaves_an_invalid_record(
    sequence: list[dict[str, Any]], created: bool
) -> None:
    if created:  # most histories start from a valid record, to explore what follows
        sequence = [{"kind": "set", "fields": {"title": "t"}}, *sequence]
    state = merge.RecordState()
    view: merge.View | None = None
    inserted: list[str] = []
    clock = 0
    for client_seq, raw in enumerate(sequence, start=1):
        if raw["kind"] == "remove_items":
            if not inserted:
                continue
            raw = {**raw, "ids": inserted[-1:]}
        batch_change = IncomingChange(client_seq, *RECORD, 0, merge_op(raw), compact_json(raw))
        batch = PushBatch("room", "u", "c", (batch_change,))
        outcomes: dict[int, ChangeOutcome] = {}

        def stamp(_: int) -> tuple[int, bool]:
            nonlocal clock
            clock += 1
            return clock, True

        run = BatchMerge({RECORD: state}, {RECORD: view}, 0, batch, stamp, Limits(), outcomes)
        before = merge.dump_state(state)
        try:
            run.add(batch_change, check)
        except BadRequest:
            continue
        outcome = outcomes[client_seq]
        if outcome.error is not None:
            assert outcome.seq == 0 and not run.committed
            assert merge.dump_state(run.states[RECORD]) == before
            assert outcome.error.json_path is not None
            event("refused a change")
            continue
        state, view = run.states[RECORD], run.views[RECORD]
        if raw["kind"] == "insert":
            inserted.extend(
                element_id((clock, "c", "u", client_seq), i) for i in range(len(raw["values"]))
            )
        shown = run.shown(RECORD)
        event("accepted a change" if shown is not None else "accepted a delete")
        if shown is not None:
            assert VALIDATOR.is_valid(shown), (json.dumps(shown), raw)
        stored = json.loads(run.values[RECORD]) if run.values[RECORD] is not None else None
        assert stored == shown

"""Convergence properties of the merge: order and repetition never matter, and
applying the patches in seq order reproduces the server's records exactly."""

from __future__ import annotations

import os

from accord.sync.merge import (
    Clock,
    DeleteOp,
    Fields,
    IncrOp,
    Json,
    Op,
    RecordState,
    SetOp,
    apply_patch,
    canonical_json,
    diff,
    dump_state,
    merge,
    visible,
)
from hypothesis import given, settings
from hypothesis import strategies as st

PROFILE = settings.get_profile(os.environ.get("SYNC_HYPOTHESIS_PROFILE", "sync-dev"))

FIELDS = ["x", "y", "z"]
KEYS = ["k1", "k2"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
)
values: st.SearchStrategy[Json] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=2)
    ),
    max_leaves=4,
)
ops: st.SearchStrategy[Op] = st.one_of(
    st.builds(SetOp, st.dictionaries(st.sampled_from(FIELDS), values, max_size=3)),
    st.just(DeleteOp()),
    st.builds(IncrOp, st.sampled_from(FIELDS), st.integers(-5, 5)),
)


@st.composite
def changes(draw: st.DrawFn) -> list[tuple[str, Clock, Op]]:
    """Changes with unique clocks; small ts and client ranges make ties likely."""
    count = draw(st.integers(1, 12))
    result = []
    for seq in range(1, count + 1):
        at = (
            draw(st.integers(1, 4)),
            draw(st.sampled_from(["a", "b", "c"])),
            draw(st.sampled_from(["u1", "u2"])),
            seq,
        )
        result.append((draw(st.sampled_from(KEYS)), at, draw(ops)))
    return result


def fold(deliveries: list[tuple[str, Clock, Op]]) -> dict[str, RecordState]:
    states = {key: RecordState() for key in KEYS}
    for key, at, op in deliveries:
        states[key], _ = merge(states[key], at, op)
    return states


@PROFILE
@given(st.data(), changes())
def test_any_order_and_repetition_reach_the_same_state(
    data: st.DataObject, applied: list[tuple[str, Clock, Op]]
) -> None:
    repeated = applied + data.draw(st.lists(st.sampled_from(applied), max_size=4))
    shuffled = data.draw(st.permutations(repeated))
    reference, other = fold(applied), fold(shuffled)
    for key in KEYS:
        assert dump_state(other[key]) == dump_state(reference[key])
        assert canonical_json(visible(other[key])) == canonical_json(visible(reference[key]))


@PROFILE
@given(changes())
def test_patches_in_seq_order_rebuild_the_visible_records(
    applied: list[tuple[str, Clock, Op]],
) -> None:
    server = {key: RecordState() for key in KEYS}
    client: dict[str, Fields | None] = {key: None for key in KEYS}
    for key, at, op in applied:
        before = visible(server[key])
        server[key], _ = merge(server[key], at, op)
        after = visible(server[key])
        client[key] = apply_patch(client[key], diff(before, after, op))
        assert canonical_json(client[key]) == canonical_json(after)
    for key in KEYS:
        assert canonical_json(client[key]) == canonical_json(visible(server[key]))


@PROFILE
@given(changes())
def test_exists_iff_a_set_or_incr_is_newer_than_every_delete(
    applied: list[tuple[str, Clock, Op]],
) -> None:
    states = fold(applied)
    for key in KEYS:
        mine = [(at, op) for k, at, op in applied if k == key]
        deletes = [at for at, op in mine if isinstance(op, DeleteOp)]
        writes = [at for at, op in mine if not isinstance(op, DeleteOp)]
        expected = bool(writes) and (not deletes or max(writes) > max(deletes))
        assert (visible(states[key]) is not None) == expected

"""Convergence properties of the merge over every op kind: order and repetition never
matter, applying the patches in seq order reproduces the server's records exactly,
no acknowledged increment is lost, and sets and lists keep their promises.

The example count comes from the hypothesis profile (tests/unit/sync/profiles.py):
``sync-ci`` runs 1,000 examples per test. Generating an example costs far more than
checking it, so the properties of one seq-ordered history share its examples: each
property is checked on every one of them."""

from __future__ import annotations

from dataclasses import dataclass

from accord.sync.lattice import Clock, Json, canonical_json
from accord.sync.merge import (
    AddOp,
    DeleteOp,
    Fields,
    IncrOp,
    InsertOp,
    Op,
    RecordState,
    RemoveItemsOp,
    RemoveOp,
    SetOp,
    dump_state,
    merge,
    view,
    visible,
)
from accord.sync.patch import apply_patch, diff
from accord.sync.rga import element_id
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.sync.profiles import PROFILE

PLAIN = ["x", "y"]
SET_FIELD = "s"
LIST_FIELD = "l"
KEYS = ["k1", "k2"]
ELEMENTS: list[Json] = ["a", "b", "c", 1, True, None]

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
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(PLAIN), inner, max_size=2)
    ),
    max_leaves=4,
)


@dataclass(frozen=True)
class Change:
    key: str
    clock: Clock
    seq: int
    op: Op


# Built once: strategies made inside a draw are validated again on every example.
ts_ = st.integers(1, 4)
client_ids = st.sampled_from(["a", "b", "c"])
user_ids = st.sampled_from(["u1", "u2"])
keys = st.sampled_from(KEYS)
kinds = st.sampled_from(["set", "delete", "incr", "add", "remove", "insert", "cut"])
set_fields = st.dictionaries(st.sampled_from([*PLAIN, SET_FIELD, LIST_FIELD]), values, max_size=3)
plain_fields = st.sampled_from(PLAIN)
steps = st.integers(-5, 5)
elements = st.lists(st.sampled_from(ELEMENTS), min_size=1, max_size=3).map(tuple)
items = st.lists(scalars, min_size=1, max_size=3).map(tuple)
picks = st.lists(st.integers(0, 1000), min_size=1, max_size=3)
maybe = st.booleans()
anywhere = st.integers(0, 10_000)
behind = st.integers(0, 4)


@st.composite
def changes(draw: st.DrawFn) -> list[Change]:
    """Changes in seq order, with unique clocks; small ts and client ranges make ties
    likely. List ops only name elements inserted by earlier changes (as the server
    requires), removes name a ``seen`` at most their own seq minus one."""
    count = draw(st.integers(1, 14))
    inserted: dict[str, list[str]] = {key: [] for key in KEYS}
    result = []
    for seq in range(1, count + 1):
        key = draw(keys)
        clock = (draw(ts_), draw(client_ids), draw(user_ids), seq)
        known = inserted[key]
        kind = draw(kinds)
        op: Op
        if kind == "set":
            op = SetOp(draw(set_fields))
        elif kind == "delete":
            op = DeleteOp()
        elif kind == "incr":
            op = IncrOp(draw(plain_fields), draw(steps))
        elif kind == "add":
            op = AddOp(SET_FIELD, draw(elements))
        elif kind == "remove":
            seen = max(0, seq - 1 - draw(behind)) if draw(maybe) else None
            op = RemoveOp(SET_FIELD, draw(elements), seen)
        elif kind == "insert":
            after = known[draw(anywhere) % len(known)] if known and draw(maybe) else None
            values_ = draw(items)
            op = InsertOp(LIST_FIELD, after, values_)
            known.extend(element_id(clock, i) for i in range(len(values_)))
        elif known:
            chosen = dict.fromkeys(known[i % len(known)] for i in draw(picks))
            op = RemoveItemsOp(LIST_FIELD, tuple(chosen))
        else:
            op = DeleteOp()
        result.append(Change(key, clock, seq, op))
    return result


def fold(deliveries: list[Change]) -> dict[str, RecordState]:
    states = {key: RecordState() for key in KEYS}
    for c in deliveries:
        states[c.key], _ = merge(states[c.key], c.clock, c.op, c.seq)
    return states


def _cutoff(mine: list[Change], name: str) -> Clock | None:
    """The latest delete of the record or plain write of field ``name``."""
    resets = [
        c.clock
        for c in mine
        if isinstance(c.op, DeleteOp) or (isinstance(c.op, SetOp) and name in c.op.fields)
    ]
    return max(resets, default=None)


def _newer(clock: Clock, cutoff: Clock | None) -> bool:
    return cutoff is None or clock > cutoff


@PROFILE
@given(st.data(), changes())
def test_any_order_and_repetition_reach_the_same_state(
    data: st.DataObject, applied: list[Change]
) -> None:
    repeated = applied + data.draw(st.lists(st.sampled_from(applied), max_size=5))
    shuffled = data.draw(st.permutations(repeated))
    reference, other = fold(applied), fold(shuffled)
    for key in KEYS:
        assert dump_state(other[key]) == dump_state(reference[key])
        assert canonical_json(visible(other[key])) == canonical_json(visible(reference[key]))


def check_patches_in_seq_order_rebuild_the_visible_records(applied: list[Change]) -> None:
    server = {key: RecordState() for key in KEYS}
    client: dict[str, Fields | None] = {key: None for key in KEYS}
    for c in applied:
        before = view(server[c.key])
        server[c.key], _ = merge(server[c.key], c.clock, c.op, c.seq)
        after = view(server[c.key])
        client[c.key] = apply_patch(client[c.key], diff(before, after, c.op))
        assert canonical_json(client[c.key]) == canonical_json(visible(server[c.key]))


def check_exists_iff_a_write_is_newer_than_every_delete(applied: list[Change]) -> None:
    states = fold(applied)
    for key in KEYS:
        mine = [c for c in applied if c.key == key]
        deletes = [c.clock for c in mine if isinstance(c.op, DeleteOp)]
        writes = [c.clock for c in mine if isinstance(c.op, SetOp | IncrOp | AddOp | InsertOp)]
        expected = bool(writes) and (not deletes or max(writes) > max(deletes))
        assert (visible(states[key]) is not None) == expected


def check_no_acknowledged_increment_is_lost(applied: list[Change]) -> None:
    """An increment acked without a conflict counts until a later set or delete replaces it."""
    server = {key: RecordState() for key in KEYS}
    acked: list[Change] = []
    for c in applied:
        server[c.key], conflicts = merge(server[c.key], c.clock, c.op, c.seq)
        if isinstance(c.op, IncrOp) and not conflicts:
            acked.append(c)
    for key in KEYS:
        mine = [c for c in applied if c.key == key]
        shown = visible(server[key])
        for name in PLAIN:
            cutoff = _cutoff(mine, name)
            counted = [
                c.op.by
                for c in acked
                if c.key == key and isinstance(c.op, IncrOp) and c.op.field == name
                if _newer(c.clock, cutoff)
            ]
            if not counted:
                continue
            writes = [c for c in mine if isinstance(c.op, SetOp) and name in c.op.fields]
            last = max(writes, key=lambda c: c.clock) if writes else None
            base: Json = 0
            if last is not None and last.clock == cutoff:
                assert isinstance(last.op, SetOp)
                base = last.op.fields[name]
            if isinstance(base, bool) or not isinstance(base, int | float):
                continue
            assert shown is not None
            assert shown[name] == base + sum(counted)


def _removed(element: Json, add: Change, removes: list[Change]) -> bool:
    """Some remove of ``element`` had seen ``add`` (by seq, or as the remover's own add)."""
    for r in removes:
        assert isinstance(r.op, RemoveOp)
        if canonical_json(element) not in {canonical_json(v) for v in r.op.values}:
            continue
        seen = r.seq - 1 if r.op.seen is None else r.op.seen
        own_earlier = r.clock[1:3] == add.clock[1:3] and add.clock[3] < r.clock[3]
        if add.seq <= seen or own_earlier:
            return True
    return False


def check_a_set_holds_exactly_the_adds_no_remove_had_seen(applied: list[Change]) -> None:
    states = fold(applied)
    for key in KEYS:
        mine = [c for c in applied if c.key == key]
        shown = view(states[key])
        cutoff = _cutoff(mine, SET_FIELD)
        adds = [c for c in mine if isinstance(c.op, AddOp) and _newer(c.clock, cutoff)]
        removes = [c for c in mine if isinstance(c.op, RemoveOp)]
        if shown is None or not adds:
            assert shown is None or shown.get(SET_FIELD, ("", None))[0] != "set"
            continue

        expected = {
            canonical_json(v)
            for a in adds
            if isinstance(a.op, AddOp)
            for v in a.op.values
            if not _removed(v, a, removes)
        }
        kind, value = shown[SET_FIELD]
        assert kind == "set"
        assert isinstance(value, list)
        assert [canonical_json(v) for v in value] == sorted(expected)


def check_list_elements_follow_what_they_were_inserted_after(applied: list[Change]) -> None:
    states = fold(applied)
    for key in KEYS:
        mine = [c for c in applied if c.key == key]
        shown = view(states[key])
        if shown is None or LIST_FIELD not in shown or shown[LIST_FIELD][0] != "list":
            continue
        items = shown[LIST_FIELD][1]
        assert isinstance(items, list)
        position = {item["id"]: i for i, item in enumerate(items) if isinstance(item, dict)}
        cutoff = _cutoff(mine, LIST_FIELD)
        gone = {i for c in mine if isinstance(c.op, RemoveItemsOp) for i in c.op.ids}
        siblings: dict[str | None, list[tuple[Clock, str]]] = {}
        for c in mine:
            if not isinstance(c.op, InsertOp):
                continue
            ids = [element_id(c.clock, i) for i in range(len(c.op.values))]
            for index, ident in enumerate(ids):
                alive = ident not in gone and _newer(c.clock, cutoff)
                assert (ident in position) == alive
                parent = c.op.after if index == 0 else ids[index - 1]
                siblings.setdefault(parent, []).append((c.clock, ident))
                if ident in position and parent in position:
                    assert position[parent] < position[ident]
                if ident in position:
                    item = items[position[ident]]
                    assert isinstance(item, dict)
                    assert canonical_json(item["value"]) == canonical_json(c.op.values[index])
        for group in siblings.values():
            shown_in_order = [
                ident for _, ident in sorted(group, reverse=True) if ident in position
            ]
            assert shown_in_order == sorted(shown_in_order, key=position.__getitem__), (
                "concurrent inserts at one place: the newest comes first"
            )


@PROFILE
@given(changes())
def test_properties_of_a_history_in_seq_order(applied: list[Change]) -> None:
    check_patches_in_seq_order_rebuild_the_visible_records(applied)
    check_exists_iff_a_write_is_newer_than_every_delete(applied)
    check_no_acknowledged_increment_is_lost(applied)
    check_a_set_holds_exactly_the_adds_no_remove_had_seen(applied)
    check_list_elements_follow_what_they_were_inserted_after(applied)

"""Patches: the visible effect of one change, which clients apply without merging.

``diff`` computes a patch from the record's view before and after a change;
``apply_patch`` is the reference of what a client does with one. Applying the
patches of a room in seq order to an empty state rebuilds exactly the
server's records (the property tests check it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from accord.sync.lattice import Json, canonical_json
from accord.sync.merge import Fields, IncrOp, Op, View, is_number

Patch: TypeAlias = dict[str, Any]


def diff(before: View | None, after: View | None, op: Op) -> Patch:
    """The patch that turns ``before`` into ``after`` on a client."""
    if before is None and after is None:
        return {}
    if after is None:
        return {"deleted": True}
    if before is None:
        return {"set": {name: value for name, (_, value) in after.items()}}
    unset = [name for name in before if name not in after]
    changed: dict[str, Json] = {}
    removed: dict[str, list[Json]] = {}
    added: dict[str, list[Json]] = {}
    lists: dict[str, list[dict[str, Any]]] = {}
    for name, (kind, value) in after.items():
        old = before.get(name)
        if old is not None and old[0] == kind == "set":
            assert isinstance(old[1], list) and isinstance(value, list)
            gone, new = _set_delta(old[1], value)
            if gone:
                removed[name] = gone
            if new:
                added[name] = new
        elif old is not None and old[0] == kind == "list":
            assert isinstance(old[1], list) and isinstance(value, list)
            steps = _list_steps(old[1], value)
            if steps:
                lists[name] = steps
        elif old is None or old[0] != kind or not _same(old[1], value):
            changed[name] = value
    incr: dict[str, int] = {}
    if isinstance(op, IncrOp) and op.field in changed and op.field in before:
        old_kind, old_value = before[op.field]
        result = changed[op.field]
        if old_kind == after[op.field][0] == "value" and is_number(old_value):
            assert isinstance(old_value, int | float)
            stepped = old_value + op.by
            if type(stepped) is type(result) and stepped == result:
                incr[op.field] = op.by
                del changed[op.field]
    patch: Patch = {}
    for key, part in (
        ("unset", unset),
        ("set", changed),
        ("incr", incr),
        ("remove", removed),
        ("add", added),
        ("list", lists),
    ):
        if part:
            patch[key] = part
    return patch


def _set_delta(old: list[Json], new: list[Json]) -> tuple[list[Json], list[Json]]:
    old_keys = {canonical_json(v) for v in old}
    new_keys = {canonical_json(v) for v in new}
    return (
        [v for v in old if canonical_json(v) not in new_keys],
        [v for v in new if canonical_json(v) not in old_keys],
    )


def _list_steps(old: list[Json], new: list[Json]) -> list[dict[str, Any]]:
    """Deletes of the elements gone, then one insert per run of new elements, in order."""
    old_ids = {_id(item) for item in old}
    new_ids = {_id(item) for item in new}
    steps: list[dict[str, Any]] = [{"delete": _id(i)} for i in old if _id(i) not in new_ids]
    previous: str | None = None
    run: list[Json] = []
    run_after: str | None = None
    for item in new:
        ident = _id(item)
        if ident in old_ids:
            if run:
                steps.append({"insert": run, "after": run_after})
                run = []
        else:
            if not run:
                run_after = previous
            run.append(item)
        previous = ident
    if run:
        steps.append({"insert": run, "after": run_after})
    return steps


def _id(item: Json) -> str:
    assert isinstance(item, dict)
    ident = item["id"]
    assert isinstance(ident, str)
    return ident


def _same(a: Json, b: Json) -> bool:
    """Equal as JSON: ``1`` and ``1.0`` or ``true`` and ``1`` differ."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | dict):
        return canonical_json(a) == canonical_json(b)
    return a == b


def apply_patch(record: Fields | None, patch: Mapping[str, Any]) -> Fields | None:
    """What a client does with a patch: the record after it (None: absent)."""
    if patch.get("deleted"):
        return None
    result: Fields | None = None if record is None else dict(record)
    for name in patch.get("unset", ()):
        if result is not None:
            result.pop(name, None)
    if "set" in patch:
        result = {} if result is None else result
        result.update(patch["set"])
    if result is None:
        if not any(key in patch for key in ("incr", "remove", "add", "list")):
            return None
        result = {}
    for name, by in patch.get("incr", {}).items():
        current = result.get(name, 0)
        assert isinstance(current, int | float)
        result[name] = current + by
    for name, values in patch.get("remove", {}).items():
        gone = {canonical_json(v) for v in values}
        result[name] = [v for v in _array(result, name) if canonical_json(v) not in gone]
    for name, values in patch.get("add", {}).items():
        merged = {canonical_json(v): v for v in [*_array(result, name), *values]}
        result[name] = [merged[k] for k in sorted(merged)]
    for name, steps in patch.get("list", {}).items():
        items = list(_array(result, name))
        for step in steps:
            if "delete" in step:
                items = [i for i in items if _id(i) != step["delete"]]
            else:
                ids = [_id(i) for i in items]
                at = 0 if step["after"] is None else 1 + ids.index(step["after"])
                items[at:at] = step["insert"]
        result[name] = items
    return result


def _array(record: Fields, name: str) -> list[Json]:
    value = record.get(name, [])
    assert isinstance(value, list)
    return value

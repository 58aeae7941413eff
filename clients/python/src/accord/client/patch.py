"""Patches from the server and the local approximation of ops.

Both are tables keyed by name, so new patch keys and op kinds plug in with one
function each: ``PATCH_HANDLERS["name"] = ...`` and ``LOCAL_OPS["kind"] = ...``.
Besides the core ``deleted``/``unset``/``set``/``incr``, the add-wins set
(``remove``, ``add``) and ordered list (``list``) patches of the sync service's
reference ``accord.sync.patch.apply_patch`` are here; a set's value is shown
sorted by canonical JSON, a list's as ``{"id", "value"}`` elements.

A record is a ``dict`` of fields, ``None`` when it does not exist. Handlers
never mutate their input; they return a new record (or the same object when
nothing changed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

Record = dict[str, Any]
PatchHandler = Callable[[Record | None, Any], Record | None]
Origin = tuple[str, int]
"""(client_id, client_seq) of a local change: list element ids derive from it."""
LocalOp = Callable[[Record | None, Mapping[str, Any], Origin], Record | None]

__all__ = [
    "LOCAL_OPS",
    "PATCH_HANDLERS",
    "LocalOp",
    "Origin",
    "PatchHandler",
    "Record",
    "UnknownPatch",
    "apply_local_op",
    "apply_patch",
    "canonical_json",
    "element_id",
    "is_number",
]


class UnknownPatch(ValueError):
    """A patch key this client does not know: it is older than the server."""


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _deleted(record: Record | None, flag: Any) -> Record | None:
    return None if flag else record


def _unset(record: Record | None, fields: Any) -> Record | None:
    if record is None:
        return None
    return {name: value for name, value in record.items() if name not in fields}


def _set(record: Record | None, fields: Any) -> Record | None:
    return {**(record or {}), **fields}


def _incr(record: Record | None, amounts: Any) -> Record | None:
    result = dict(record or {})
    for name, by in amounts.items():
        result[name] = result.get(name, 0) + by
    return result


def canonical_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def element_id(client_id: str, client_seq: int, index: int) -> str:
    """The id the server gives the ``index``-th value of an ``insert``."""
    return f"{client_seq}.{index}@{client_id}"


def _array(record: Record, name: str) -> list[Any]:
    value = record.get(name)
    return list(value) if isinstance(value, list) else []


def _set_remove(record: Record | None, fields: Any) -> Record | None:
    result = dict(record or {})
    for name, values in fields.items():
        gone = {canonical_json(v) for v in values}
        result[name] = [v for v in _array(result, name) if canonical_json(v) not in gone]
    return result


def _set_add(record: Record | None, fields: Any) -> Record | None:
    result = dict(record or {})
    for name, values in fields.items():
        merged = {canonical_json(v): v for v in [*_array(result, name), *values]}
        result[name] = [merged[k] for k in sorted(merged)]
    return result


def _list_insert(items: list[Any], after: str | None, values: list[Any]) -> list[Any]:
    ids = [item.get("id") if isinstance(item, dict) else None for item in items]
    at = 0 if after is None else (ids.index(after) + 1 if after in ids else len(items))
    return [*items[:at], *values, *items[at:]]


def _list_remove(items: list[Any], ids: set[str]) -> list[Any]:
    return [item for item in items if not (isinstance(item, dict) and item.get("id") in ids)]


def _list(record: Record | None, fields: Any) -> Record | None:
    result = dict(record or {})
    for name, steps in fields.items():
        items = _array(result, name)
        for step in steps:
            if "delete" in step:
                items = _list_remove(items, {step["delete"]})
            else:
                items = _list_insert(items, step.get("after"), list(step["insert"]))
        result[name] = items
    return result


PATCH_HANDLERS: dict[str, PatchHandler] = {
    "deleted": _deleted,
    "unset": _unset,
    "set": _set,
    "incr": _incr,
    "remove": _set_remove,
    "add": _set_add,
    "list": _list,
}


def apply_patch(record: Record | None, patch: Mapping[str, Any]) -> Record | None:
    """``record`` after ``patch``, applying its keys in the order listed (protocol.md)."""
    for name, argument in patch.items():
        handler = PATCH_HANDLERS.get(name)
        if handler is None:
            raise UnknownPatch(f"unknown patch key {name!r}")
        record = handler(record, argument)
    return record


def _local_set(record: Record | None, op: Mapping[str, Any], origin: Origin) -> Record | None:
    return {**(record or {}), **op.get("fields", {})}


def _local_delete(record: Record | None, op: Mapping[str, Any], origin: Origin) -> Record | None:
    return None


def _local_incr(record: Record | None, op: Mapping[str, Any], origin: Origin) -> Record | None:
    field = op["field"]
    by = op.get("by", 1)
    result = dict(record or {})
    current = result.get(field, 0)
    # The server keeps a non-numeric value and ignores the increment (merge.md).
    if is_number(current):
        result[field] = current + by
    return result


def _local_add(record: Record | None, op: Mapping[str, Any], origin: Origin) -> Record | None:
    return _set_add(record, {op["field"]: op.get("values", [])})


def _local_remove(record: Record | None, op: Mapping[str, Any], origin: Origin) -> Record | None:
    if record is None:
        return None
    return _set_remove(record, {op["field"]: op.get("values", [])})


def _local_insert(record: Record | None, op: Mapping[str, Any], origin: Origin) -> Record | None:
    client_id, client_seq = origin
    values = [
        {"id": element_id(client_id, client_seq, index), "value": value}
        for index, value in enumerate(op.get("values", []))
    ]
    result = dict(record or {})
    result[op["field"]] = _list_insert(_array(result, op["field"]), op.get("after"), values)
    return result


def _local_remove_items(
    record: Record | None, op: Mapping[str, Any], origin: Origin
) -> Record | None:
    if record is None:
        return None
    result = dict(record)
    result[op["field"]] = _list_remove(_array(result, op["field"]), set(op.get("ids", [])))
    return result


LOCAL_OPS: dict[str, LocalOp] = {
    "set": _local_set,
    "delete": _local_delete,
    "incr": _local_incr,
    "add": _local_add,
    "remove": _local_remove,
    "insert": _local_insert,
    "remove_items": _local_remove_items,
}


def apply_local_op(
    record: Record | None, op: Mapping[str, Any], origin: Origin = ("", 0)
) -> Record | None:
    """The optimistic guess of ``op``'s effect; the server's patch later replaces it.

    An op kind without a local approximation shows no effect until confirmed.
    """
    local = LOCAL_OPS.get(str(op.get("kind")))
    return record if local is None else local(record, op, origin)

"""Patches from the server and the local approximation of ops.

Both are tables keyed by name, so new patch keys and op kinds (the add-wins
sets and RGA lists to come) plug in with one function each:
``PATCH_HANDLERS["add"] = ...`` and ``LOCAL_OPS["add"] = ...``.

A record is a ``dict`` of fields, ``None`` when it does not exist. Handlers
never mutate their input; they return a new record (or the same object when
nothing changed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Record = dict[str, Any]
PatchHandler = Callable[[Record | None, Any], Record | None]
LocalOp = Callable[[Record | None, Mapping[str, Any]], Record | None]

__all__ = [
    "LOCAL_OPS",
    "PATCH_HANDLERS",
    "LocalOp",
    "PatchHandler",
    "Record",
    "UnknownPatch",
    "apply_local_op",
    "apply_patch",
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


PATCH_HANDLERS: dict[str, PatchHandler] = {
    "deleted": _deleted,
    "unset": _unset,
    "set": _set,
    "incr": _incr,
}


def apply_patch(record: Record | None, patch: Mapping[str, Any]) -> Record | None:
    """``record`` after ``patch``, applying its keys in the order listed (protocol.md)."""
    for name, argument in patch.items():
        handler = PATCH_HANDLERS.get(name)
        if handler is None:
            raise UnknownPatch(f"unknown patch key {name!r}")
        record = handler(record, argument)
    return record


def _local_set(record: Record | None, op: Mapping[str, Any]) -> Record | None:
    return {**(record or {}), **op.get("fields", {})}


def _local_delete(record: Record | None, op: Mapping[str, Any]) -> Record | None:
    return None


def _local_incr(record: Record | None, op: Mapping[str, Any]) -> Record | None:
    field = op["field"]
    by = op.get("by", 1)
    result = dict(record or {})
    current = result.get(field, 0)
    # The server keeps a non-numeric value and ignores the increment (merge.md).
    if is_number(current):
        result[field] = current + by
    return result


LOCAL_OPS: dict[str, LocalOp] = {
    "set": _local_set,
    "delete": _local_delete,
    "incr": _local_incr,
}


def apply_local_op(record: Record | None, op: Mapping[str, Any]) -> Record | None:
    """The optimistic guess of ``op``'s effect; the server's patch later replaces it.

    An op kind without a local approximation shows no effect until confirmed.
    """
    local = LOCAL_OPS.get(str(op.get("kind")))
    return record if local is None else local(record, op)

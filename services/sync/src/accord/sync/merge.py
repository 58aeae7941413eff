"""The record CRDT: how ops merge, what a record shows, and the patch clients apply.

Pure functions over plain values, no I/O. The state of a record is a function
of the *set* of changes merged into it — any delivery order, any repetition —
which is what lets every replica converge. ``docs/merge.md`` states the rules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None
Fields: TypeAlias = dict[str, Json]
Patch: TypeAlias = dict[str, Any]

Clock: TypeAlias = tuple[int, str, str, int]
"""(ts, client_id, user_id, client_seq): a total order, unique per change."""


@dataclass(frozen=True)
class SetOp:
    fields: Mapping[str, Json]


@dataclass(frozen=True)
class DeleteOp:
    pass


@dataclass(frozen=True)
class IncrOp:
    field: str
    by: int


Op: TypeAlias = SetOp | DeleteOp | IncrOp


@dataclass(frozen=True)
class Conflict:
    """A pushed field that lost, and the clock that beat it."""

    field: str
    winner: Clock


@dataclass
class RecordState:
    deleted: Clock | None = None
    alive: Clock | None = None
    registers: dict[str, tuple[Json, Clock]] = field(default_factory=dict)
    increments: dict[str, dict[Clock, int]] = field(default_factory=dict)

    def copy(self) -> RecordState:
        return RecordState(
            deleted=self.deleted,
            alive=self.alive,
            registers=dict(self.registers),
            increments={name: dict(incs) for name, incs in self.increments.items()},
        )


def _after(clock: Clock, other: Clock | None) -> bool:
    """``clock`` is later than ``other`` (a missing clock is the lowest)."""
    return other is None or clock > other


def _max(a: Clock | None, b: Clock) -> Clock:
    return b if a is None or b > a else a


def _winner(state: RecordState, name: str, clock: Clock) -> Clock:
    """The latest clock that beats ``clock`` on field ``name``."""
    beaters: list[Clock] = []
    register = state.registers.get(name)
    if register is not None and register[1] >= clock:
        beaters.append(register[1])
    if state.deleted is not None and state.deleted >= clock:
        beaters.append(state.deleted)
    return max(beaters)


def merge(state: RecordState, clock: Clock, op: Op) -> tuple[RecordState, list[Conflict]]:
    """Merge one op into a copy of ``state``; returns it and the fields that lost."""
    result = state.copy()
    conflicts: list[Conflict] = []
    if isinstance(op, SetOp):
        for name, value in op.fields.items():
            register = result.registers.get(name)
            if _after(clock, register[1] if register else None) and _after(clock, result.deleted):
                result.registers[name] = (value, clock)
                _drop_increments(result, name, clock)
            else:
                conflicts.append(Conflict(name, _winner(result, name, clock)))
        result.alive = _max(result.alive, clock)
    elif isinstance(op, DeleteOp):
        result.deleted = _max(result.deleted, clock)
        deleted = result.deleted
        result.registers = {n: r for n, r in result.registers.items() if r[1] > deleted}
        for name in list(result.increments):
            _drop_increments(result, name, deleted)
    else:
        register = result.registers.get(op.field)
        if _after(clock, result.deleted) and _after(clock, register[1] if register else None):
            result.increments.setdefault(op.field, {})[clock] = op.by
        else:
            conflicts.append(Conflict(op.field, _winner(result, op.field, clock)))
        result.alive = _max(result.alive, clock)
    return result, conflicts


def _drop_increments(state: RecordState, name: str, before: Clock) -> None:
    incs = state.increments.get(name)
    if incs is None:
        return
    kept = {clock: by for clock, by in incs.items() if clock > before}
    if kept:
        state.increments[name] = kept
    else:
        del state.increments[name]


def _is_number(value: Json) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def visible(state: RecordState) -> Fields | None:
    """The record as clients see it, or None when it does not exist."""
    if state.alive is None or not _after(state.alive, state.deleted):
        return None
    values: Fields = {}
    for name in sorted(state.registers.keys() | state.increments.keys()):
        register = state.registers.get(name)
        base = 0 if register is None else register[0]
        incs = state.increments.get(name)
        if incs and _is_number(base):
            assert isinstance(base, int | float)
            base = base + sum(incs.values())
        values[name] = base
    return values


def diff(before: Fields | None, after: Fields | None, op: Op) -> Patch:
    """The patch that turns ``before`` into ``after`` on a client."""
    if before is None and after is None:
        return {}
    if after is None:
        return {"deleted": True}
    if before is None:
        return {"set": dict(after)}
    patch: Patch = {}
    unset = [name for name in before if name not in after]
    if unset:
        patch["unset"] = unset
    changed = {
        name: value
        for name, value in after.items()
        if name not in before or not _same(before[name], value)
    }
    incr: dict[str, int] = {}
    if isinstance(op, IncrOp) and op.field in changed and op.field in before:
        old, new = before[op.field], after[op.field]
        if _is_number(old) and _is_number(new):
            assert isinstance(old, int | float)
            stepped = old + op.by
            if type(stepped) is type(new) and stepped == new:
                incr[op.field] = op.by
                del changed[op.field]
    if changed:
        patch["set"] = changed
    if incr:
        patch["incr"] = incr
    return patch


def _same(a: Json, b: Json) -> bool:
    """Equal as JSON: ``1`` and ``1.0`` or ``true`` and ``1`` differ."""
    return type(a) is type(b) and canonical_json(a) == canonical_json(b)


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
    if "incr" in patch:
        result = {} if result is None else result
        for name, by in patch["incr"].items():
            current = result.get(name, 0)
            assert isinstance(current, int | float)
            result[name] = current + by
    return result


def canonical_json(value: Json) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def compact_json(value: Any) -> str:
    """JSON text as stored and sent: compact, keys in insertion order."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _clock_json(clock: Clock | None) -> list[Any] | None:
    return None if clock is None else list(clock)


def _clock_of(raw: Any) -> Clock | None:
    if raw is None:
        return None
    ts, client_id, user_id, client_seq = raw
    return (int(ts), str(client_id), str(user_id), int(client_seq))


def _clock_req(raw: Any) -> Clock:
    clock = _clock_of(raw)
    assert clock is not None
    return clock


def dump_state(state: RecordState) -> str:
    """Stored as ``{"del", "alive", "fields": {f: [v, clock]}, "incs": {f: [[clock, by]]}}``."""
    return compact_json(
        {
            "del": _clock_json(state.deleted),
            "alive": _clock_json(state.alive),
            "fields": {n: [v, list(c)] for n, (v, c) in sorted(state.registers.items())},
            "incs": {
                n: [[list(c), by] for c, by in sorted(incs.items())]
                for n, incs in sorted(state.increments.items())
            },
        }
    )


def load_state(text: str | None) -> RecordState:
    if text is None:
        return RecordState()
    raw = json.loads(text)
    return RecordState(
        deleted=_clock_of(raw["del"]),
        alive=_clock_of(raw["alive"]),
        registers={n: (v, _clock_req(c)) for n, (v, c) in raw["fields"].items()},
        increments={
            n: {_clock_req(c): int(by) for c, by in pairs} for n, pairs in raw["incs"].items()
        },
    )

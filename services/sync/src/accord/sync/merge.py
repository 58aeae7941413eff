"""The record CRDT: how ops merge and what a record shows.

Pure functions over plain values, no I/O. The state of a record is a function
of the *set* of changes merged into it — any delivery order, any repetition —
which is what lets every replica converge. ``docs/merge.md`` states the rules;
``patch.py`` turns the before/after views into the patches clients apply.

A field holds one kind of value: a plain value (a last-writer-wins register,
possibly a counter), an add-wins set (``orset``) or an ordered list (``rga``).
A plain write of a field (``set``) replaces whatever it held before; otherwise
a field with list state shows as a list, else one with set state as a set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from accord.sync.lattice import (
    Clock,
    Json,
    canonical_json,
    clock_json,
    clock_of,
    clock_req,
    compact_json,
    later,
    latest,
)
from accord.sync.orset import SetField
from accord.sync.rga import ListField

Fields: TypeAlias = dict[str, Json]
Kind: TypeAlias = Literal["value", "set", "list"]
View: TypeAlias = dict[str, tuple[Kind, Json]]
"""A visible record with each field's kind: what patches are computed from."""


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


@dataclass(frozen=True)
class AddOp:
    """Add elements to the add-wins set in ``field``."""

    field: str
    values: tuple[Json, ...]


@dataclass(frozen=True)
class RemoveOp:
    """Remove elements from the set in ``field``: the adds up to seq ``seen`` and the
    remover's own earlier adds. ``seen`` None: every add committed before this change."""

    field: str
    values: tuple[Json, ...]
    seen: int | None = None


@dataclass(frozen=True)
class InsertOp:
    """Insert ``values`` into the list in ``field`` after element ``after`` (None: at the start)."""

    field: str
    after: str | None
    values: tuple[Json, ...]


@dataclass(frozen=True)
class RemoveItemsOp:
    """Remove the list elements ``ids`` from the list in ``field``."""

    field: str
    ids: tuple[str, ...]


Op: TypeAlias = SetOp | DeleteOp | IncrOp | AddOp | RemoveOp | InsertOp | RemoveItemsOp


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
    sets: dict[str, SetField] = field(default_factory=dict)
    lists: dict[str, ListField] = field(default_factory=dict)

    def copy(self) -> RecordState:
        return RecordState(
            deleted=self.deleted,
            alive=self.alive,
            registers=dict(self.registers),
            increments={name: dict(incs) for name, incs in self.increments.items()},
            sets={name: s.copy() for name, s in self.sets.items()},
            lists={name: s.copy() for name, s in self.lists.items()},
        )


def _cutoff(state: RecordState, name: str) -> Clock | None:
    """What a write to field ``name`` must be later than to count: the delete or a plain write."""
    register = state.registers.get(name)
    return latest(state.deleted, register[1] if register else None)


def _winner(state: RecordState, name: str, clock: Clock) -> Clock:
    """The latest clock that beats ``clock`` on field ``name``."""
    cutoff = _cutoff(state, name)
    assert cutoff is not None and cutoff >= clock
    return cutoff


def _settle(state: RecordState, name: str) -> None:
    """Drop the collection state of ``name`` that a delete or a plain write replaced."""
    cutoff = _cutoff(state, name)
    for parts in (state.sets, state.lists):
        part = parts.get(name)
        if part is not None:
            part.cut(cutoff)
            if part.empty():
                del parts[name]


def merge(state: RecordState, clock: Clock, op: Op, seq: int) -> tuple[RecordState, list[Conflict]]:
    """Merge one op (of the change with ``clock`` and ``seq``) into a copy of ``state``;
    returns it and the fields that lost."""
    result = state.copy()
    conflicts: list[Conflict] = []
    if isinstance(op, SetOp):
        for name, value in op.fields.items():
            if later(clock, _cutoff(result, name)):
                result.registers[name] = (value, clock)
                _drop_increments(result, name, clock)
                _settle(result, name)
            else:
                conflicts.append(Conflict(name, _winner(result, name, clock)))
        result.alive = latest(result.alive, clock)
    elif isinstance(op, DeleteOp):
        deleted = latest(result.deleted, clock)
        assert deleted is not None
        result.deleted = deleted
        result.registers = {n: r for n, r in result.registers.items() if r[1] > deleted}
        for name in list(result.increments):
            _drop_increments(result, name, deleted)
        for name in list(result.sets.keys() | result.lists.keys()):
            _settle(result, name)
    elif isinstance(op, IncrOp):
        if later(clock, _cutoff(result, op.field)):
            result.increments.setdefault(op.field, {})[clock] = op.by
        else:
            conflicts.append(Conflict(op.field, _winner(result, op.field, clock)))
        result.alive = latest(result.alive, clock)
    elif isinstance(op, AddOp | InsertOp):
        # Applied even when it lost, then settled: a lost list element stays as a
        # tombstone that later inserts may refer to, whatever the delivery order.
        if not later(clock, _cutoff(result, op.field)):
            conflicts.append(Conflict(op.field, _winner(result, op.field, clock)))
        if isinstance(op, AddOp):
            elements = [canonical_json(v) for v in op.values]
            result.sets.setdefault(op.field, SetField()).add(clock, seq, elements)
        else:
            result.lists.setdefault(op.field, ListField()).insert(clock, op.after, op.values)
        result.alive = latest(result.alive, clock)
        _settle(result, op.field)
    elif isinstance(op, RemoveOp):
        seen = seq - 1 if op.seen is None else op.seen
        elements = [canonical_json(v) for v in op.values]
        result.sets.setdefault(op.field, SetField()).remove(clock, seen, elements)
        _settle(result, op.field)
    else:
        result.lists.setdefault(op.field, ListField()).remove(op.ids)
    return result, conflicts


def unknown_ids(state: RecordState, op: Op) -> list[str]:
    """List element ids ``op`` refers to that the record's list has never held."""
    if isinstance(op, InsertOp):
        wanted: tuple[str, ...] = () if op.after is None else (op.after,)
    elif isinstance(op, RemoveItemsOp):
        wanted = op.ids
    else:
        return []
    known = state.lists.get(op.field)
    return [i for i in wanted if known is None or not known.knows(i)]


def _drop_increments(state: RecordState, name: str, before: Clock) -> None:
    incs = state.increments.get(name)
    if incs is None:
        return
    kept = {clock: by for clock, by in incs.items() if clock > before}
    if kept:
        state.increments[name] = kept
    else:
        del state.increments[name]


def is_number(value: Json) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def view(state: RecordState) -> View | None:
    """The record as clients see it with each field's kind, or None when it does not exist."""
    if state.alive is None or not later(state.alive, state.deleted):
        return None
    values: View = {}
    names = state.registers.keys() | state.increments.keys()
    names |= state.sets.keys() | state.lists.keys()
    for name in sorted(names):
        as_list = state.lists.get(name)
        as_set = state.sets.get(name)
        if as_list is not None and as_list.at is not None:
            values[name] = ("list", as_list.value())
        elif as_set is not None and as_set.at is not None:
            values[name] = ("set", as_set.value())
        elif name in state.registers or name in state.increments:
            values[name] = ("value", _plain(state, name))
    return values


def _plain(state: RecordState, name: str) -> Json:
    register = state.registers.get(name)
    base = 0 if register is None else register[0]
    incs = state.increments.get(name)
    if incs and is_number(base):
        assert isinstance(base, int | float)
        base = base + sum(incs.values())
    return base


def visible(state: RecordState) -> Fields | None:
    """The record as clients see it, or None when it does not exist."""
    shown = view(state)
    return None if shown is None else {name: value for name, (_, value) in shown.items()}


def dump_state(state: RecordState) -> str:
    """Stored as ``{"del", "alive", "fields": {f: [v, clock]}, "incs": {f: [[clock, by]]}}``
    plus ``"sets"`` and ``"lists"`` when a field holds one."""
    raw: dict[str, Any] = {
        "del": clock_json(state.deleted),
        "alive": clock_json(state.alive),
        "fields": {n: [v, list(c)] for n, (v, c) in sorted(state.registers.items())},
        "incs": {
            n: [[list(c), by] for c, by in sorted(incs.items())]
            for n, incs in sorted(state.increments.items())
        },
    }
    if state.sets:
        raw["sets"] = {n: s.dump() for n, s in sorted(state.sets.items())}
    if state.lists:
        raw["lists"] = {n: s.dump() for n, s in sorted(state.lists.items())}
    return compact_json(raw)


def load_state(text: str | None) -> RecordState:
    if text is None:
        return RecordState()
    raw = json.loads(text)
    return RecordState(
        deleted=clock_of(raw["del"]),
        alive=clock_of(raw["alive"]),
        registers={n: (v, clock_req(c)) for n, (v, c) in raw["fields"].items()},
        increments={
            n: {clock_req(c): int(by) for c, by in pairs} for n, pairs in raw["incs"].items()
        },
        sets={n: SetField.load(s) for n, s in raw.get("sets", {}).items()},
        lists={n: ListField.load(s) for n, s in raw.get("lists", {}).items()},
    )

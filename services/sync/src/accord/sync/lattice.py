"""What every part of a record's CRDT shares: JSON values, change clocks and their order."""

from __future__ import annotations

import json
from typing import Any, TypeAlias

from accord.common import jsontext

Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None

Clock: TypeAlias = tuple[int, str, str, int]
"""(ts, client_id, user_id, client_seq): a total order, unique per change."""


def later(clock: Clock, other: Clock | None) -> bool:
    """``clock`` is later than ``other`` (a missing clock is the lowest)."""
    return other is None or clock > other


def latest(a: Clock | None, b: Clock | None) -> Clock | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def above(clock: Clock | None, cutoff: Clock | None) -> Clock | None:
    """``clock`` if it is later than ``cutoff``, else None (it no longer counts)."""
    return clock if clock is not None and later(clock, cutoff) else None


def canonical_json(value: Json) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def compact_json(value: Any) -> str:
    """JSON text as stored and sent: compact, keys in insertion order."""
    return jsontext.dumps(value)


def clock_json(clock: Clock | None) -> list[Any] | None:
    return None if clock is None else list(clock)


def clock_of(raw: Any) -> Clock | None:
    if raw is None:
        return None
    ts, client_id, user_id, client_seq = raw
    return (int(ts), str(client_id), str(user_id), int(client_seq))


def clock_req(raw: Any) -> Clock:
    clock = clock_of(raw)
    assert clock is not None
    return clock

"""Pushed changes and their ops checked once, for the edge and sync alike.

Pure functions over parsed JSON values (what ``jsontext.loads`` returns). The
edge runs them on a client's ``push`` so that a bad change is answered at
once; sync runs them on every ``PushRequest`` (its gRPC API has other callers)
after parsing each ``*_json`` text once. Every problem raises ``OpError``
carrying the protocol code and the JSON path of the bad value; the edge turns
it into a ``ProtocolError``, sync into ``BadRequest`` / ``TooLarge`` /
``Unsupported``. ``docs/merge.md`` states the rules.

``check_op`` returns the op in its stored form: the keys of its kind only, in
a fixed order (``kind`` first), ``after`` always present for ``insert``,
``seen`` only when given, ``remove_items`` ids without repeats.
"""

from __future__ import annotations

from typing import Any, Literal

from accord.common.rules import (
    MAX_IDS,
    MAX_INT64,
    MAX_SAFE_INT,
    MAX_TEXT,
    MIN_INT64,
)

Code = Literal["BAD_REQUEST", "TOO_LARGE", "UNSUPPORTED"]

KINDS = ("set", "delete", "incr", "add", "remove", "insert", "remove_items")
"""Every op kind this server merges (``docs/merge.md``)."""


class OpError(ValueError):
    """A pushed change is malformed (``BAD_REQUEST``), over a limit (``TOO_LARGE``) or of
    an op kind this server does not know (``UNSUPPORTED``); nothing of its push is stored."""

    def __init__(self, code: Code, path: str, problem: str) -> None:
        self.code: Code = code
        self.path = path
        """Where the bad value is, e.g. ``changes[3].op.by``."""
        self.message = f"{path} {problem}"
        super().__init__(self.message)


def _path(index: int, suffix: str) -> str:
    return f"changes[{index}]{suffix}"


# The checks below test the common, valid case inline and build a path (a string) only
# for the error: sync runs them on every change it is sent.


def _int_ok(value: Any, low: int, high: int) -> bool:
    # ``type(...) is int``: JSON true/false are bools, and bool is a subclass of int.
    return type(value) is int and low <= value <= high


def check_text(value: Any, path: str) -> str:
    """A collection, key, field name, user id or element id: 1-256 characters, no U+0000
    (PostgreSQL text cannot hold it: one such name would fail its whole commit group)."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TEXT:
        raise OpError("BAD_REQUEST", path, f"must be a string of 1-{MAX_TEXT} characters")
    if "\x00" in value:
        raise OpError("BAD_REQUEST", path, "must not contain the character U+0000")
    return value


def _text(value: Any, index: int, suffix: str) -> str:
    if type(value) is str and 0 < len(value) <= MAX_TEXT and "\x00" not in value:
        return value
    return check_text(value, _path(index, suffix))


def check_header(client_seq: Any, collection: Any, key: Any, ts: Any, index: int) -> None:
    """The change's own fields: ``client_seq`` 1..2^63-1, ``ts`` 0..2^63-1 (0: the server
    stamps one), ``collection`` and ``key`` names."""
    if not _int_ok(client_seq, 1, MAX_INT64):
        raise OpError("BAD_REQUEST", _path(index, ".client_seq"), f"must be 1-{MAX_INT64}")
    _text(collection, index, ".collection")
    _text(key, index, ".key")
    if not _int_ok(ts, 0, MAX_INT64):
        raise OpError("BAD_REQUEST", _path(index, ".ts"), f"must be 0-{MAX_INT64}")


def check_change(raw: Any, index: int) -> tuple[int, str, str, int, dict[str, Any]]:
    """A client's change object: (client_seq, collection, key, ts, op in its stored form)."""
    if not isinstance(raw, dict):
        raise OpError("BAD_REQUEST", _path(index, ""), "must be an object")
    client_seq, collection, key = raw.get("client_seq"), raw.get("collection"), raw.get("key")
    ts = raw.get("ts")
    if ts is None:
        ts = 0
    check_header(client_seq, collection, key, ts, index)
    return client_seq, collection, key, ts, check_op(raw.get("op"), index)  # type: ignore[return-value]


def _values(op: dict[str, Any], index: int) -> list[Any]:
    values = op.get("values")
    if type(values) is not list or not values:
        raise OpError("BAD_REQUEST", _path(index, ".op.values"), "must be a non-empty array")
    return values


def _elements(op: dict[str, Any], index: int) -> list[Any]:
    """Set elements: values every client language compares exactly."""
    values = _values(op, index)
    for value in values:
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if kind is int and -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            continue
        raise OpError(
            "BAD_REQUEST",
            _path(index, ".op.values"),
            f"must hold strings, integers with |n| <= {MAX_SAFE_INT}, booleans or null",
        )
    return values


def _fields(op: dict[str, Any], index: int) -> dict[str, Any]:
    fields = op.get("fields")
    if type(fields) is not dict:
        raise OpError("BAD_REQUEST", _path(index, ".op.fields"), "must be an object")
    for name in fields:
        if not (0 < len(name) <= MAX_TEXT and "\x00" not in name):
            check_text(name, _path(index, f".op.fields[{str(name)[:MAX_TEXT]!r}]"))
    return fields


def _ids(op: dict[str, Any], index: int) -> list[str]:
    ids = op.get("ids")
    if type(ids) is not list or not ids:
        raise OpError("BAD_REQUEST", _path(index, ".op.ids"), "must be a non-empty array")
    if len(ids) > MAX_IDS:
        raise OpError("TOO_LARGE", _path(index, ".op.ids"), f"has more than {MAX_IDS} ids")
    for n, ident in enumerate(ids):
        _text(ident, index, f".op.ids[{n}]")
    return list(dict.fromkeys(ids))


def check_op(op: Any, index: int) -> dict[str, Any]:
    """The ``op`` of change ``index``, in its stored form (see the module's docstring)."""
    if type(op) is not dict:
        raise OpError("BAD_REQUEST", _path(index, ".op"), "must be an object")
    kind = op.get("kind")
    if kind == "set":
        return {"kind": "set", "fields": _fields(op, index)}
    if kind == "delete":
        return {"kind": "delete"}
    if kind not in KINDS:
        if isinstance(kind, str):
            raise OpError(
                "UNSUPPORTED", _path(index, ".op.kind"), f"{kind[:MAX_TEXT]!r} is not supported"
            )
        raise OpError("BAD_REQUEST", _path(index, ".op.kind"), "must be a string")
    field = _text(op.get("field"), index, ".op.field")
    if kind == "incr":
        by = op.get("by", 1)
        if not _int_ok(by, MIN_INT64, MAX_INT64):
            raise OpError(
                "BAD_REQUEST", _path(index, ".op.by"), f"must be an integer {MIN_INT64}-{MAX_INT64}"
            )
        return {"kind": "incr", "field": field, "by": by}
    if kind == "add":
        return {"kind": "add", "field": field, "values": _elements(op, index)}
    if kind == "remove":
        checked = {"kind": "remove", "field": field, "values": _elements(op, index)}
        seen = op.get("seen")
        if seen is not None:
            if not _int_ok(seen, 0, MAX_INT64):
                raise OpError("BAD_REQUEST", _path(index, ".op.seen"), f"must be 0-{MAX_INT64}")
            checked["seen"] = seen
        return checked
    if kind == "insert":
        after = op.get("after")
        if after is not None:
            _text(after, index, ".op.after")
        return {"kind": "insert", "field": field, "after": after, "values": _values(op, index)}
    return {"kind": "remove_items", "field": field, "ids": _ids(op, index)}

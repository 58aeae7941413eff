"""Client ops (the ``op`` object of a pushed change) to the sync service's typed ``Op``.

The edge checks each op's shape so that a malformed push is answered at once;
the sync service validates again (its gRPC API has other callers too).
"""

from __future__ import annotations

from typing import Any

from accord.api.sync.v1 import sync_pb2 as spb
from accord.common import jsontext
from accord.edge.protocol import ProtocolError

MAX_NAME = 256
MAX_IDS = 10_000


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_json = jsontext.dumps


def _name(op: dict[str, Any], key: str, where: str, room: str) -> str:
    value = op.get(key)
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME:
        raise ProtocolError(
            "BAD_REQUEST",
            f"{where}.op.{key} must be a string of 1-{MAX_NAME} characters",
            room=room,
        )
    return value


def _values(op: dict[str, Any], where: str, room: str) -> str:
    values = op.get("values")
    if not isinstance(values, list) or not values:
        raise ProtocolError(
            "BAD_REQUEST", f"{where}.op.values must be a non-empty array", room=room
        )
    return _json(values)


def _collection_op(
    change: spb.Change, kind: str, op: dict[str, Any], where: str, room: str
) -> None:
    """The set ops (add, remove) and list ops (insert, remove_items); see docs/merge.md."""
    name = _name(op, "field", where, room)
    if kind == "add":
        change.op.add.field = name
        change.op.add.values_json = _values(op, where, room)
    elif kind == "remove":
        change.op.remove.field = name
        change.op.remove.values_json = _values(op, where, room)
        seen = op.get("seen")
        if seen is not None:
            if not _int(seen) or not 0 <= seen < 2**63:
                raise ProtocolError(
                    "BAD_REQUEST", f"{where}.op.seen must be a non-negative integer", room=room
                )
            change.op.remove.seen = seen
    elif kind == "insert":
        after = op.get("after")
        if after is not None:
            after = _name(op, "after", where, room)
        change.op.insert.field = name
        change.op.insert.after = after or ""
        change.op.insert.values_json = _values(op, where, room)
    else:
        ids = op.get("ids")
        if not isinstance(ids, list) or not ids:
            raise ProtocolError(
                "BAD_REQUEST", f"{where}.op.ids must be a non-empty array", room=room
            )
        if len(ids) > MAX_IDS:
            raise ProtocolError(
                "TOO_LARGE", f"{where}.op.ids has more than {MAX_IDS} ids", room=room
            )
        if not all(isinstance(i, str) and 1 <= len(i) <= MAX_NAME for i in ids):
            raise ProtocolError(
                "BAD_REQUEST", f"{where}.op.ids must be element id strings", room=room
            )
        change.op.remove_items.field = name
        change.op.remove_items.ids.extend(ids)


def parse_change(raw: Any, room: str, index: int) -> spb.Change:
    where = f"changes[{index}]"
    if not isinstance(raw, dict):
        raise ProtocolError("BAD_REQUEST", f"{where} must be an object", room=room)
    client_seq: Any = raw.get("client_seq")
    if not _int(client_seq) or not 1 <= client_seq < 2**63:
        raise ProtocolError(
            "BAD_REQUEST", f"{where}.client_seq must be a positive integer", room=room
        )
    collection, key = raw.get("collection"), raw.get("key")
    for name, value in (("collection", collection), ("key", key)):
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME:
            raise ProtocolError(
                "BAD_REQUEST",
                f"{where}.{name} must be a string of 1-{MAX_NAME} characters",
                room=room,
            )
    ts = raw.get("ts", 0)
    if ts is None:
        ts = 0
    if not _int(ts) or not 0 <= ts < 2**63:
        raise ProtocolError("BAD_REQUEST", f"{where}.ts must be a non-negative integer", room=room)
    op = raw.get("op")
    if not isinstance(op, dict):
        raise ProtocolError("BAD_REQUEST", f"{where}.op must be an object", room=room)
    kind = op.get("kind")
    change = spb.Change(client_seq=client_seq, collection=collection, key=key, ts=ts)
    if kind == "set":
        fields = op.get("fields")
        if not isinstance(fields, dict):
            raise ProtocolError("BAD_REQUEST", f"{where}.op.fields must be an object", room=room)
        change.op.set.fields_json = _json(fields)
    elif kind == "delete":
        change.op.delete.SetInParent()
    elif kind == "incr":
        name, by = _name(op, "field", where, room), op.get("by", 1)
        if not _int(by) or not -(2**63) <= by < 2**63:
            raise ProtocolError("BAD_REQUEST", f"{where}.op.by must be an integer", room=room)
        change.op.incr.field = name
        change.op.incr.by = by
    elif kind in ("add", "remove", "insert", "remove_items"):
        _collection_op(change, kind, op, where, room)
    elif isinstance(kind, str):
        raise ProtocolError("UNSUPPORTED", f"{where}.op.kind {kind!r} is not supported", room=room)
    else:
        raise ProtocolError("BAD_REQUEST", f"{where}.op.kind must be a string", room=room)
    return change

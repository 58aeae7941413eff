"""Client ops (the ``op`` object of a pushed change) to the sync service's typed ``Op``.

The edge checks each op's shape so that a malformed push is answered at once;
the sync service validates again (its gRPC API has other callers too).
"""

from __future__ import annotations

import json
from typing import Any

from accord.api.sync.v1 import sync_pb2 as spb
from accord.edge.protocol import ProtocolError

MAX_NAME = 256


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_change(raw: Any, room: str, index: int) -> spb.Change:
    where = f"changes[{index}]"
    if not isinstance(raw, dict):
        raise ProtocolError("BAD_REQUEST", f"{where} must be an object", room=room)
    client_seq = raw.get("client_seq")
    if not _int(client_seq) or not 1 <= client_seq < 2**63:
        raise ProtocolError("BAD_REQUEST", f"{where}.client_seq must be a positive integer", room=room)
    collection, key = raw.get("collection"), raw.get("key")
    for name, value in (("collection", collection), ("key", key)):
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME:
            raise ProtocolError("BAD_REQUEST", f"{where}.{name} must be a string of 1-{MAX_NAME} characters", room=room)
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
        change.op.set.fields_json = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    elif kind == "delete":
        change.op.delete.SetInParent()
    elif kind == "incr":
        name, by = op.get("field"), op.get("by", 1)
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
            raise ProtocolError("BAD_REQUEST", f"{where}.op.field must be a string of 1-{MAX_NAME} characters", room=room)
        if not _int(by) or not -(2**63) <= by < 2**63:
            raise ProtocolError("BAD_REQUEST", f"{where}.op.by must be an integer", room=room)
        change.op.incr.field = name
        change.op.incr.by = by
    elif isinstance(kind, str):
        raise ProtocolError("UNSUPPORTED", f"{where}.op.kind {kind!r} is not supported", room=room)
    else:
        raise ProtocolError("BAD_REQUEST", f"{where}.op.kind must be a string", room=room)
    return change

"""Client changes (the items of a ``push``) to the sync service's typed ``Change``.

The edge checks each change with the shared rules (``accord.common.opcheck``)
so that a malformed push is answered at once; the sync service checks again
with the same functions (its gRPC API has other callers too). Each op's JSON
values are serialised once here, into the ``*_json`` fields sync parses.
"""

from __future__ import annotations

from typing import Any

from accord.api.sync.v1 import sync_pb2 as spb
from accord.common import jsontext
from accord.common.opcheck import OpError, check_change
from accord.edge.protocol import ProtocolError

_json = jsontext.dumps


def _fill(op: spb.Op, checked: dict[str, Any]) -> None:
    kind = checked["kind"]
    if kind == "set":
        op.set.fields_json = _json(checked["fields"])
    elif kind == "delete":
        op.delete.SetInParent()
    elif kind == "incr":
        op.incr.field = checked["field"]
        op.incr.by = checked["by"]
    elif kind == "add":
        op.add.field = checked["field"]
        op.add.values_json = _json(checked["values"])
    elif kind == "remove":
        op.remove.field = checked["field"]
        op.remove.values_json = _json(checked["values"])
        if "seen" in checked:
            op.remove.seen = checked["seen"]
    elif kind == "insert":
        op.insert.field = checked["field"]
        op.insert.after = checked["after"] or ""
        op.insert.values_json = _json(checked["values"])
    else:
        op.remove_items.field = checked["field"]
        op.remove_items.ids.extend(checked["ids"])


def parse_change(raw: Any, room: str, index: int) -> spb.Change:
    """The ``index``-th change of a push to ``room``; raises ``ProtocolError``."""
    try:
        client_seq, collection, key, ts, op = check_change(raw, index)
    except OpError as error:
        raise ProtocolError(error.code, error.message, room=room) from None
    change = spb.Change(client_seq=client_seq, collection=collection, key=key, ts=ts)
    _fill(change.op, op)
    return change

"""Request builders shared by the sync integration tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from accord.api.sync.v1 import sync_pb2 as pb
from accord.sync.store import Store

OpenStore = Callable[[], AbstractAsyncContextManager[Store]]


def set_change(client_seq: int, key: str, ts: int = 0, **fields: Any) -> pb.Change:
    return pb.Change(
        client_seq=client_seq,
        collection="todos",
        key=key,
        ts=ts,
        op=pb.Op(set=pb.SetOp(fields_json=json.dumps(fields))),
    )


def delete_change(client_seq: int, key: str, ts: int = 0) -> pb.Change:
    return pb.Change(
        client_seq=client_seq, collection="todos", key=key, ts=ts, op=pb.Op(delete=pb.DeleteOp())
    )


def incr_change(client_seq: int, key: str, field: str, by: int, ts: int = 0) -> pb.Change:
    return pb.Change(
        client_seq=client_seq,
        collection="todos",
        key=key,
        ts=ts,
        op=pb.Op(incr=pb.IncrOp(field=field, by=by)),
    )


def push(
    room: str, *changes: pb.Change, client_id: str = "c1", user_id: str = "u1"
) -> pb.PushRequest:
    return pb.PushRequest(room=room, user_id=user_id, client_id=client_id, changes=changes)


def op_change(client_seq: int, key: str, op: pb.Op) -> pb.Change:
    return pb.Change(client_seq=client_seq, collection="todos", key=key, op=op)


def add_change(client_seq: int, key: str, field: str, *values: Any) -> pb.Change:
    return op_change(
        client_seq, key, pb.Op(add=pb.AddOp(field=field, values_json=json.dumps(values)))
    )


def insert_change(
    client_seq: int, key: str, field: str, after: str, *values: Any, raw: str | None = None
) -> pb.Change:
    values_json = json.dumps(values) if raw is None else raw
    return op_change(
        client_seq,
        key,
        pb.Op(insert=pb.InsertOp(field=field, after=after, values_json=values_json)),
    )


def remove_items_change(client_seq: int, key: str, field: str, *ids: str) -> pb.Change:
    return op_change(client_seq, key, pb.Op(remove_items=pb.RemoveItemsOp(field=field, ids=ids)))

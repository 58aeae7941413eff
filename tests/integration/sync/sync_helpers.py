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

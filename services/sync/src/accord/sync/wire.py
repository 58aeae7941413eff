"""Wire <-> domain: validate gRPC requests into domain values, and back.

Every field is checked here so that the engine only sees well-formed input;
a rejected request raises ``BadRequest`` or ``TooLarge`` and stores nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from accord.api.sync.v1 import sync_pb2 as pb
from accord.sync import merge
from accord.sync.engine import SnapshotPage
from accord.sync.errors import BadRequest, TooLarge
from accord.sync.model import IncomingChange, Limits, LoggedChange, PushBatch, PushOutcome

_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
MAX_ROOM = 128
MAX_CLIENT_ID = 64
MAX_TEXT = 256
MAX_INT64 = 2**63 - 1


def check_room(room: str) -> str:
    if not 1 <= len(room) <= MAX_ROOM or not _NAME.fullmatch(room):
        raise BadRequest(f"room {room[:MAX_ROOM]!r} must be 1-{MAX_ROOM} chars of [A-Za-z0-9_.:-]")
    return room


def _check_client_id(client_id: str) -> None:
    if not 1 <= len(client_id) <= MAX_CLIENT_ID or not _NAME.fullmatch(client_id):
        raise BadRequest(f"client_id must be 1-{MAX_CLIENT_ID} chars of [A-Za-z0-9_.:-]")


def _check_text(what: str, value: str) -> None:
    if not 1 <= len(value) <= MAX_TEXT:
        raise BadRequest(f"{what} must be 1-{MAX_TEXT} characters")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``{}`` is 1)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            items: Iterable[Any] = item.values()
        elif isinstance(item, list):
            items = item
        else:
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in items)
    return deepest


def _parse_fields(text: str, limits: Limits) -> dict[str, merge.Json]:
    if len(text.encode()) > limits.max_record_bytes:
        raise TooLarge(f"fields_json exceeds {limits.max_record_bytes} bytes")
    try:
        fields = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise BadRequest(f"fields_json is not valid JSON: {error}") from None
    if not isinstance(fields, dict):
        raise BadRequest("fields_json must be a JSON object")
    if _depth(fields) > limits.max_json_depth:
        raise BadRequest(f"fields_json nests deeper than {limits.max_json_depth}")
    for name in fields:
        _check_text("a field name", name)
    return fields


def _op_of(change: pb.Change, limits: Limits) -> tuple[merge.Op, str]:
    kind = change.op.WhichOneof("kind")
    if kind == "set":
        fields = _parse_fields(change.op.set.fields_json, limits)
        return merge.SetOp(fields), merge.compact_json({"kind": "set", "fields": fields})
    if kind == "delete":
        return merge.DeleteOp(), '{"kind":"delete"}'
    if kind == "incr":
        _check_text("incr field", change.op.incr.field)
        op = merge.IncrOp(change.op.incr.field, change.op.incr.by)
        return op, merge.compact_json({"kind": "incr", "field": op.field, "by": op.by})
    raise BadRequest(f"change client_seq={change.client_seq} has no op")


def push_batch(request: pb.PushRequest, limits: Limits) -> PushBatch:
    check_room(request.room)
    if not 1 <= len(request.user_id) <= MAX_TEXT:
        raise BadRequest(f"user_id must be 1-{MAX_TEXT} characters")
    _check_client_id(request.client_id)
    if not request.changes:
        raise BadRequest("push has no changes")
    if len(request.changes) > limits.max_batch_changes:
        raise TooLarge(f"push has more than {limits.max_batch_changes} changes")
    changes: list[IncomingChange] = []
    previous = 0
    for change in request.changes:
        if not 1 <= change.client_seq <= MAX_INT64:
            raise BadRequest(f"client_seq must be 1-{MAX_INT64}")
        if change.client_seq <= previous:
            raise BadRequest("client_seq must strictly increase within a push")
        previous = change.client_seq
        _check_text("collection", change.collection)
        _check_text("key", change.key)
        if change.ts < 0:
            raise BadRequest("ts must not be negative")
        op, op_json = _op_of(change, limits)
        changes.append(
            IncomingChange(change.client_seq, change.collection, change.key, change.ts, op, op_json)
        )
    return PushBatch(request.room, request.user_id, request.client_id, tuple(changes))


def push_response(outcome: PushOutcome) -> pb.PushResponse:
    return pb.PushResponse(
        room=outcome.room,
        head=outcome.head,
        results=[
            pb.ChangeResult(
                client_seq=r.client_seq,
                seq=r.seq,
                status=pb.CHANGE_STATUS_DUPLICATE if r.duplicate else pb.CHANGE_STATUS_APPLIED,
                ts=r.ts,
                ts_adjusted=r.ts_adjusted,
                conflicts=[
                    pb.Conflict(field=c.field, winner_ts=c.winner[0], winner_client_id=c.winner[1])
                    for c in r.conflicts
                ],
            )
            for r in outcome.results
        ],
    )


def committed_change(change: LoggedChange) -> pb.CommittedChange:
    return pb.CommittedChange(
        seq=change.seq,
        collection=change.collection,
        key=change.key,
        client_id=change.client_id,
        client_seq=change.client_seq,
        ts=change.ts,
        patch_json=change.patch_json,
        user_id=change.user_id,
    )


def change_batch(room: str, changes: Iterable[LoggedChange]) -> pb.ChangeBatch:
    return pb.ChangeBatch(room=room, changes=[committed_change(c) for c in changes])


def snapshot_chunk(page: SnapshotPage) -> pb.SnapshotChunk:
    return pb.SnapshotChunk(
        seq=page.seq,
        last=page.last,
        records=[
            pb.Record(collection=r.collection, key=r.key, value_json=r.value_json)
            for r in page.records
        ],
    )

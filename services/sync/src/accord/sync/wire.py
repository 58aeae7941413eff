"""Wire <-> domain: validate gRPC requests into domain values, and back.

Every field is checked here so that the engine only sees well-formed input;
a rejected request raises ``BadRequest`` or ``TooLarge`` and stores nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from accord.api.sync.v1 import sync_pb2 as pb
from accord.common import jsontext
from accord.sync import merge
from accord.sync.engine import SnapshotPage
from accord.sync.errors import BadRequest, TooLarge, Unsupported
from accord.sync.lattice import Json, compact_json
from accord.sync.model import (
    ConflictRow,
    IncomingChange,
    Limits,
    LoggedChange,
    PushBatch,
    PushOutcome,
)

_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
MAX_ROOM = 128
MAX_CLIENT_ID = 64
MAX_TEXT = 256
MAX_INT64 = 2**63 - 1
MAX_SAFE_INT = 2**53 - 1
"""Set elements are integers JavaScript clients can compare exactly."""
MAX_IDS = 10_000
MAX_CONFLICTS = 1000
DEFAULT_CONFLICTS = 100


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
    if "\x00" in value:
        # PostgreSQL text cannot hold U+0000: one such name would fail its whole commit group.
        raise BadRequest(f"{what} must not contain the character U+0000")


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


def _parse_json(what: str, text: str, limits: Limits) -> Any:
    if len(text.encode()) > limits.max_record_bytes:
        raise TooLarge(f"{what} exceeds {limits.max_record_bytes} bytes")
    try:
        value = jsontext.loads(text)
    except (ValueError, RecursionError) as error:
        raise BadRequest(f"{what} is not valid JSON: {error}") from None
    if _depth(value) > limits.max_json_depth:
        raise BadRequest(f"{what} nests deeper than {limits.max_json_depth}")
    return value


def _parse_fields(text: str, limits: Limits) -> dict[str, Json]:
    fields = _parse_json("fields_json", text, limits)
    if not isinstance(fields, dict):
        raise BadRequest("fields_json must be a JSON object")
    for name in fields:
        _check_text("a field name", name)
    return fields


def _parse_values(text: str, limits: Limits) -> tuple[Json, ...]:
    values = _parse_json("values_json", text, limits)
    if not isinstance(values, list) or not values:
        raise BadRequest("values_json must be a non-empty JSON array")
    return tuple(values)


def _is_element(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    return isinstance(value, int) and abs(value) <= MAX_SAFE_INT


def _parse_elements(text: str, limits: Limits) -> tuple[Json, ...]:
    values = _parse_values(text, limits)
    if not all(_is_element(v) for v in values):
        raise BadRequest("set elements must be strings, integers up to 2^53, booleans or null")
    return values


def _op_of(change: pb.Change, limits: Limits) -> tuple[merge.Op, str]:
    op = _parse_op(change, limits)
    if isinstance(op, merge.SetOp):
        raw: dict[str, Any] = {"kind": "set", "fields": dict(op.fields)}
    elif isinstance(op, merge.DeleteOp):
        raw = {"kind": "delete"}
    elif isinstance(op, merge.IncrOp):
        raw = {"kind": "incr", "field": op.field, "by": op.by}
    elif isinstance(op, merge.AddOp):
        raw = {"kind": "add", "field": op.field, "values": list(op.values)}
    elif isinstance(op, merge.RemoveOp):
        raw = {"kind": "remove", "field": op.field, "values": list(op.values)}
        if op.seen is not None:
            raw["seen"] = op.seen
    elif isinstance(op, merge.InsertOp):
        raw = {"kind": "insert", "field": op.field, "after": op.after, "values": list(op.values)}
    else:
        raw = {"kind": "remove_items", "field": op.field, "ids": list(op.ids)}
    return op, compact_json(raw)


def _parse_op(change: pb.Change, limits: Limits) -> merge.Op:
    op = change.op
    kind = op.WhichOneof("kind")
    if kind == "set":
        return merge.SetOp(_parse_fields(op.set.fields_json, limits))
    if kind == "delete":
        return merge.DeleteOp()
    if kind == "incr":
        _check_text("incr field", op.incr.field)
        return merge.IncrOp(op.incr.field, op.incr.by)
    if kind == "add":
        _check_text("add field", op.add.field)
        return merge.AddOp(op.add.field, _parse_elements(op.add.values_json, limits))
    if kind == "remove":
        _check_text("remove field", op.remove.field)
        seen = op.remove.seen if op.remove.HasField("seen") else None
        if seen is not None and seen > MAX_INT64:
            raise BadRequest(f"seen must be at most {MAX_INT64}")
        return merge.RemoveOp(op.remove.field, _parse_elements(op.remove.values_json, limits), seen)
    if kind == "insert":
        _check_text("insert field", op.insert.field)
        after = op.insert.after or None
        if after is not None:
            _check_text("insert after", after)
        return merge.InsertOp(op.insert.field, after, _parse_values(op.insert.values_json, limits))
    if kind == "remove_items":
        _check_text("remove_items field", op.remove_items.field)
        if not op.remove_items.ids:
            raise BadRequest("remove_items needs at least one id")
        if len(op.remove_items.ids) > MAX_IDS:
            raise TooLarge(f"remove_items names more than {MAX_IDS} ids")
        for ident in op.remove_items.ids:
            _check_text("a list element id", ident)
        return merge.RemoveItemsOp(op.remove_items.field, tuple(dict.fromkeys(op.remove_items.ids)))
    if change.HasField("op") and op.ByteSize() > 0:
        raise Unsupported(f"change client_seq={change.client_seq}: unknown op kind")
    raise BadRequest(f"change client_seq={change.client_seq} has no op")


def push_batch(request: pb.PushRequest, limits: Limits) -> PushBatch:
    check_room(request.room)
    _check_text("user_id", request.user_id)
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


def list_conflicts_limit(limit: int) -> int:
    return min(limit or DEFAULT_CONFLICTS, MAX_CONFLICTS)


def conflict_record(row: ConflictRow) -> pb.ConflictRecord:
    return pb.ConflictRecord(
        seq=row.seq,
        collection=row.collection,
        key=row.key,
        field=row.field,
        user_id=row.user_id,
        client_id=row.client_id,
        client_seq=row.client_seq,
        ts=row.ts,
        winner_ts=row.winner[0],
        winner_client_id=row.winner[1],
        winner_user_id=row.winner[2],
        winner_client_seq=row.winner[3],
    )

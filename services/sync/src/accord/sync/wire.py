"""Wire <-> domain: validate gRPC requests into domain values, and back.

Every field is checked here so that the engine only sees well-formed input;
a rejected request raises ``BadRequest``, ``TooLarge`` or ``Unsupported`` and
stores nothing. A pushed op's rules are the edge's (``accord.common.opcheck``);
each of its ``*_json`` texts is parsed once, here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from accord.api.sync.v1 import sync_pb2 as pb
from accord.common import jsontext
from accord.common.opcheck import OpError, check_header, check_op, check_text
from accord.common.rules import (
    MAX_CLIENT_ID,
    MAX_ROOM,
    NAME_CHARS,
    is_client_id,
    is_room,
    text_too_deep,
)
from accord.sync import merge
from accord.sync.errors import BadRequest, SyncError, TooLarge, Unsupported
from accord.sync.lattice import compact_json
from accord.sync.model import (
    ChangeError,
    ChangeOutcome,
    ConflictRow,
    IncomingChange,
    Limits,
    LoggedChange,
    PushBatch,
    PushOutcome,
    RecordValue,
    SnapshotPage,
)

MAX_CONFLICTS = 1000
DEFAULT_CONFLICTS = 100

_ERRORS: dict[str, type[SyncError]] = {
    "BAD_REQUEST": BadRequest,
    "TOO_LARGE": TooLarge,
    "UNSUPPORTED": Unsupported,
}


def _path(index: int, what: str) -> str:
    return f"changes[{index}].op{'.' if what else ''}{what}"


def check_room(room: str) -> str:
    if not is_room(room):
        raise BadRequest(f"room {room[:MAX_ROOM]!r} must be 1-{MAX_ROOM} chars of {NAME_CHARS}")
    return room


def _parse_json(text: str, index: int, what: str, limits: Limits) -> Any:
    """The ``what`` JSON text of change ``index``'s op, parsed."""
    # A character is at most 4 UTF-8 bytes: only long text needs encoding to be measured.
    if len(text) * 4 > limits.max_record_bytes and len(text.encode()) > limits.max_record_bytes:
        raise OpError("TOO_LARGE", _path(index, what), f"exceeds {limits.max_record_bytes} bytes")
    try:
        value = jsontext.loads(text)
    except (ValueError, RecursionError) as error:
        raise OpError("BAD_REQUEST", _path(index, what), f"is not valid JSON: {error}") from None
    if text_too_deep(text, value, limits.max_json_depth):
        raise OpError(
            "BAD_REQUEST", _path(index, what), f"nests deeper than {limits.max_json_depth}"
        )
    return value


def _raw_op(change: pb.Change, index: int, limits: Limits) -> dict[str, Any]:
    """The change's op as the JSON object a client pushes, its ``*_json`` texts parsed."""
    op = change.op
    kind = op.WhichOneof("kind")
    if kind == "set":
        return {
            "kind": kind,
            "fields": _parse_json(op.set.fields_json, index, "fields_json", limits),
        }
    if kind == "delete":
        return {"kind": kind}
    if kind == "incr":
        return {"kind": kind, "field": op.incr.field, "by": op.incr.by}
    if kind == "add":
        values = _parse_json(op.add.values_json, index, "values_json", limits)
        return {"kind": kind, "field": op.add.field, "values": values}
    if kind == "remove":
        values = _parse_json(op.remove.values_json, index, "values_json", limits)
        raw = {"kind": kind, "field": op.remove.field, "values": values}
        if op.remove.HasField("seen"):
            raw["seen"] = op.remove.seen
        return raw
    if kind == "insert":
        values = _parse_json(op.insert.values_json, index, "values_json", limits)
        after = op.insert.after or None
        return {"kind": kind, "field": op.insert.field, "after": after, "values": values}
    if kind == "remove_items":
        return {"kind": kind, "field": op.remove_items.field, "ids": list(op.remove_items.ids)}
    if change.HasField("op") and op.ByteSize() > 0:
        raise OpError("UNSUPPORTED", _path(index, ""), "has an op kind this server does not know")
    raise OpError("BAD_REQUEST", _path(index, ""), "is missing")


def _merge_op(op: dict[str, Any]) -> merge.Op:
    """A checked op (``opcheck.check_op``) as the engine merges it."""
    kind = op["kind"]
    if kind == "set":
        return merge.SetOp(op["fields"])
    if kind == "delete":
        return merge.DeleteOp()
    if kind == "incr":
        return merge.IncrOp(op["field"], op["by"])
    if kind == "add":
        return merge.AddOp(op["field"], tuple(op["values"]))
    if kind == "remove":
        return merge.RemoveOp(op["field"], tuple(op["values"]), op.get("seen"))
    if kind == "insert":
        return merge.InsertOp(op["field"], op["after"], tuple(op["values"]))
    return merge.RemoveItemsOp(op["field"], tuple(op["ids"]))


def _changes(request: pb.PushRequest, limits: Limits) -> tuple[IncomingChange, ...]:
    changes: list[IncomingChange] = []
    previous = 0
    for index, change in enumerate(request.changes):
        client_seq, ts = change.client_seq, change.ts
        check_header(client_seq, change.collection, change.key, ts, index)
        if client_seq <= previous:
            raise OpError(
                "BAD_REQUEST",
                f"changes[{index}].client_seq",
                "must strictly increase within a push",
            )
        previous = client_seq
        op = check_op(_raw_op(change, index, limits), index)
        changes.append(
            IncomingChange(
                client_seq, change.collection, change.key, ts, _merge_op(op), compact_json(op)
            )
        )
    return tuple(changes)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def checked_op(raw: Any, limits: Limits) -> tuple[merge.Op, dict[str, Any], str]:
    """An op in the client protocol's shape (an extension's rewrite), checked as a pushed
    op is: as merged, as a plain checked object, and as stored; ``ValueError`` saying
    what is wrong with it."""
    try:
        text = json.dumps(raw, separators=(",", ":"), ensure_ascii=False, default=_plain)
        plain = jsontext.loads(text)  # a copy of plain dicts, lists and scalars
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueError(f"the op is not JSON: {error}") from None
    if len(text) * 4 > limits.max_record_bytes and len(text.encode()) > limits.max_record_bytes:
        raise ValueError(f"the op exceeds {limits.max_record_bytes} bytes")
    if text_too_deep(text, plain, limits.max_json_depth):
        raise ValueError(f"the op nests deeper than {limits.max_json_depth}")
    try:
        op = check_op(plain, 0)
    except OpError as error:
        raise ValueError(error.message) from None
    return _merge_op(op), op, compact_json(op)


def push_batch(request: pb.PushRequest, limits: Limits) -> PushBatch:
    check_room(request.room)
    if not is_client_id(request.client_id):
        raise BadRequest(f"client_id must be 1-{MAX_CLIENT_ID} chars of {NAME_CHARS}")
    if not request.changes:
        raise BadRequest("push has no changes")
    if len(request.changes) > limits.max_batch_changes:
        raise TooLarge(f"push has more than {limits.max_batch_changes} changes")
    try:
        check_text(request.user_id, "user_id")
        changes = _changes(request, limits)
    except OpError as error:
        raise _ERRORS[error.code](error.message) from None
    return PushBatch(request.room, request.user_id, request.client_id, changes)


def push_response(outcome: PushOutcome) -> pb.PushResponse:
    return pb.PushResponse(
        room=outcome.room,
        head=outcome.head,
        results=[
            pb.ChangeResult(
                client_seq=r.client_seq,
                seq=r.seq,
                status=_status(r),
                ts=r.ts,
                ts_adjusted=r.ts_adjusted,
                conflicts=[
                    pb.Conflict(field=c.field, winner_ts=c.winner[0], winner_client_id=c.winner[1])
                    for c in r.conflicts
                ],
                error=None if r.error is None else change_error(r.error),
            )
            for r in outcome.results
        ],
    )


def _status(outcome: ChangeOutcome) -> pb.ChangeStatus:
    if outcome.duplicate:
        return pb.CHANGE_STATUS_DUPLICATE
    return pb.CHANGE_STATUS_UNSPECIFIED if outcome.error else pb.CHANGE_STATUS_APPLIED


def change_error(error: ChangeError) -> pb.PushError:
    return pb.PushError(reason=error.code, message=error.message, json_path=error.json_path or "")


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


def records_proto(values: Iterable[RecordValue]) -> list[pb.Record]:
    return [pb.Record(collection=r.collection, key=r.key, value_json=r.value_json) for r in values]


def snapshot_chunk(page: SnapshotPage) -> pb.SnapshotChunk:
    return pb.SnapshotChunk(seq=page.seq, last=page.last, records=records_proto(page.records))


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

"""Wire <-> domain for the record reads (``ReadRecords``, ``GetRecord``)."""

from __future__ import annotations

from accord.api.sync.v1 import sync_pb2 as pb
from accord.common import rules
from accord.sync import wire
from accord.sync.errors import BadRequest
from accord.sync.model import RecordKey
from accord.sync.records import DEFAULT_LIMIT, MAX_LIMIT, RecordsPage, StoredRecord


def _check_name(what: str, value: str) -> None:
    if not 1 <= len(value) <= rules.MAX_TEXT or "\x00" in value:
        raise BadRequest(f"{what} must be 1-{rules.MAX_TEXT} characters (no U+0000)")


def read_records_args(
    request: pb.ReadRecordsRequest,
) -> tuple[int, str | None, RecordKey | None, int]:
    """(as_of, collection, after, limit) of a valid request."""
    wire.check_room(request.room)
    collection = request.collection or None
    if collection is not None:
        _check_name("collection", collection)
    after = None
    if request.HasField("after_collection"):
        _check_name("after_collection", request.after_collection)
        after = (request.after_collection, request.after_key)
    if request.limit > MAX_LIMIT:
        raise BadRequest(f"limit must be at most {MAX_LIMIT}")
    return request.as_of, collection, after, request.limit or DEFAULT_LIMIT


def check_record_key(collection: str, key: str) -> None:
    _check_name("collection", collection)
    _check_name("key", key)


def records_response(page: RecordsPage) -> pb.ReadRecordsResponse:
    return pb.ReadRecordsResponse(
        seq=page.seq, more=page.more, records=wire.records_proto(page.records)
    )


def record_response(row: StoredRecord | None) -> pb.GetRecordResponse:
    if row is None or row.value_json is None:
        return pb.GetRecordResponse(found=False, seq=0 if row is None else row.seq)
    record = pb.Record(collection=row.collection, key=row.key, value_json=row.value_json)
    return pb.GetRecordResponse(found=True, record=record, seq=row.seq)

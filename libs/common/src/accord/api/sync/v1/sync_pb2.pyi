from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChangeStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_STATUS_UNSPECIFIED: _ClassVar[ChangeStatus]
    CHANGE_STATUS_APPLIED: _ClassVar[ChangeStatus]
    CHANGE_STATUS_DUPLICATE: _ClassVar[ChangeStatus]
CHANGE_STATUS_UNSPECIFIED: ChangeStatus
CHANGE_STATUS_APPLIED: ChangeStatus
CHANGE_STATUS_DUPLICATE: ChangeStatus

class SetOp(_message.Message):
    __slots__ = ("fields_json",)
    FIELDS_JSON_FIELD_NUMBER: _ClassVar[int]
    fields_json: str
    def __init__(self, fields_json: _Optional[str] = ...) -> None: ...

class DeleteOp(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IncrOp(_message.Message):
    __slots__ = ("field", "by")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    field: str
    by: int
    def __init__(self, field: _Optional[str] = ..., by: _Optional[int] = ...) -> None: ...

class AddOp(_message.Message):
    __slots__ = ("field", "values_json")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_JSON_FIELD_NUMBER: _ClassVar[int]
    field: str
    values_json: str
    def __init__(self, field: _Optional[str] = ..., values_json: _Optional[str] = ...) -> None: ...

class RemoveOp(_message.Message):
    __slots__ = ("field", "values_json", "seen")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_JSON_FIELD_NUMBER: _ClassVar[int]
    SEEN_FIELD_NUMBER: _ClassVar[int]
    field: str
    values_json: str
    seen: int
    def __init__(self, field: _Optional[str] = ..., values_json: _Optional[str] = ..., seen: _Optional[int] = ...) -> None: ...

class InsertOp(_message.Message):
    __slots__ = ("field", "after", "values_json")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    VALUES_JSON_FIELD_NUMBER: _ClassVar[int]
    field: str
    after: str
    values_json: str
    def __init__(self, field: _Optional[str] = ..., after: _Optional[str] = ..., values_json: _Optional[str] = ...) -> None: ...

class RemoveItemsOp(_message.Message):
    __slots__ = ("field", "ids")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    field: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, field: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Op(_message.Message):
    __slots__ = ("set", "delete", "incr", "add", "remove", "insert", "remove_items")
    SET_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    INCR_FIELD_NUMBER: _ClassVar[int]
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    INSERT_FIELD_NUMBER: _ClassVar[int]
    REMOVE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    set: SetOp
    delete: DeleteOp
    incr: IncrOp
    add: AddOp
    remove: RemoveOp
    insert: InsertOp
    remove_items: RemoveItemsOp
    def __init__(self, set: _Optional[_Union[SetOp, _Mapping]] = ..., delete: _Optional[_Union[DeleteOp, _Mapping]] = ..., incr: _Optional[_Union[IncrOp, _Mapping]] = ..., add: _Optional[_Union[AddOp, _Mapping]] = ..., remove: _Optional[_Union[RemoveOp, _Mapping]] = ..., insert: _Optional[_Union[InsertOp, _Mapping]] = ..., remove_items: _Optional[_Union[RemoveItemsOp, _Mapping]] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("client_seq", "collection", "key", "ts", "op")
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    client_seq: int
    collection: str
    key: str
    ts: int
    op: Op
    def __init__(self, client_seq: _Optional[int] = ..., collection: _Optional[str] = ..., key: _Optional[str] = ..., ts: _Optional[int] = ..., op: _Optional[_Union[Op, _Mapping]] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("room", "user_id", "client_id", "changes")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    room: str
    user_id: str
    client_id: str
    changes: _containers.RepeatedCompositeFieldContainer[Change]
    def __init__(self, room: _Optional[str] = ..., user_id: _Optional[str] = ..., client_id: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[Change, _Mapping]]] = ...) -> None: ...

class Conflict(_message.Message):
    __slots__ = ("field", "winner_ts", "winner_client_id")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    WINNER_TS_FIELD_NUMBER: _ClassVar[int]
    WINNER_CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    field: str
    winner_ts: int
    winner_client_id: str
    def __init__(self, field: _Optional[str] = ..., winner_ts: _Optional[int] = ..., winner_client_id: _Optional[str] = ...) -> None: ...

class ChangeResult(_message.Message):
    __slots__ = ("client_seq", "seq", "status", "ts", "ts_adjusted", "conflicts", "error")
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    TS_ADJUSTED_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    client_seq: int
    seq: int
    status: ChangeStatus
    ts: int
    ts_adjusted: bool
    conflicts: _containers.RepeatedCompositeFieldContainer[Conflict]
    error: PushError
    def __init__(self, client_seq: _Optional[int] = ..., seq: _Optional[int] = ..., status: _Optional[_Union[ChangeStatus, str]] = ..., ts: _Optional[int] = ..., ts_adjusted: _Optional[bool] = ..., conflicts: _Optional[_Iterable[_Union[Conflict, _Mapping]]] = ..., error: _Optional[_Union[PushError, _Mapping]] = ...) -> None: ...

class PushResponse(_message.Message):
    __slots__ = ("room", "results", "head")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    room: str
    results: _containers.RepeatedCompositeFieldContainer[ChangeResult]
    head: int
    def __init__(self, room: _Optional[str] = ..., results: _Optional[_Iterable[_Union[ChangeResult, _Mapping]]] = ..., head: _Optional[int] = ...) -> None: ...

class PushManyRequest(_message.Message):
    __slots__ = ("pushes", "subscriber")
    PUSHES_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    pushes: _containers.RepeatedCompositeFieldContainer[PushRequest]
    subscriber: str
    def __init__(self, pushes: _Optional[_Iterable[_Union[PushRequest, _Mapping]]] = ..., subscriber: _Optional[str] = ...) -> None: ...

class PushError(_message.Message):
    __slots__ = ("reason", "message", "json_path")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    JSON_PATH_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    json_path: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ..., json_path: _Optional[str] = ...) -> None: ...

class PushResult(_message.Message):
    __slots__ = ("response", "error")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    response: PushResponse
    error: PushError
    def __init__(self, response: _Optional[_Union[PushResponse, _Mapping]] = ..., error: _Optional[_Union[PushError, _Mapping]] = ...) -> None: ...

class PushManyResponse(_message.Message):
    __slots__ = ("results", "batches")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PushResult]
    batches: _containers.RepeatedCompositeFieldContainer[ChangeBatch]
    def __init__(self, results: _Optional[_Iterable[_Union[PushResult, _Mapping]]] = ..., batches: _Optional[_Iterable[_Union[ChangeBatch, _Mapping]]] = ...) -> None: ...

class CommittedChange(_message.Message):
    __slots__ = ("seq", "collection", "key", "client_id", "client_seq", "ts", "patch_json", "user_id")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    PATCH_JSON_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    seq: int
    collection: str
    key: str
    client_id: str
    client_seq: int
    ts: int
    patch_json: str
    user_id: str
    def __init__(self, seq: _Optional[int] = ..., collection: _Optional[str] = ..., key: _Optional[str] = ..., client_id: _Optional[str] = ..., client_seq: _Optional[int] = ..., ts: _Optional[int] = ..., patch_json: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class ChangeBatch(_message.Message):
    __slots__ = ("room", "changes", "epoch")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    room: str
    changes: _containers.RepeatedCompositeFieldContainer[CommittedChange]
    epoch: str
    def __init__(self, room: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[CommittedChange, _Mapping]]] = ..., epoch: _Optional[str] = ...) -> None: ...

class BusMessage(_message.Message):
    __slots__ = ("batches", "origin", "serial", "joined")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    batches: _containers.RepeatedCompositeFieldContainer[ChangeBatch]
    origin: bytes
    serial: int
    joined: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, batches: _Optional[_Iterable[_Union[ChangeBatch, _Mapping]]] = ..., origin: _Optional[bytes] = ..., serial: _Optional[int] = ..., joined: _Optional[_Iterable[int]] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("room", "since", "until", "page_size", "changes_only", "epoch")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHANGES_ONLY_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    room: str
    since: int
    until: int
    page_size: int
    changes_only: bool
    epoch: str
    def __init__(self, room: _Optional[str] = ..., since: _Optional[int] = ..., until: _Optional[int] = ..., page_size: _Optional[int] = ..., changes_only: _Optional[bool] = ..., epoch: _Optional[str] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("collection", "key", "value_json")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    collection: str
    key: str
    value_json: str
    def __init__(self, collection: _Optional[str] = ..., key: _Optional[str] = ..., value_json: _Optional[str] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("seq", "records", "last")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    seq: int
    records: _containers.RepeatedCompositeFieldContainer[Record]
    last: bool
    def __init__(self, seq: _Optional[int] = ..., records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ..., last: _Optional[bool] = ...) -> None: ...

class PullResponse(_message.Message):
    __slots__ = ("head", "snapshot", "changes", "epoch")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    head: int
    snapshot: SnapshotChunk
    changes: ChangeBatch
    epoch: str
    def __init__(self, head: _Optional[int] = ..., snapshot: _Optional[_Union[SnapshotChunk, _Mapping]] = ..., changes: _Optional[_Union[ChangeBatch, _Mapping]] = ..., epoch: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("add", "remove", "batched", "subscriber")
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    BATCHED_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    add: _containers.RepeatedScalarFieldContainer[str]
    remove: _containers.RepeatedScalarFieldContainer[str]
    batched: bool
    subscriber: str
    def __init__(self, add: _Optional[_Iterable[str]] = ..., remove: _Optional[_Iterable[str]] = ..., batched: _Optional[bool] = ..., subscriber: _Optional[str] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("changes", "batches")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    changes: ChangeBatch
    batches: _containers.RepeatedCompositeFieldContainer[ChangeBatch]
    def __init__(self, changes: _Optional[_Union[ChangeBatch, _Mapping]] = ..., batches: _Optional[_Iterable[_Union[ChangeBatch, _Mapping]]] = ...) -> None: ...

class HeadRequest(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class HeadResponse(_message.Message):
    __slots__ = ("head", "epoch")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    head: int
    epoch: str
    def __init__(self, head: _Optional[int] = ..., epoch: _Optional[str] = ...) -> None: ...

class ListConflictsRequest(_message.Message):
    __slots__ = ("room", "limit", "before")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    room: str
    limit: int
    before: int
    def __init__(self, room: _Optional[str] = ..., limit: _Optional[int] = ..., before: _Optional[int] = ...) -> None: ...

class ConflictRecord(_message.Message):
    __slots__ = ("seq", "collection", "key", "field", "user_id", "client_id", "client_seq", "ts", "winner_ts", "winner_client_id", "winner_user_id", "winner_client_seq")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    WINNER_TS_FIELD_NUMBER: _ClassVar[int]
    WINNER_CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    WINNER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    WINNER_CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    collection: str
    key: str
    field: str
    user_id: str
    client_id: str
    client_seq: int
    ts: int
    winner_ts: int
    winner_client_id: str
    winner_user_id: str
    winner_client_seq: int
    def __init__(self, seq: _Optional[int] = ..., collection: _Optional[str] = ..., key: _Optional[str] = ..., field: _Optional[str] = ..., user_id: _Optional[str] = ..., client_id: _Optional[str] = ..., client_seq: _Optional[int] = ..., ts: _Optional[int] = ..., winner_ts: _Optional[int] = ..., winner_client_id: _Optional[str] = ..., winner_user_id: _Optional[str] = ..., winner_client_seq: _Optional[int] = ...) -> None: ...

class ListConflictsResponse(_message.Message):
    __slots__ = ("conflicts",)
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    conflicts: _containers.RepeatedCompositeFieldContainer[ConflictRecord]
    def __init__(self, conflicts: _Optional[_Iterable[_Union[ConflictRecord, _Mapping]]] = ...) -> None: ...

class ReadRecordsRequest(_message.Message):
    __slots__ = ("room", "as_of", "collection", "after_collection", "after_key", "limit")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    AFTER_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    AFTER_KEY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    room: str
    as_of: int
    collection: str
    after_collection: str
    after_key: str
    limit: int
    def __init__(self, room: _Optional[str] = ..., as_of: _Optional[int] = ..., collection: _Optional[str] = ..., after_collection: _Optional[str] = ..., after_key: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ReadRecordsResponse(_message.Message):
    __slots__ = ("seq", "records", "more")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    records: _containers.RepeatedCompositeFieldContainer[Record]
    more: bool
    def __init__(self, seq: _Optional[int] = ..., records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class GetRecordRequest(_message.Message):
    __slots__ = ("room", "collection", "key")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    room: str
    collection: str
    key: str
    def __init__(self, room: _Optional[str] = ..., collection: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class GetRecordResponse(_message.Message):
    __slots__ = ("found", "record", "seq")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    found: bool
    record: Record
    seq: int
    def __init__(self, found: _Optional[bool] = ..., record: _Optional[_Union[Record, _Mapping]] = ..., seq: _Optional[int] = ...) -> None: ...

class ListWebhooksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WebhookEndpoint(_message.Message):
    __slots__ = ("id", "url", "rooms", "events", "configured", "parked", "parked_at", "parked_reason", "backlog_rows", "backlog_changes", "backlog_rooms", "oldest_at", "attempts", "last_error")
    ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    PARKED_FIELD_NUMBER: _ClassVar[int]
    PARKED_AT_FIELD_NUMBER: _ClassVar[int]
    PARKED_REASON_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_ROWS_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_CHANGES_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_ROOMS_FIELD_NUMBER: _ClassVar[int]
    OLDEST_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    url: str
    rooms: _containers.RepeatedScalarFieldContainer[str]
    events: _containers.RepeatedScalarFieldContainer[str]
    configured: bool
    parked: bool
    parked_at: int
    parked_reason: str
    backlog_rows: int
    backlog_changes: int
    backlog_rooms: int
    oldest_at: int
    attempts: int
    last_error: str
    def __init__(self, id: _Optional[str] = ..., url: _Optional[str] = ..., rooms: _Optional[_Iterable[str]] = ..., events: _Optional[_Iterable[str]] = ..., configured: _Optional[bool] = ..., parked: _Optional[bool] = ..., parked_at: _Optional[int] = ..., parked_reason: _Optional[str] = ..., backlog_rows: _Optional[int] = ..., backlog_changes: _Optional[int] = ..., backlog_rooms: _Optional[int] = ..., oldest_at: _Optional[int] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class ListWebhooksResponse(_message.Message):
    __slots__ = ("endpoints",)
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[WebhookEndpoint]
    def __init__(self, endpoints: _Optional[_Iterable[_Union[WebhookEndpoint, _Mapping]]] = ...) -> None: ...

class ResumeWebhookRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ResumeWebhookResponse(_message.Message):
    __slots__ = ("was_parked", "endpoint")
    WAS_PARKED_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    was_parked: bool
    endpoint: WebhookEndpoint
    def __init__(self, was_parked: _Optional[bool] = ..., endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ...) -> None: ...

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Hello(_message.Message):
    __slots__ = ("token", "client_id", "user_json")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_JSON_FIELD_NUMBER: _ClassVar[int]
    token: str
    client_id: str
    user_json: str
    def __init__(self, token: _Optional[str] = ..., client_id: _Optional[str] = ..., user_json: _Optional[str] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Refresh(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class Subscribe(_message.Message):
    __slots__ = ("room", "since", "presence_json", "users", "epoch")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_JSON_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    room: str
    since: int
    presence_json: str
    users: bool
    epoch: str
    def __init__(self, room: _Optional[str] = ..., since: _Optional[int] = ..., presence_json: _Optional[str] = ..., users: _Optional[bool] = ..., epoch: _Optional[str] = ...) -> None: ...

class Unsubscribe(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class PushChange(_message.Message):
    __slots__ = ("client_seq", "collection", "key", "ts", "op_json")
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    OP_JSON_FIELD_NUMBER: _ClassVar[int]
    client_seq: int
    collection: str
    key: str
    ts: int
    op_json: str
    def __init__(self, client_seq: _Optional[int] = ..., collection: _Optional[str] = ..., key: _Optional[str] = ..., ts: _Optional[int] = ..., op_json: _Optional[str] = ...) -> None: ...

class Push(_message.Message):
    __slots__ = ("room", "changes")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    room: str
    changes: _containers.RepeatedCompositeFieldContainer[PushChange]
    def __init__(self, room: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[PushChange, _Mapping]]] = ...) -> None: ...

class PresenceState(_message.Message):
    __slots__ = ("room", "state_json")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    room: str
    state_json: str
    def __init__(self, room: _Optional[str] = ..., state_json: _Optional[str] = ...) -> None: ...

class BroadcastSend(_message.Message):
    __slots__ = ("room", "data_json", "channel")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    room: str
    data_json: str
    channel: str
    def __init__(self, room: _Optional[str] = ..., data_json: _Optional[str] = ..., channel: _Optional[str] = ...) -> None: ...

class PresenceList(_message.Message):
    __slots__ = ("room", "cursor", "limit", "counts_only")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    COUNTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    room: str
    cursor: str
    limit: int
    counts_only: bool
    def __init__(self, room: _Optional[str] = ..., cursor: _Optional[str] = ..., limit: _Optional[int] = ..., counts_only: _Optional[bool] = ...) -> None: ...

class ClientFrame(_message.Message):
    __slots__ = ("id", "hello", "ping", "refresh", "subscribe", "unsubscribe", "push", "presence", "broadcast", "presence_list")
    ID_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    PUSH_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    BROADCAST_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_LIST_FIELD_NUMBER: _ClassVar[int]
    id: int
    hello: Hello
    ping: Ping
    refresh: Refresh
    subscribe: Subscribe
    unsubscribe: Unsubscribe
    push: Push
    presence: PresenceState
    broadcast: BroadcastSend
    presence_list: PresenceList
    def __init__(self, id: _Optional[int] = ..., hello: _Optional[_Union[Hello, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., refresh: _Optional[_Union[Refresh, _Mapping]] = ..., subscribe: _Optional[_Union[Subscribe, _Mapping]] = ..., unsubscribe: _Optional[_Union[Unsubscribe, _Mapping]] = ..., push: _Optional[_Union[Push, _Mapping]] = ..., presence: _Optional[_Union[PresenceState, _Mapping]] = ..., broadcast: _Optional[_Union[BroadcastSend, _Mapping]] = ..., presence_list: _Optional[_Union[PresenceList, _Mapping]] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "protocol", "heartbeat_ms", "max_message_bytes", "features")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    version: str
    protocol: int
    heartbeat_ms: int
    max_message_bytes: int
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., protocol: _Optional[int] = ..., heartbeat_ms: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("session_id", "user_id", "server")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    server: ServerInfo
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., server: _Optional[_Union[ServerInfo, _Mapping]] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Refreshed(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Subscribed(_message.Message):
    __slots__ = ("room", "head", "epoch")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    room: str
    head: int
    epoch: str
    def __init__(self, room: _Optional[str] = ..., head: _Optional[int] = ..., epoch: _Optional[str] = ...) -> None: ...

class Unsubscribed(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("collection", "key", "value_json")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    collection: str
    key: str
    value_json: str
    def __init__(self, collection: _Optional[str] = ..., key: _Optional[str] = ..., value_json: _Optional[str] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("room", "seq", "last", "records", "epoch")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    room: str
    seq: int
    last: bool
    records: _containers.RepeatedCompositeFieldContainer[Record]
    epoch: str
    def __init__(self, room: _Optional[str] = ..., seq: _Optional[int] = ..., last: _Optional[bool] = ..., records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ..., epoch: _Optional[str] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("seq", "collection", "key", "client_id", "client_seq", "ts", "patch_json")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    PATCH_JSON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    collection: str
    key: str
    client_id: str
    client_seq: int
    ts: int
    patch_json: str
    def __init__(self, seq: _Optional[int] = ..., collection: _Optional[str] = ..., key: _Optional[str] = ..., client_id: _Optional[str] = ..., client_seq: _Optional[int] = ..., ts: _Optional[int] = ..., patch_json: _Optional[str] = ...) -> None: ...

class Changes(_message.Message):
    __slots__ = ("room", "changes")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    room: str
    changes: _containers.RepeatedCompositeFieldContainer[Change]
    def __init__(self, room: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[Change, _Mapping]]] = ...) -> None: ...

class Conflict(_message.Message):
    __slots__ = ("field", "winner_ts", "winner_client_id")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    WINNER_TS_FIELD_NUMBER: _ClassVar[int]
    WINNER_CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    field: str
    winner_ts: int
    winner_client_id: str
    def __init__(self, field: _Optional[str] = ..., winner_ts: _Optional[int] = ..., winner_client_id: _Optional[str] = ...) -> None: ...

class AckError(_message.Message):
    __slots__ = ("code", "message", "json_path")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    JSON_PATH_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    json_path: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., json_path: _Optional[str] = ...) -> None: ...

class AckResult(_message.Message):
    __slots__ = ("client_seq", "seq", "status", "ts", "conflicts", "error")
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    client_seq: int
    seq: int
    status: str
    ts: int
    conflicts: _containers.RepeatedCompositeFieldContainer[Conflict]
    error: AckError
    def __init__(self, client_seq: _Optional[int] = ..., seq: _Optional[int] = ..., status: _Optional[str] = ..., ts: _Optional[int] = ..., conflicts: _Optional[_Iterable[_Union[Conflict, _Mapping]]] = ..., error: _Optional[_Union[AckError, _Mapping]] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("room", "results")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    room: str
    results: _containers.RepeatedCompositeFieldContainer[AckResult]
    def __init__(self, room: _Optional[str] = ..., results: _Optional[_Iterable[_Union[AckResult, _Mapping]]] = ...) -> None: ...

class Peer(_message.Message):
    __slots__ = ("session_id", "user_id", "client_id", "user_json", "state_json")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_JSON_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    client_id: str
    user_json: str
    state_json: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., client_id: _Optional[str] = ..., user_json: _Optional[str] = ..., state_json: _Optional[str] = ...) -> None: ...

class PresenceEvent(_message.Message):
    __slots__ = ("room", "event", "peers", "peer", "reason", "count", "users", "next_cursor")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    room: str
    event: str
    peers: _containers.RepeatedCompositeFieldContainer[Peer]
    peer: Peer
    reason: str
    count: int
    users: int
    next_cursor: str
    def __init__(self, room: _Optional[str] = ..., event: _Optional[str] = ..., peers: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ..., peer: _Optional[_Union[Peer, _Mapping]] = ..., reason: _Optional[str] = ..., count: _Optional[int] = ..., users: _Optional[int] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class PresencePage(_message.Message):
    __slots__ = ("room", "peers", "count", "users", "next_cursor")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    room: str
    peers: _containers.RepeatedCompositeFieldContainer[Peer]
    count: int
    users: int
    next_cursor: str
    def __init__(self, room: _Optional[str] = ..., peers: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ..., count: _Optional[int] = ..., users: _Optional[int] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class BroadcastRecv(_message.Message):
    __slots__ = ("room", "data_json", "channel")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    room: str
    data_json: str
    channel: str
    def __init__(self, room: _Optional[str] = ..., data_json: _Optional[str] = ..., channel: _Optional[str] = ..., **kwargs) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "room", "retry_after_ms")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    room: str
    retry_after_ms: int
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., room: _Optional[str] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class ServerFrame(_message.Message):
    __slots__ = ("id", "welcome", "pong", "refreshed", "subscribed", "unsubscribed", "snapshot", "changes", "ack", "presence", "broadcast", "error", "presence_page")
    ID_FIELD_NUMBER: _ClassVar[int]
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    REFRESHED_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    BROADCAST_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_PAGE_FIELD_NUMBER: _ClassVar[int]
    id: int
    welcome: Welcome
    pong: Pong
    refreshed: Refreshed
    subscribed: Subscribed
    unsubscribed: Unsubscribed
    snapshot: Snapshot
    changes: Changes
    ack: Ack
    presence: PresenceEvent
    broadcast: BroadcastRecv
    error: Error
    presence_page: PresencePage
    def __init__(self, id: _Optional[int] = ..., welcome: _Optional[_Union[Welcome, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., refreshed: _Optional[_Union[Refreshed, _Mapping]] = ..., subscribed: _Optional[_Union[Subscribed, _Mapping]] = ..., unsubscribed: _Optional[_Union[Unsubscribed, _Mapping]] = ..., snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., changes: _Optional[_Union[Changes, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., presence: _Optional[_Union[PresenceEvent, _Mapping]] = ..., broadcast: _Optional[_Union[BroadcastRecv, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., presence_page: _Optional[_Union[PresencePage, _Mapping]] = ...) -> None: ...

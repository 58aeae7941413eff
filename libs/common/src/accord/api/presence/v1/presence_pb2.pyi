from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LeaveReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEAVE_REASON_UNSPECIFIED: _ClassVar[LeaveReason]
    LEAVE_REASON_UNSUBSCRIBE: _ClassVar[LeaveReason]
    LEAVE_REASON_DISCONNECT: _ClassVar[LeaveReason]
    LEAVE_REASON_TIMEOUT: _ClassVar[LeaveReason]

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_JOIN: _ClassVar[EventKind]
    EVENT_KIND_UPDATE: _ClassVar[EventKind]
    EVENT_KIND_LEAVE: _ClassVar[EventKind]
    EVENT_KIND_BROADCAST: _ClassVar[EventKind]
    EVENT_KIND_WATCHING: _ClassVar[EventKind]
    EVENT_KIND_USER_ONLINE: _ClassVar[EventKind]
    EVENT_KIND_USER_OFFLINE: _ClassVar[EventKind]
LEAVE_REASON_UNSPECIFIED: LeaveReason
LEAVE_REASON_UNSUBSCRIBE: LeaveReason
LEAVE_REASON_DISCONNECT: LeaveReason
LEAVE_REASON_TIMEOUT: LeaveReason
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_JOIN: EventKind
EVENT_KIND_UPDATE: EventKind
EVENT_KIND_LEAVE: EventKind
EVENT_KIND_BROADCAST: EventKind
EVENT_KIND_WATCHING: EventKind
EVENT_KIND_USER_ONLINE: EventKind
EVENT_KIND_USER_OFFLINE: EventKind

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

class JoinRequest(_message.Message):
    __slots__ = ("room", "peer", "edge_id")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    room: str
    peer: Peer
    edge_id: str
    def __init__(self, room: _Optional[str] = ..., peer: _Optional[_Union[Peer, _Mapping]] = ..., edge_id: _Optional[str] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JoinManyRequest(_message.Message):
    __slots__ = ("joins",)
    JOINS_FIELD_NUMBER: _ClassVar[int]
    joins: _containers.RepeatedCompositeFieldContainer[JoinRequest]
    def __init__(self, joins: _Optional[_Iterable[_Union[JoinRequest, _Mapping]]] = ...) -> None: ...

class JoinResult(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class JoinManyResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[JoinResult]
    def __init__(self, results: _Optional[_Iterable[_Union[JoinResult, _Mapping]]] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ("room", "session_id", "state_json")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    room: str
    session_id: str
    state_json: str
    def __init__(self, room: _Optional[str] = ..., session_id: _Optional[str] = ..., state_json: _Optional[str] = ...) -> None: ...

class UpdateResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateManyRequest(_message.Message):
    __slots__ = ("updates",)
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[UpdateRequest]
    def __init__(self, updates: _Optional[_Iterable[_Union[UpdateRequest, _Mapping]]] = ...) -> None: ...

class UpdateResult(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class UpdateManyResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[UpdateResult]
    def __init__(self, results: _Optional[_Iterable[_Union[UpdateResult, _Mapping]]] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("room", "session_id", "reason")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    room: str
    session_id: str
    reason: LeaveReason
    def __init__(self, room: _Optional[str] = ..., session_id: _Optional[str] = ..., reason: _Optional[_Union[LeaveReason, str]] = ...) -> None: ...

class LeaveResponse(_message.Message):
    __slots__ = ("rooms",)
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    rooms: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rooms: _Optional[_Iterable[str]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("edge_id", "session_ids")
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    edge_id: str
    session_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, edge_id: _Optional[str] = ..., session_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("unknown_session_ids",)
    UNKNOWN_SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    unknown_session_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, unknown_session_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("room", "limit", "cursor", "counts_only")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    COUNTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    room: str
    limit: int
    cursor: str
    counts_only: bool
    def __init__(self, room: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., counts_only: _Optional[bool] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("peers", "next_cursor", "count", "user_count")
    PEERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    USER_COUNT_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedCompositeFieldContainer[Peer]
    next_cursor: str
    count: int
    user_count: int
    def __init__(self, peers: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ..., next_cursor: _Optional[str] = ..., count: _Optional[int] = ..., user_count: _Optional[int] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("add", "remove", "ack")
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    add: _containers.RepeatedScalarFieldContainer[str]
    remove: _containers.RepeatedScalarFieldContainer[str]
    ack: bool
    def __init__(self, add: _Optional[_Iterable[str]] = ..., remove: _Optional[_Iterable[str]] = ..., ack: _Optional[bool] = ...) -> None: ...

class PresenceEvent(_message.Message):
    __slots__ = ("room", "kind", "peer", "reason", "from_session_id", "data_json", "channel")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FROM_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    room: str
    kind: EventKind
    peer: Peer
    reason: LeaveReason
    from_session_id: str
    data_json: str
    channel: str
    def __init__(self, room: _Optional[str] = ..., kind: _Optional[_Union[EventKind, str]] = ..., peer: _Optional[_Union[Peer, _Mapping]] = ..., reason: _Optional[_Union[LeaveReason, str]] = ..., from_session_id: _Optional[str] = ..., data_json: _Optional[str] = ..., channel: _Optional[str] = ...) -> None: ...

class PresenceEvents(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[PresenceEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[PresenceEvent, _Mapping]]] = ...) -> None: ...

class BroadcastRequest(_message.Message):
    __slots__ = ("room", "from_session_id", "data_json", "channel")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    FROM_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    room: str
    from_session_id: str
    data_json: str
    channel: str
    def __init__(self, room: _Optional[str] = ..., from_session_id: _Optional[str] = ..., data_json: _Optional[str] = ..., channel: _Optional[str] = ...) -> None: ...

class BroadcastResponse(_message.Message):
    __slots__ = ("deferred",)
    DEFERRED_FIELD_NUMBER: _ClassVar[int]
    deferred: bool
    def __init__(self, deferred: _Optional[bool] = ...) -> None: ...

"""Session-level requests as typed values: every field of a decoded frame checked once.

(The ops inside a push are checked by ``ops.parse_change``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accord.common import jsontext
from accord.edge.auth import CLIENT_ID_RE, NAME_RE
from accord.edge.codes import (
    INT64_MAX,
    MAX_BROADCAST_BYTES,
    MAX_CURSOR,
    MAX_LIST_LIMIT,
    MAX_STATE_BYTES,
)
from accord.edge.frames import is_int
from accord.edge.protocol import ProtocolError

CHANNEL_RE = CLIENT_ID_RE  # broadcast channels: 1-64 of [A-Za-z0-9_.:-]
EPOCH_RE = CLIENT_ID_RE  # room epochs: 1-64 of [A-Za-z0-9_.:-] (sync sends 16 hex digits)


def _json_size(value: Any) -> int:
    return len(jsontext.dumps(value).encode())


def room_of(message: dict[str, Any]) -> str:
    room = message.get("room")
    if not isinstance(room, str) or not NAME_RE.match(room):
        raise ProtocolError("BAD_REQUEST", "room must be 1-128 characters of [A-Za-z0-9_.:-]")
    return room


def _state(value: Any, what: str, room: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError("BAD_REQUEST", f"{what} must be an object", room=room)
    if _json_size(value) > MAX_STATE_BYTES:
        raise ProtocolError(
            "TOO_LARGE", f"{what} is larger than {MAX_STATE_BYTES} bytes", room=room
        )
    return value


@dataclass(frozen=True, slots=True)
class Hello:
    token: str | None
    client_id: str
    user: dict[str, Any]


def hello(message: dict[str, Any]) -> Hello:
    token = message.get("token")
    if token is not None and not isinstance(token, str):
        raise ProtocolError("BAD_REQUEST", "token must be a string")
    client_id = message.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID_RE.match(client_id):
        raise ProtocolError("BAD_REQUEST", "client_id must be 1-64 characters of [A-Za-z0-9_.:-]")
    user = message.get("user")
    if user is not None and not isinstance(user, dict):
        raise ProtocolError("BAD_REQUEST", "user must be an object")
    if user is not None and _json_size(user) > MAX_STATE_BYTES:
        raise ProtocolError("TOO_LARGE", f"user info is larger than {MAX_STATE_BYTES} bytes")
    return Hello(token, client_id, user or {})


def refresh_token(message: dict[str, Any]) -> str:
    token = message.get("token")
    if not isinstance(token, str):
        raise ProtocolError("BAD_REQUEST", "token must be a string")
    return token


@dataclass(frozen=True, slots=True)
class Subscribe:
    room: str
    since: int
    presence: dict[str, Any] | None
    users: bool
    epoch: str  # the epoch the client's `since` belongs to; "": not checked


def subscribe(message: dict[str, Any]) -> Subscribe:
    room = room_of(message)
    since = message.get("since")
    if since is None:
        since = 0
    if not is_int(since) or not 0 <= since <= INT64_MAX:
        raise ProtocolError("BAD_REQUEST", "since must be an integer from 0 to 2^63-1", room=room)
    users = message.get("users", False)
    if not isinstance(users, bool):
        raise ProtocolError("BAD_REQUEST", "users must be a boolean", room=room)
    presence = message.get("presence")
    if presence is not None:
        if not isinstance(presence, dict):
            raise ProtocolError("BAD_REQUEST", "presence must be an object", room=room)
        presence = _state(presence, "presence state", room)
    epoch = message.get("epoch")
    if epoch is None:
        epoch = ""
    if not isinstance(epoch, str) or (epoch and not EPOCH_RE.match(epoch)):
        raise ProtocolError(
            "BAD_REQUEST", "epoch must be a string of 0-64 characters of [A-Za-z0-9_.:-]", room=room
        )
    return Subscribe(room, since, presence, users, epoch)


def push_changes(message: dict[str, Any], room: str, max_batch: int) -> list[Any]:
    changes = message.get("changes")
    if not isinstance(changes, list) or not changes:
        raise ProtocolError("BAD_REQUEST", "changes must be a non-empty list", room=room)
    if len(changes) > max_batch:
        raise ProtocolError("TOO_LARGE", f"more than {max_batch} changes in one push", room=room)
    return changes


def presence_state(message: dict[str, Any], room: str) -> dict[str, Any]:
    state = message.get("state")
    if not isinstance(state, dict):
        raise ProtocolError("BAD_REQUEST", "state must be an object", room=room)
    return _state(state, "presence state", room)


@dataclass(frozen=True, slots=True)
class Broadcast:
    data: Any
    channel: str


def broadcast(message: dict[str, Any], room: str) -> Broadcast:
    if "data" not in message:
        raise ProtocolError("BAD_REQUEST", "broadcast needs data", room=room)
    data = message["data"]
    if _json_size(data) > MAX_BROADCAST_BYTES:
        raise ProtocolError(
            "TOO_LARGE", f"broadcast data is larger than {MAX_BROADCAST_BYTES} bytes", room=room
        )
    channel = message.get("channel", "")
    if not isinstance(channel, str) or (channel and not CHANNEL_RE.match(channel)):
        raise ProtocolError(
            "BAD_REQUEST", "channel must be 1-64 characters of [A-Za-z0-9_.:-]", room=room
        )
    return Broadcast(data, channel)


@dataclass(frozen=True, slots=True)
class PresenceList:
    cursor: str
    limit: int
    counts_only: bool


def presence_list(message: dict[str, Any], room: str, default_limit: int) -> PresenceList:
    cursor = message.get("cursor", "")
    limit = message.get("limit", default_limit)
    counts_only = message.get("counts_only", False)
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR:
        raise ProtocolError("BAD_REQUEST", "cursor must be a string", room=room)
    if not is_int(limit) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise ProtocolError(
            "BAD_REQUEST", f"limit must be an integer from 1 to {MAX_LIST_LIMIT}", room=room
        )
    if not isinstance(counts_only, bool):
        raise ProtocolError("BAD_REQUEST", "counts_only must be a boolean", room=room)
    return PresenceList(cursor, limit, counts_only)

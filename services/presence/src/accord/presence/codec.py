"""JSON text for peers and events as they sit in Redis and cross pub/sub.

A peer is ``{"session_id","user_id","client_id","user","state"}`` where
``user`` and ``state`` hold the JSON text as given (a string, not re-parsed),
so that a peer round-trips byte for byte. An event is
``{"room","kind","peer"?,"reason"?,"from"?,"data"?,"channel"?}``. The Lua scripts in
``store_redis`` build the same shapes.
"""

from __future__ import annotations

import json
from typing import Any

from accord.presence.model import Event, EventKind, LeaveReason, Peer


class CodecError(ValueError):
    """Text that is not a peer or an event."""


def peer_to_dict(peer: Peer) -> dict[str, str]:
    return {
        "session_id": peer.session_id,
        "user_id": peer.user_id,
        "client_id": peer.client_id,
        "user": peer.user_json,
        "state": peer.state_json,
    }


def peer_from_dict(value: Any) -> Peer:
    if not isinstance(value, dict):
        raise CodecError(f"peer is not an object: {value!r}")
    try:
        return Peer(
            session_id=str(value["session_id"]),
            user_id=str(value["user_id"]),
            client_id=str(value["client_id"]),
            user_json=str(value["user"]),
            state_json=str(value["state"]),
        )
    except KeyError as missing:
        raise CodecError(f"peer lacks {missing}") from None


def encode_peer(peer: Peer) -> str:
    return json.dumps(peer_to_dict(peer), separators=(",", ":"))


def decode_peer(text: str | bytes) -> Peer:
    try:
        return peer_from_dict(json.loads(text))
    except json.JSONDecodeError as error:
        raise CodecError(f"peer is not JSON: {error}") from None


def encode_event(event: Event) -> str:
    entry: dict[str, Any] = {"room": event.room, "kind": event.kind.value}
    if event.peer is not None:
        entry["peer"] = peer_to_dict(event.peer)
    if event.reason is not None:
        entry["reason"] = event.reason.value
    if event.kind is EventKind.BROADCAST:
        entry["from"] = event.from_session_id
        entry["data"] = event.data_json
        if event.channel:
            entry["channel"] = event.channel
    return json.dumps(entry, separators=(",", ":"))


def decode_event(text: str | bytes) -> Event:
    try:
        entry = json.loads(text)
        if not isinstance(entry, dict):
            raise CodecError(f"event is not an object: {entry!r}")
        peer = entry.get("peer")
        reason = entry.get("reason")
        return Event(
            room=str(entry["room"]),
            kind=EventKind(entry["kind"]),
            peer=None if peer is None else peer_from_dict(peer),
            reason=None if reason is None else LeaveReason(reason),
            from_session_id=str(entry.get("from", "")),
            data_json=str(entry.get("data", "")),
            channel=str(entry.get("channel", "")),
        )
    except (json.JSONDecodeError, KeyError, ValueError) as error:
        raise CodecError(f"not an event: {error}") from None

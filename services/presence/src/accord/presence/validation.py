"""Checks on what callers send, before anything reaches the store."""

from __future__ import annotations

import json

from accord.common.rules import CHANNEL_RE, MAX_CHANNEL, MAX_ROOM, ROOM_RE
from accord.presence.model import Peer

MAX_ID = 128
MAX_BROADCAST_BYTES = 64 * 1024


class Invalid(Exception):
    """Malformed input: a bad field or wrong shape."""


class TooLarge(Exception):
    """Well-formed input over a size limit."""


def room(value: str) -> str:
    if not ROOM_RE.match(value):
        raise Invalid(
            f"room {value[: MAX_ROOM + 12]!r} must be 1-{MAX_ROOM} chars of A-Z a-z 0-9 _ . : -"
        )
    return value


def channel(value: str) -> str:
    # Empty: no channel.
    if value and not CHANNEL_RE.match(value):
        raise Invalid(
            f"channel {value[: MAX_CHANNEL + 16]!r} must be 0-{MAX_CHANNEL} chars"
            " of A-Z a-z 0-9 _ . : -"
        )
    return value


def identifier(value: str, what: str, *, required: bool) -> str:
    if required and not value:
        raise Invalid(f"{what} is required")
    if len(value) > MAX_ID:
        raise Invalid(f"{what} is longer than {MAX_ID} chars")
    return value


def session_id(value: str) -> str:
    return identifier(value, "session_id", required=True)


def json_value(text: str, what: str, max_bytes: int) -> str:
    """JSON text of any value within ``max_bytes``; empty text stands for ``{}``."""
    return _json(text, what, max_bytes, object_only=False)


def json_object(text: str, what: str, max_bytes: int) -> str:
    """JSON text of an object within ``max_bytes``; empty text stands for ``{}``."""
    return _json(text, what, max_bytes, object_only=True)


def _json(text: str, what: str, max_bytes: int, *, object_only: bool) -> str:
    if text == "":
        return "{}"
    size = len(text.encode())
    if size > max_bytes:
        raise TooLarge(f"{what} is {size} bytes, over the limit of {max_bytes}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise Invalid(f"{what} is not JSON: {error}") from None
    if object_only and not isinstance(value, dict):
        raise Invalid(f"{what} must be a JSON object")
    return text


def peer(value: Peer, max_state_bytes: int) -> Peer:
    return Peer(
        session_id=session_id(value.session_id),
        user_id=identifier(value.user_id, "user_id", required=False),
        client_id=identifier(value.client_id, "client_id", required=False),
        user_json=json_object(value.user_json, "user_json", max_state_bytes),
        state_json=json_object(value.state_json, "state_json", max_state_bytes),
    )

"""Incoming frames, JSON text or protobuf, decoded once into the same JSON-shaped dict.

So the session logic is written once for both encodings. Every decoding error
is a ``ProtocolError`` carrying the frame's ``id`` when the frame had one.
"""

from __future__ import annotations

import json
import re
from typing import Any

from accord.api.edge.v1 import frames_pb2 as pb
from accord.common import jsontext
from accord.common.rules import too_deep
from accord.edge.codes import INT64_MAX, INT64_MIN
from accord.edge.protocol import ProtocolError
from google.protobuf.message import DecodeError


def is_int(value: Any) -> bool:
    """An integer, not a bool (``True`` is an ``int`` to Python, not to the protocol)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_id(message: dict[str, Any]) -> None:
    """A present ``id`` must be an int64 (what a protobuf frame can carry back)."""
    if "id" not in message:
        return
    value = message["id"]
    if not is_int(value):
        raise ProtocolError("BAD_REQUEST", "id must be an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ProtocolError("BAD_REQUEST", "id must be an integer from -2^63 to 2^63-1")


def request_id_of(message: dict[str, Any]) -> int | None:
    """The frame's integer ``id`` (None when absent or not an integer)."""
    value = message.get("id")
    return value if is_int(value) else None


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]|[^\s\[\]{}:,"]+')
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)").fullmatch
SALVAGE_SCAN = 64 * 1024
"""How far into an over-deep frame its top-level ``id`` is looked for (bounded work)."""


def _top_level_id(text: str) -> int | None:
    """A top-level integer ``"id"`` member, found without parsing (for frames nested
    beyond what the parser can recurse into); looks at the first ``SALVAGE_SCAN`` characters."""
    depth = 0
    key: str | None = None
    after_colon = False
    for match in _TOKEN.finditer(text, 0, SALVAGE_SCAN):
        token = match.group()
        if token in ("{", "["):
            if depth == 0 and token == "[":
                return None
            depth += 1
            after_colon = False
        elif token in ("}", "]"):
            depth -= 1
        elif depth != 1:
            continue
        elif token == ":":
            after_colon = True
        elif token == ",":
            key, after_colon = None, False
        elif after_colon:
            if key == '"id"':
                return int(token) if _INTEGER(token) else None
            after_colon = False
        else:
            key = token
    return None


def _salvage_id(data: bytes | str) -> int | None:
    """The integer ``id`` of a frame that is JSON but not acceptable JSON (a lone
    surrogate, a number too large, nesting beyond the parser's reach)."""
    try:
        message = json.loads(data)
    except RecursionError:
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        return _top_level_id(text)
    except ValueError:
        return None
    return request_id_of(message) if isinstance(message, dict) else None


def parse_json(data: bytes | str, max_depth: int) -> dict[str, Any]:
    try:
        message = jsontext.loads(data)
    except (ValueError, RecursionError):
        raise ProtocolError(
            "BAD_REQUEST", "frame is not valid JSON", request_id=_salvage_id(data)
        ) from None
    if not isinstance(message, dict):
        raise ProtocolError("BAD_REQUEST", "frame must be a JSON object")
    if too_deep(message, max_depth):
        raise ProtocolError(
            "BAD_REQUEST",
            f"JSON nests deeper than {max_depth} levels",
            request_id=request_id_of(message),
        )
    return message


def _json_field(text: str, what: str) -> Any:
    if text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ProtocolError("BAD_REQUEST", f"{what} is not valid JSON") from None


def parse_binary(data: bytes, max_depth: int) -> dict[str, Any]:
    """A protobuf ``ClientFrame`` as the equivalent JSON message."""
    frame = pb.ClientFrame()
    try:
        frame.ParseFromString(data)
    except DecodeError:
        raise ProtocolError("BAD_REQUEST", "binary frame is not a valid ClientFrame") from None
    try:
        return _binary_message(frame, max_depth)
    except ProtocolError as error:
        if frame.HasField("id"):
            error.request_id = frame.id
        raise


def _binary_message(frame: pb.ClientFrame, max_depth: int) -> dict[str, Any]:
    kind = frame.WhichOneof("msg")
    message: dict[str, Any] = {"type": kind or ""}
    if frame.HasField("id"):
        message["id"] = frame.id
    if kind == "hello":
        message["token"] = frame.hello.token or None
        message["client_id"] = frame.hello.client_id
        if frame.hello.user_json:
            message["user"] = _json_field(frame.hello.user_json, "user_json")
    elif kind == "refresh":
        message["token"] = frame.refresh.token
    elif kind == "subscribe":
        message["room"] = frame.subscribe.room
        message["since"] = frame.subscribe.since
        if frame.subscribe.HasField("presence_json"):
            message["presence"] = _json_field(frame.subscribe.presence_json, "presence_json") or {}
        if frame.subscribe.users:
            message["users"] = True
        if frame.subscribe.epoch:
            message["epoch"] = frame.subscribe.epoch
    elif kind == "unsubscribe":
        message["room"] = frame.unsubscribe.room
    elif kind == "push":
        changes = []
        for change in frame.push.changes:
            item: dict[str, Any] = {
                "client_seq": change.client_seq,
                "collection": change.collection,
                "key": change.key,
                "op": _json_field(change.op_json, "op_json"),
            }
            if change.ts:
                item["ts"] = change.ts
            changes.append(item)
        message["room"] = frame.push.room
        message["changes"] = changes
    elif kind == "presence":
        message["room"] = frame.presence.room
        message["state"] = _json_field(frame.presence.state_json, "state_json") or {}
    elif kind == "broadcast":
        message["room"] = frame.broadcast.room
        message["data"] = _json_field(frame.broadcast.data_json, "data_json")
        if frame.broadcast.channel:
            message["channel"] = frame.broadcast.channel
    elif kind == "presence_list":
        message["room"] = frame.presence_list.room
        if frame.presence_list.cursor:
            message["cursor"] = frame.presence_list.cursor
        if frame.presence_list.limit:
            message["limit"] = frame.presence_list.limit
        message["counts_only"] = frame.presence_list.counts_only
    elif kind is None:
        raise ProtocolError("UNSUPPORTED", "binary frame carries no known message")
    if too_deep(message, max_depth):
        raise ProtocolError("BAD_REQUEST", f"JSON nests deeper than {max_depth} levels")
    return message

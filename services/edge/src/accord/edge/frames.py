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
from accord.common.rules import text_too_deep, too_deep
from accord.edge.codec import BadJson, from_client_frame
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
    if text_too_deep(data, message, max_depth):
        raise ProtocolError(
            "BAD_REQUEST",
            f"JSON nests deeper than {max_depth} levels",
            request_id=request_id_of(message),
        )
    return message


def parse_binary(data: bytes, max_depth: int) -> dict[str, Any]:
    """A protobuf ``ClientFrame`` as the equivalent JSON message."""
    frame = pb.ClientFrame()
    try:
        frame.ParseFromString(data)
    except DecodeError:
        raise ProtocolError("BAD_REQUEST", "binary frame is not a valid ClientFrame") from None
    request_id = frame.id if frame.HasField("id") else None
    try:
        message = from_client_frame(frame)
    except BadJson as error:
        raise ProtocolError(
            "BAD_REQUEST", f"{error} is not valid JSON", request_id=request_id
        ) from None
    if not message["type"]:
        raise ProtocolError(
            "UNSUPPORTED", "binary frame carries no known message", request_id=request_id
        )
    if too_deep(message, max_depth):
        raise ProtocolError(
            "BAD_REQUEST", f"JSON nests deeper than {max_depth} levels", request_id=request_id
        )
    return message

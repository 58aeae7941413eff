"""The server API's inputs: query parameters, bounded JSON bodies, records cursors."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from accord.common import jsontext
from accord.edge.api.errors import ApiError
from accord.edge.frames import parse_json
from accord.edge.protocol import ProtocolError
from aiohttp import web

MAX_NAME = 256
CURSOR_VERSION = 1
READ_CHUNK = 64 * 1024


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError("BAD_REQUEST", f"{name} must be an integer from {low} to {high}")
    return int(raw)


def name_param(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_NAME or "\x00" in value:
        raise ApiError("BAD_REQUEST", f"{name} must be 1-{MAX_NAME} characters")
    return value


async def json_body(request: web.Request, max_bytes: int, max_depth: int) -> dict[str, Any]:
    """The request's JSON object, read up to ``max_bytes`` (413 beyond)."""
    too_large = ApiError("TOO_LARGE", f"the body is larger than {max_bytes} bytes")
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    data = bytearray()
    while chunk := await request.content.read(READ_CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise too_large
    try:
        return parse_json(bytes(data), max_depth)
    except ProtocolError as error:
        raise ApiError("BAD_REQUEST", error.message.replace("frame", "body")) from None


def encode_cursor(seq: int, collection: str | None, last: tuple[str, str]) -> str:
    raw = jsontext.dumps([CURSOR_VERSION, seq, collection, *last]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(text: str, collection: str | None) -> tuple[int, tuple[str, str]]:
    """(seq, last (collection, key)) of a cursor given for the same ``collection``."""
    bad = ApiError("BAD_REQUEST", "after must be the next cursor of an earlier page")
    try:
        raw = jsontext.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        raise bad from None
    if (
        not isinstance(raw, list)
        or len(raw) != 5
        or raw[0] != CURSOR_VERSION
        or not isinstance(raw[1], int)
        or isinstance(raw[1], bool)
        or not 1 <= raw[1] < 2**63
        or not all(isinstance(part, str) for part in raw[3:])
    ):
        raise bad
    if raw[2] != collection:
        raise ApiError("BAD_REQUEST", "after belongs to a listing of another collection")
    return raw[1], (raw[3], raw[4])

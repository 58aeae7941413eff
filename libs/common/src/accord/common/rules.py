"""The client protocol's rules and limits, written once for every service.

Names (rooms, client ids, channels) and their lengths, the lengths of the
other strings a change carries, integer ranges, the JSON nesting walk, the
batch and id limits and the names of the settings that configure the
configurable ones. ``docs/protocol.md`` and ``docs/merge.md`` state them for
clients; the edge, sync and presence import them from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from accord.common import config
from accord.common.config import Env

NAME_CHARS = "[A-Za-z0-9_.:-]"
"""The characters of a room name, a client id and a broadcast channel."""
MAX_ROOM = 128
MAX_CLIENT_ID = 64
MAX_CHANNEL = 64
MAX_TEXT = 256
"""Collection, key, field and user id strings, list element ids: 1 to this many characters."""
MAX_IDS = 10_000
"""Element ids one ``remove_items`` may name."""

# Anchored with \A and \Z (not ^ and $, which also match before a final newline), so that
# ``match`` and ``fullmatch`` agree.
ROOM_RE = re.compile(rf"\A{NAME_CHARS}{{1,{MAX_ROOM}}}\Z")
CLIENT_ID_RE = re.compile(rf"\A{NAME_CHARS}{{1,{MAX_CLIENT_ID}}}\Z")
CHANNEL_RE = re.compile(rf"\A{NAME_CHARS}{{1,{MAX_CHANNEL}}}\Z")

MIN_INT64 = -(2**63)
MAX_INT64 = 2**63 - 1
MAX_UINT64 = 2**64 - 1
MAX_SAFE_INT = 2**53 - 1
"""Set elements are integers JavaScript clients can compare exactly: |n| up to this."""

RETRY_AFTER_KEY = "accord-retry-after-ms"
"""gRPC trailing metadata: how long a rate-limited caller should wait, in milliseconds."""

MAX_BATCH_SETTING = "MAX_BATCH_CHANGES"
"""Changes one push may carry; read by the edge and sync alike."""
DEFAULT_MAX_BATCH = 1000
MAX_BATCH_CEILING = 100_000
MAX_JSON_DEPTH_SETTING = "MAX_JSON_DEPTH"
DEFAULT_MAX_JSON_DEPTH = 32


def is_room(value: object) -> bool:
    return isinstance(value, str) and ROOM_RE.match(value) is not None


def is_client_id(value: object) -> bool:
    return isinstance(value, str) and CLIENT_ID_RE.match(value) is not None


def is_int(value: object) -> bool:
    """An integer that is not a boolean (JSON ``true`` is no number)."""
    return isinstance(value, int) and not isinstance(value, bool)


def in_range(value: object, low: int, high: int) -> bool:
    """``value`` is an integer (not a boolean, not a float) within [low, high]."""
    return is_int(value) and low <= value <= high  # type: ignore[operator]


_CONTAINERS = (dict, list)  # a tuple: ``dict | list`` would build a union per check


def too_deep(value: Any, max_depth: int) -> bool:
    """True when containers nest deeper than ``max_depth`` (``{}`` is 1 deep, a scalar 0);
    walked without recursion, so any nesting the parser accepted is safe to check."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))
    return False


def text_too_deep(text: str | bytes, value: Any, max_depth: int) -> bool:
    """``too_deep`` for a value parsed from ``text``. Each level of nesting opens with a
    bracket, so text with no more of them than ``max_depth`` needs no walk (most frames
    and ops: counting is a pass in C)."""
    if isinstance(text, str):
        opens = text.count("{") + text.count("[")
    else:
        opens = text.count(b"{") + text.count(b"[")
    return opens > max_depth and too_deep(value, max_depth)


def max_batch_changes(env: Env) -> int:
    """The ``MAX_BATCH_CHANGES`` setting (default 1000), as the edge and sync both read it."""
    return config.get_int(
        env, MAX_BATCH_SETTING, DEFAULT_MAX_BATCH, minimum=1, maximum=MAX_BATCH_CEILING
    )

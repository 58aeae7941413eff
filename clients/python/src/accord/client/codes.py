"""The close codes, name rules and limits the SDK acts on (protocol.md), in one place."""

from __future__ import annotations

import re

__all__ = [
    "CLIENT_ID",
    "KICKED",
    "MAX_NAME",
    "MAX_PUSH",
    "ROOM",
    "THROTTLED",
    "TOO_MANY_CONNECTS",
    "UNAUTHORIZED",
]

CLIENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
ROOM = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MAX_NAME = 256
"""Longest collection or key name."""
MAX_PUSH = 1000
"""Most changes in one ``push``."""

UNAUTHORIZED = 4001
KICKED = 4003
THROTTLED = (1013, 4008)
TOO_MANY_CONNECTS = 429
"""The HTTP status of an upgrade refused for too many connections (treated as throttled)."""

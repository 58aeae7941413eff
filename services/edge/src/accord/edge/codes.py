"""The client protocol's close codes, constants and limits, in one place.

Nothing imports a session or the app to read one of these.
"""

from __future__ import annotations

from accord.common.version import __version__

PROTOCOL_VERSION = 1
VERSION = __version__
"""The server version ``welcome`` announces (the packages' one version)."""
FEATURES = (
    "set",
    "delete",
    "incr",
    "add",
    "remove",
    "insert",
    "remove_items",
    "presence",
    "broadcast",
    "binary",
)

# Close codes (docs/protocol.md).
CLOSE_HEARTBEAT = 1001  # no heartbeat answered: presence leave reason `timeout`
CLOSE_TOO_BIG = 1009
CLOSE_RESTART = 1012
CLOSE_FULL = 1013
CLOSE_UNAUTHENTICATED = 4001
CLOSE_ADMIN = 4003
CLOSE_POLICY = 4008
CLOSE_SLOW_CONSUMER = 4009

# Limits of session-level frames.
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1  # ids are int64; seqs (`since`) 0..INT64_MAX
MAX_STATE_BYTES = 4096  # presence state and hello `user`, as UTF-8 JSON
MAX_BROADCAST_BYTES = 64 * 1024
MAX_CURSOR = 256  # characters of a presence_list cursor
MAX_LIST_LIMIT = 1000  # peers in one presence_list page
ABUSE_LIMIT = 20  # rate-limit violations in a row before the session is closed (4008)

# Outbound queue and closing.
FAST_WRITE_LIMIT = 64 * 1024  # transport buffer below which messages skip the queue
COALESCE_AFTER = 64  # queued messages before superseded presence/broadcast are coalesced
CLOSE_TIMEOUT = 5.0  # seconds a close handshake may take before the transport is dropped
FLUSH_TIMEOUT = 2.0  # seconds a closing session may spend sending what is queued

"""Domain errors; the servicer maps each to a gRPC status and a client error code."""

from __future__ import annotations


class SyncError(Exception):
    """Base of the errors a caller can act on."""


class BadRequest(SyncError):
    """The request is malformed; nothing was stored."""


class Unsupported(SyncError):
    """The request uses an op this server does not know; nothing was stored."""


class TooLarge(SyncError):
    """The request or a record it produces exceeds a limit; nothing was stored."""


class Unavailable(SyncError):
    """Storage (or the bus) cannot be reached; nothing was stored."""


class OutOfRange(SyncError):
    """The log no longer holds the requested range."""

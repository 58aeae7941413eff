"""Typed exceptions: one class per protocol error code, under ``AccordError``.

``ClientError`` covers what goes wrong on the client's side of the wire
(connection lost, client closed, a consumer too slow); it is not a protocol code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from accord.client.changes import PendingChange

__all__ = [
    "AccordError",
    "BadRequest",
    "ClientClosed",
    "ClientError",
    "ConnectionLost",
    "Disconnected",
    "Forbidden",
    "Internal",
    "NotSubscribed",
    "OfflineStoreError",
    "RateLimited",
    "RejectedChange",
    "SequenceGap",
    "SlowConsumer",
    "TokenExpired",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "Unsupported",
    "error_from_message",
]


class AccordError(Exception):
    """An ``error`` message from the server; ``code`` is its protocol code."""

    code: ClassVar[str] = ""
    retryable: ClassVar[bool] = False

    def __init__(
        self, message: str = "", *, room: str | None = None, request_id: int | None = None
    ) -> None:
        super().__init__(message or self.code)
        self.message = message
        self.room = room
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, room={self.room!r})"


class BadRequest(AccordError):
    code = "BAD_REQUEST"


class Unauthenticated(AccordError):
    code = "UNAUTHENTICATED"


class TokenExpired(Unauthenticated):
    """The token expired; a subclass of ``Unauthenticated`` since both need a new token."""

    code = "TOKEN_EXPIRED"


class Forbidden(AccordError):
    code = "FORBIDDEN"


class NotSubscribed(AccordError):
    code = "NOT_SUBSCRIBED"


class RateLimited(AccordError):
    code = "RATE_LIMITED"
    retryable = True

    def __init__(
        self,
        message: str = "",
        *,
        room: str | None = None,
        request_id: int | None = None,
        retry_after_ms: int = 0,
    ) -> None:
        super().__init__(message, room=room, request_id=request_id)
        self.retry_after_ms = retry_after_ms


class TooLarge(AccordError):
    code = "TOO_LARGE"


class Unsupported(AccordError):
    code = "UNSUPPORTED"


class Unavailable(AccordError):
    code = "UNAVAILABLE"
    retryable = True


class Internal(AccordError):
    code = "INTERNAL"
    retryable = True


ERRORS: dict[str, type[AccordError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthenticated,
        TokenExpired,
        Forbidden,
        NotSubscribed,
        RateLimited,
        TooLarge,
        Unsupported,
        Unavailable,
        Internal,
    )
}


def error_from_message(message: Mapping[str, Any]) -> AccordError:
    """The exception for a server ``error`` message; an unknown code becomes ``Internal``."""
    code = str(message.get("code", ""))
    text = str(message.get("message", ""))
    room = message.get("room")
    room = room if isinstance(room, str) else None
    raw_id = message.get("id")
    request_id = raw_id if isinstance(raw_id, int) else None
    if code == RateLimited.code:
        retry = message.get("retry_after_ms", 0)
        return RateLimited(
            text,
            room=room,
            request_id=request_id,
            retry_after_ms=retry if isinstance(retry, int) else 0,
        )
    cls = ERRORS.get(code)
    if cls is None:
        return Internal(f"{code}: {text}" if code else text, room=room, request_id=request_id)
    return cls(text, room=room, request_id=request_id)


class ClientError(Exception):
    """A failure on the client's side, not a protocol error code."""


class ConnectionLost(ClientError):
    """The WebSocket closed before the reply came; ``close_code`` when the server sent one."""

    def __init__(self, close_code: int | None = None) -> None:
        super().__init__(f"connection lost (close code {close_code})")
        self.close_code = close_code


class Disconnected(ClientError):
    """An operator disconnected this client (close 4003): it does not reconnect by itself."""


class ClientClosed(ClientError):
    """The client was closed."""


class OfflineStoreError(ClientError, ValueError):
    """``offline_path`` cannot hold the offline store; ``path`` is the path as expanded."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"offline_path {str(path)!r}: {reason}")
        self.path = path
        self.reason = reason


class SequenceGap(ClientError):
    """A room's changes skipped a ``seq``: the subscription is restarted with ``since``."""


class SlowConsumer(ClientError):
    """A change iterator's queue overflowed: its reader fell too far behind."""


class RejectedChange(ClientError):
    """The server refused a local change for good; it was dropped from the queue.

    ``cause`` is the server's error (``Forbidden``, ``BadRequest``, ``TooLarge``, …).
    """

    def __init__(self, room: str, change: PendingChange, cause: AccordError) -> None:
        super().__init__(f"change {change.client_seq} to {room} refused: {cause!r}")
        self.room = room
        self.change = change
        self.cause = cause

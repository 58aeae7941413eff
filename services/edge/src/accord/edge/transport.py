"""What a session needs of the connection that carries it.

The session is transport-agnostic: the WebSocket (``ws``) is one transport, an
HTTP fallback (SSE down, POST up) can be another. A transport hands the
session ``Incoming`` messages and takes ``Out`` messages in either encoding.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from accord.edge.outbound import Writer


class Kind(enum.Enum):
    TEXT = "text"  # a JSON frame
    BINARY = "binary"  # a protobuf frame
    PING = "ping"  # a transport-level ping: answer with ``pong``
    PONG = "pong"  # an answer to the heartbeat
    TOO_BIG = "too_big"  # a frame over the transport's own size limit: the session ends (1009)
    CLOSED = "closed"  # the peer left


@dataclass(frozen=True, slots=True)
class Incoming:
    kind: Kind
    data: bytes = b""


class Transport(Writer, Protocol):
    @property
    def remote(self) -> str | None: ...

    @property
    def closed(self) -> bool: ...

    async def receive(self, timeout: float | None = None) -> Incoming:
        """The next message; raises ``TimeoutError`` after ``timeout`` seconds."""
        ...

    async def pong(self, data: bytes) -> None: ...

    async def ping(self) -> None:
        """A transport-level heartbeat (the peer answers with a pong)."""
        ...

    async def close(self, code: int, reason: str) -> None: ...

    @property
    def info(self) -> dict[str, Any] | None:
        """What the client needs to know of this transport, sent as ``welcome.transport``
        (the HTTP fallback's per-session secret); None for the WebSocket."""
        ...

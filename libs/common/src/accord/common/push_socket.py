"""The same-host push socket: ``PushManyRequest``s to sync over a Unix socket.

Where an edge and a sync replica run on one host, ``SYNC_PUSH_SOCKET`` names a
Unix socket sync listens on beside its gRPC port, and the edge sends its pushes
there instead of on its gRPC ``PushStream``. The messages are the same
(``accord.sync.v1.PushManyRequest`` in, ``PushManyResponse`` out, answered in
order, one at a time per connection); only the transport differs. A gRPC message
crosses three threads in each process (gRPC's event engine, the aio poller, the
event loop) and HTTP/2 framing; a frame on this socket is one read and one write
on the event loop: about a third less CPU per single-push commit group in sync
and half the edge's share (docs/benchmarks.md).

Framing: each message is its length as 4 bytes, big-endian, then that many bytes
of the serialized protobuf message; at most ``MAX_FRAME`` bytes (gRPC's message
limit). Whoever can open the socket file can push as any user, as a caller
holding a ``write`` token can over gRPC: the file is created with mode 0660, and
its directory should admit only the edge's and sync's users.
"""

from __future__ import annotations

import asyncio

from accord.common.config import ConfigError
from accord.common.grpcutil import MAX_GRPC_MESSAGE

HEADER = 4
MAX_FRAME = MAX_GRPC_MESSAGE
MAX_PATH_BYTES = 107
"""A Unix socket's path is at most 107 bytes on Linux (``sun_path`` holds 108, NUL included)."""


class FrameError(Exception):
    """A frame that cannot be read: too large, or the connection ended inside it."""


def frame(data: bytes) -> bytes:
    """``data`` with its length in front."""
    return len(data).to_bytes(HEADER, "big") + data


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes | None:
    """The next frame's bytes; None when the connection ended between frames."""
    try:
        head = await reader.readexactly(HEADER)
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise FrameError("the connection ended inside a frame's length") from None
    size = int.from_bytes(head, "big")
    if size > limit:
        raise FrameError(f"a frame of {size} bytes is over the limit of {limit}")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as error:
        raise FrameError(
            f"the connection ended {len(error.partial)} bytes into a frame of {size}"
        ) from None


def socket_path(value: str | None, name: str = "SYNC_PUSH_SOCKET") -> str | None:
    """A setting's socket path, checked; None when unset (or empty)."""
    if value is None or not value.strip():
        return None
    path = value.strip()
    if not path.startswith("/"):
        raise ConfigError(f"{name}={value!r} must be an absolute path")
    if path.endswith("/"):
        raise ConfigError(f"{name}={value!r} names a directory, not a socket file")
    if "\x00" in path:
        raise ConfigError(f"{name}={value!r} holds a NUL character")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise ConfigError(
            f"{name}={value!r} is {len(path.encode())} bytes long; a Unix socket's path is at "
            f"most {MAX_PATH_BYTES}"
        )
    return path

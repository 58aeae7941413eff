"""The edge's end of the same-host push socket (``SYNC_PUSH_SOCKET``; the framing and
why: ``accord.common.push_socket``).

``SocketPushes`` has ``PushStream``'s one method, ``exchange``, and takes its place
in ``SyncClient``: one request at a time on one connection, answered in order. While
the socket cannot be reached (sync not started yet, restarting, or on another host)
each exchange goes to the gRPC stream instead, and the socket is tried again after
``RETRY_SECONDS``; exchanges never overlap, so a session's pushes keep their order
across the switch. A connection sync ended between two exchanges (it stops so) is
replaced before the next one is sent. A connection that fails during an exchange is
dropped and the exchange fails ``UNAVAILABLE``, as a failed gRPC stream does: what it
carried was committed or not, and clients retry with the same ``client_seq``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from accord.api.sync.v1 import sync_pb2 as spb
from accord.common.push_socket import FrameError, frame, read_frame
from accord.edge import metrics
from accord.edge.protocol import ProtocolError
from google.protobuf.message import DecodeError

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class Exchange(Protocol):
    """What ``SocketPushes`` falls back to (``backends.PushStream``)."""

    async def exchange(self, request: spb.PushManyRequest) -> spb.PushManyResponse: ...


class SocketPushes:
    def __init__(self, path: str, fallback: Exchange, timeout: float) -> None:
        self._path = path
        self._fallback = fallback
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._retry_at = 0.0
        self._reachable: bool | None = None
        """Whether the last attempt connected (None: none yet); its change is logged."""

    async def exchange(self, request: spb.PushManyRequest) -> spb.PushManyResponse:
        """The response to ``request``; raises ``ProtocolError`` (UNAVAILABLE) when the
        socket fails during the exchange, or what the gRPC stream raises."""
        async with self._lock:
            if self._reader is not None and self._reader.at_eof():
                self._drop()  # sync ended it between exchanges (it is stopping): not this one
            if self._writer is None and time.monotonic() >= self._retry_at:
                await self._connect()
            reader, writer = self._reader, self._writer
            if reader is None or writer is None:
                metrics.PUSH_SOCKET_FALLBACKS.inc()
                return await self._fallback.exchange(request)
            try:
                async with asyncio.timeout(self._timeout):
                    writer.write(frame(request.SerializeToString()))
                    data = await read_frame(reader)
                if data is None:
                    raise FrameError("sync closed the connection")
                return spb.PushManyResponse.FromString(data)
            except (OSError, TimeoutError, FrameError, DecodeError) as error:
                self._drop()
                log.warning("push socket %s failed: %s", self._path, error or type(error).__name__)
                raise ProtocolError(
                    "UNAVAILABLE", "the sync service is unavailable, try again"
                ) from error
            except BaseException:  # cancelled: the answer may still come, and is not read
                self._drop()
                raise

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                self._reader, self._writer = await asyncio.open_unix_connection(self._path)
        except (OSError, TimeoutError) as error:
            self._retry_at = time.monotonic() + RETRY_SECONDS
            if self._reachable is not False:
                log.warning(
                    "push socket %s cannot be reached (%s); pushing over gRPC meanwhile",
                    self._path,
                    error or type(error).__name__,
                )
            self._reachable = False
            return
        if self._reachable is False:
            log.info("push socket %s reached again", self._path)
        self._reachable = True

    def _drop(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()

    def close(self) -> None:
        """Close the connection (the edge is stopping)."""
        self._drop()

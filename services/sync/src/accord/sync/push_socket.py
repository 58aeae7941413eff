"""Sync's end of the same-host push socket (``SYNC_PUSH_SOCKET``; the framing and
why: ``accord.common.push_socket``).

Each connection reads a ``PushManyRequest``, answers it with the servicer's
``push_many`` (the gRPC ``PushStream``'s path: the same committer, dedupe, inline
batches), writes the ``PushManyResponse`` and reads the next (a request of too many
pushes is answered with every push refused, as ``push_many`` does). A frame that
cannot be read (too large, cut short) or parsed ends its connection with a warning
naming why: the edge reports its pushes ``UNAVAILABLE`` and its clients retry,
deduplicated by their ``client_seq``.

Stopping: the socket stops accepting, idle connections end at once, and one whose
request is being answered ends once it has written the answer (within the grace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable

from accord.api.sync.v1 import sync_pb2 as pb
from accord.common.lifecycle import BindError
from accord.common.push_socket import FrameError, frame, read_frame
from accord.sync import metrics
from google.protobuf.message import DecodeError

log = logging.getLogger(__name__)

SETTING = "SYNC_PUSH_SOCKET"
MODE = 0o660


class PushSocket:
    """A Unix socket answering ``PushManyRequest`` frames with ``answer``."""

    def __init__(
        self, path: str, answer: Callable[[pb.PushManyRequest], Awaitable[pb.PushManyResponse]]
    ) -> None:
        self._path = path
        self._answer = answer
        self._server: asyncio.Server | None = None
        self._inode: int | None = None
        self._idle: dict[asyncio.Task[None], bool] = {}
        """Each connection's task: True while it waits for a request."""
        self._stopping = False

    async def start(self) -> None:
        """Listen; ``BindError`` when the path cannot be taken."""
        _clear_stale(self._path)
        old = os.umask(0o117)  # the file is created 0660, never wider for a moment
        try:
            self._server = await asyncio.start_unix_server(self._connection, path=self._path)
        except OSError as error:
            raise BindError(SETTING, self._path, error.strerror or str(error)) from error
        finally:
            os.umask(old)
        os.chmod(self._path, MODE)
        self._inode = os.stat(self._path).st_ino

    async def stop(self, grace: float) -> None:
        """Stop accepting; end idle connections now, busy ones after their answer."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task, idle in list(self._idle.items()):
            if idle:
                task.cancel()
        if self._idle:
            _, late = await asyncio.wait(list(self._idle), timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self._path).st_ino == self._inode:
                os.unlink(self._path)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._idle[task] = True
        try:
            while not self._stopping:
                self._idle[task] = True
                data = await read_frame(reader)
                if data is None:
                    return
                self._idle[task] = False
                request = pb.PushManyRequest.FromString(data)
                metrics.PUSH_SOCKET_REQUESTS.inc()
                response = await self._answer(request)
                writer.write(frame(response.SerializeToString()))
                await writer.drain()
        except (FrameError, DecodeError) as error:
            log.warning("push socket: %s; connection closed", error or "a malformed request")
        except ConnectionError:
            pass  # the edge went away; what it pushed is committed or not, as over gRPC
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        except Exception:
            log.exception("push socket: unexpected error; connection closed")
        finally:
            del self._idle[task]
            writer.close()


def _clear_stale(path: str) -> None:
    """Remove a socket file left by a replica that is gone; refuse anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise BindError(SETTING, path, error.strerror or str(error)) from error
    if not stat.S_ISSOCK(mode):
        raise BindError(SETTING, path, "the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # nobody listens: left by a replica that did not stop cleanly
        return
    except OSError as error:
        raise BindError(SETTING, path, error.strerror or str(error)) from error
    finally:
        probe.close()
    raise BindError(SETTING, path, "another process listens on it")

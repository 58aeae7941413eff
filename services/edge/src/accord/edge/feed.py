"""One long-lived bidirectional stream per backend, multiplexing many rooms.

The edge keeps a single Subscribe stream to sync and a single Watch stream to
presence, whatever the number of clients. Rooms are added and removed by
writing requests to the stream; when it breaks, it is re-opened with backoff,
every room is added again, and ``on_reconnect`` lets the owner repair what it
may have missed in between.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

import grpc
from accord.common.tasks import stop

log = logging.getLogger(__name__)

Resp = TypeVar("Resp")

OpenStream = Callable[[AsyncIterator[Any]], Any]
MakeRequest = Callable[[list[str], list[str]], Any]


def coalesce(changes: list[tuple[str, bool]]) -> list[tuple[list[str], list[str]]]:
    """(room, add?) changes in order -> (add, remove) requests with the same effect.

    A request holds only adds or only removes, of distinct rooms, so however
    the server orders one request's lists, each room sees its changes in order.
    """
    requests: list[tuple[list[str], list[str]]] = []
    rooms: set[str] = set()
    kind: bool | None = None
    for room, add in changes:
        if kind is not add or room in rooms:
            requests.append(([], []))
            rooms, kind = set(), add
        rooms.add(room)
        requests[-1][0 if add else 1].append(room)
    return requests


def _stopping() -> bool:
    """Whether this task was asked to stop (a cancel that something caught on the way)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Feed(Generic[Resp]):
    def __init__(
        self,
        name: str,
        open_stream: OpenStream,
        make_request: MakeRequest,
        on_message: Callable[[Resp], None],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        self._name = name
        self._open = open_stream
        self._make_request = make_request
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        self._rooms: set[str] = set()
        self._outbox: asyncio.Queue[Any] | None = None
        self._pending: list[tuple[str, bool]] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def __aenter__(self) -> Feed[Resp]:
        self._task = asyncio.create_task(self._run(), name=f"feed-{self._name}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop(self._task)

    def add(self, room: str) -> None:
        if room not in self._rooms:
            self._rooms.add(room)
            self._send(room, True)

    def remove(self, room: str) -> None:
        if room in self._rooms:
            self._rooms.discard(room)
            self._send(room, False)

    def _send(self, room: str, add: bool) -> None:
        """Queue one change; those made in the same loop round leave as few requests."""
        if self._outbox is None:
            return
        self._pending.append((room, add))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush, self._outbox)

    def _flush(self, outbox: asyncio.Queue[Any]) -> None:
        if outbox is not self._outbox:
            return  # the stream broke meanwhile; the new one starts with every room
        pending, self._pending = self._pending, []
        for add, remove in coalesce(pending):
            outbox.put_nowait(self._make_request(add, remove))

    async def _requests(self, outbox: asyncio.Queue[Any]) -> AsyncIterator[Any]:
        while True:
            request = await outbox.get()
            if request is None:
                return
            yield request

    async def _run(self) -> None:
        backoff = 0.05
        first = True
        while True:
            outbox: asyncio.Queue[Any] = asyncio.Queue()
            self._pending = []
            outbox.put_nowait(self._make_request(sorted(self._rooms), []))
            self._outbox = outbox
            call = self._open(self._requests(outbox))
            try:
                await call.wait_for_connection()
                self.connected.set()
                backoff = 0.05
                if not first:
                    log.info("%s stream re-established with %d rooms", self._name, len(self._rooms))
                    await self._on_reconnect()
                first = False
                async for message in call:
                    self._on_message(message)
                log.warning("%s stream ended by the server", self._name)
            except grpc.aio.AioRpcError as error:
                log.warning(
                    "%s stream failed: %s %s", self._name, error.code().name, error.details()
                )
            except asyncio.CancelledError:
                call.cancel()
                raise
            except Exception:
                log.exception("%s stream handler failed", self._name)
            finally:
                self._outbox = None
                self.connected.clear()
                call.cancel()
            if _stopping():
                # grpc.aio can turn this task's cancel into the call's CANCELLED status (or
                # another error): retrying would swallow the stop, and the edge's shutdown
                # waited for its watchdog.
                raise asyncio.CancelledError
            first = False
            await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - retry jitter, not a secret
            backoff = min(backoff * 2, 2.0)

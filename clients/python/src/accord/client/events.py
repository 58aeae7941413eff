"""How the client and its rooms tell the app what happened: callback lists, change streams,
and a pulse that ``wait_until`` loops wake on."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from typing import Generic, ParamSpec

from accord.client.changes import RecordChange
from accord.client.errors import SlowConsumer

__all__ = ["Callbacks", "ChangeStream", "Pulse"]

log = logging.getLogger(__name__)

P = ParamSpec("P")


class Callbacks(Generic[P]):
    """Registered callbacks, called in order; one that raises is logged, not propagated."""

    def __init__(self, what: str, first: Callable[P, None] | None = None) -> None:
        self.what = what
        self._callbacks: list[Callable[P, None]] = [first] if first is not None else []

    def add(self, callback: Callable[P, None]) -> Callable[[], None]:
        """Register ``callback``; returns its remover."""
        self._callbacks.append(callback)
        return lambda: self._discard(callback)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for callback in list(self._callbacks):
            try:
                callback(*args, **kwargs)
            except Exception:
                log.exception("an Accord %s callback raised", self.what)

    def _discard(self, callback: Callable[P, None]) -> None:
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)


class Pulse:
    """Wakes every waiter at each ``fire()``: what ``wait_until`` re-checks its predicate on."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class ChangeStream:
    """The bounded queue behind one ``Room.changes()`` iterator."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: collections.deque[RecordChange] = collections.deque()
        self.ready = asyncio.Event()
        self.overflowed = False

    def put(self, item: RecordChange) -> None:
        if len(self.items) >= self.maxsize:
            self.overflowed = True
        else:
            self.items.append(item)
        self.ready.set()

    async def get(self) -> RecordChange:
        while not self.items:
            if self.overflowed:
                raise SlowConsumer(f"more than {self.maxsize} changes were left unread")
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()

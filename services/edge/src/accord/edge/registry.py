"""The sessions an edge holds, and the drain that ends them on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from accord.common.tasks import set_within
from accord.edge import metrics

log = logging.getLogger(__name__)


class Member(Protocol):
    @property
    def session_id(self) -> str: ...

    async def drain(self, timeout: float) -> None:
        """Finish the message in hand, then close (1012)."""
        ...


S = TypeVar("S", bound=Member)


class Sessions(Generic[S]):
    def __init__(self) -> None:
        self._by_id: dict[str, S] = {}
        self._empty = asyncio.Event()
        self._empty.set()
        self.draining = False

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[S]:
        return iter(list(self._by_id.values()))

    def values(self) -> list[S]:
        return list(self._by_id.values())

    def get(self, session_id: str) -> S | None:
        return self._by_id.get(session_id)

    def add(self, session: S) -> None:
        self._by_id[session.session_id] = session
        self._empty.clear()
        metrics.CONNECTIONS.set(len(self._by_id))

    def remove(self, session: S) -> None:
        self._by_id.pop(session.session_id, None)
        if not self._by_id:
            self._empty.set()
        metrics.CONNECTIONS.set(len(self._by_id))

    async def drain(self, timeout: float) -> None:
        """Refuse new sessions, let each finish what it is doing, close them all with 1012."""
        self.draining = True
        sessions = self.values()
        log.info("draining %d sessions", len(sessions))
        await asyncio.gather(*(s.drain(timeout / 2) for s in sessions), return_exceptions=True)
        await set_within(self._empty, timeout / 2)

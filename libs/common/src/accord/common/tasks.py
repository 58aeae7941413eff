"""Fire-and-forget tasks that are not garbage-collected while they run; a task for the
length of a block; a periodic check; the growing wait of a reconnect loop; waiting for
an event with a timeout."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Protocol

log = logging.getLogger(__name__)

_running: set[asyncio.Task[Any]] = set()


def _done(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())


def spawn(coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
    task = asyncio.create_task(coro, name=name)
    _running.add(task)
    task.add_done_callback(_done)
    return task


async def stop(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has ended; raises what it failed with.

    A cancel of the caller while it waits is the caller's own: it is raised at once (the
    task, cancelled already, is not waited for any longer), never swallowed as if it were
    the task's. Awaiting the task itself would do both wrong: the caller's cancel would be
    passed into the task, and its CancelledError taken for the task's ending.
    """
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.result()


@asynccontextmanager
async def running(coro: Coroutine[Any, Any, Any], name: str) -> AsyncIterator[asyncio.Task[Any]]:
    """Run ``coro`` as task ``name`` for the block's duration; cancelled when it ends."""
    task = spawn(coro, name=name)
    try:
        yield task
    finally:
        await stop(task)


@asynccontextmanager
async def repeating(
    interval: float, action: Callable[[], object], name: str
) -> AsyncIterator[None]:
    """Call ``action`` every ``interval`` seconds for the block's duration (task ``name``)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            action()

    async with running(loop(), name):
        yield


class Flag(Protocol):
    """What ``until_set`` waits for: an ``asyncio.Event`` or the like (the edge's Signal)."""

    def is_set(self) -> bool: ...

    def wait(self) -> Awaitable[object]: ...


async def until_set(event: Flag, timeout: float | None) -> None:
    """Wait until ``event`` is set; ``TimeoutError`` after ``timeout`` seconds (None: no
    limit).

    Use this, not ``asyncio.wait_for(event.wait(), timeout)``: on Python 3.11, a cancel
    that reaches ``wait_for`` just after the event was set is swallowed (it returns as if
    nothing happened), so a loop waiting this way outlives the ``stop`` that cancelled it
    and whoever awaits its end hangs (seen as a webhook deliverer that never stopped).
    ``asyncio.timeout`` counts cancels and lets an outside one through.
    """
    if event.is_set():
        return
    async with asyncio.timeout(timeout):
        await event.wait()


async def set_within(event: Flag, timeout: float | None) -> bool:
    """``until_set``, returning whether ``event`` was set in time instead of raising."""
    try:
        await until_set(event, timeout)
    except TimeoutError:
        return False
    return True


class Backoff:
    """The wait of a reconnect loop: ``first`` seconds, doubled after each failed attempt
    up to ``cap``; back to ``first`` once an attempt succeeds."""

    def __init__(self, first: float, cap: float) -> None:
        self._first = first
        self._cap = cap
        self._next = first

    @property
    def delay(self) -> float:
        """What the next ``wait`` sleeps, in seconds."""
        return self._next

    async def wait(self) -> None:
        """After a failed attempt: sleep, and wait longer after the next one."""
        await asyncio.sleep(self._next)
        self._next = min(self._next * 2, self._cap)

    def reset(self) -> None:
        """An attempt succeeded."""
        self._next = self._first

"""Fire-and-forget tasks that are not garbage-collected while they run; a periodic check."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

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


@asynccontextmanager
async def repeating(
    interval: float, action: Callable[[], object], name: str
) -> AsyncIterator[None]:
    """Call ``action`` every ``interval`` seconds for the block's duration (task ``name``)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            action()

    task = spawn(loop(), name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""accord.common.tasks: a task for a block's length, stopping a task, a reconnect backoff."""

from __future__ import annotations

import asyncio

from accord.common.tasks import Backoff, running, stop


async def test_a_running_task_runs_inside_the_block_and_is_cancelled_after_it() -> None:
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    async with running(work(), "work") as task:
        await started.wait()
        assert not task.done()
    assert task.cancelled()


async def test_stop_ends_a_task_and_takes_none() -> None:
    task = asyncio.create_task(asyncio.Event().wait())
    await stop(task)
    assert task.cancelled()
    await stop(None)


async def test_a_backoff_doubles_up_to_its_cap_and_starts_over_after_a_success() -> None:
    backoff = Backoff(0.001, 0.004)
    delays = []
    for _ in range(4):
        delays.append(backoff.delay)
        await backoff.wait()
    assert delays == [0.001, 0.002, 0.004, 0.004]
    backoff.reset()
    assert backoff.delay == 0.001

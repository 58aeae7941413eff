"""accord.common.tasks: a task for a block's length, stopping a task, a reconnect backoff,
waiting for an event with a timeout."""

from __future__ import annotations

import asyncio

import pytest
from accord.common.tasks import Backoff, running, set_within, stop, until_set


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


async def test_waiting_for_an_event_returns_once_set_and_times_out_otherwise() -> None:
    event = asyncio.Event()
    assert not await set_within(event, 0.01)
    with pytest.raises(TimeoutError):
        await until_set(event, 0.01)
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await set_within(event, 5)
    await until_set(event, None)  # set already: no wait


async def test_a_loop_waiting_for_its_event_stops_when_cancelled_as_the_event_is_set() -> None:
    """The race asyncio.wait_for loses on Python 3.11: the event is set, the waiter's inner
    task ends, and the cancel arrives before the waiting task runs again; wait_for returns
    as if nothing happened and the loop never ends (a webhook deliverer hung at stop)."""
    wake = asyncio.Event()
    waiting = asyncio.Event()

    async def loop() -> None:
        while True:
            wake.clear()
            waiting.set()
            await set_within(wake, 0.05)

    task = asyncio.create_task(loop())
    await waiting.wait()
    wake.set()
    await asyncio.sleep(0)  # the event's waiters wake up; the loop task is due to run
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert done == {task}
    assert task.cancelled()


async def test_a_caller_cancelled_while_stopping_a_task_ends_and_the_task_ends_later() -> None:
    let_go = asyncio.Event()
    reached = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await let_go.wait()  # refuses to end until let go
            raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)

    async def caller() -> None:
        await stop(task)
        reached.set()

    stopping = asyncio.create_task(caller())
    await asyncio.sleep(0.01)
    stopping.cancel()
    # The caller's own cancel is not passed into the task nor swallowed as its ending.
    done, _ = await asyncio.wait([stopping], timeout=1)
    assert stopping in done and stopping.cancelled()
    assert not reached.is_set()
    assert not task.done()
    let_go.set()
    await asyncio.wait([task], timeout=1)
    assert task.cancelled()


async def test_stop_raises_what_the_task_failed_with() -> None:
    async def failing() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("failed while stopping") from None

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="failed while stopping"):
        await stop(task)

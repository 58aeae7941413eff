"""A session's outbound queue: bounded in messages and bytes, coalescing when backlogged,
and the edge-wide byte budget that cuts the biggest queues first."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from accord.edge.codes import COALESCE_AFTER
from accord.edge.outbound import Budget, Outbound, QueueLimits
from accord.edge.protocol import Out


class StalledWriter:
    """A transport that takes nothing until released (a client that does not read)."""

    def __init__(self, buffered: int = 0) -> None:
        self.sent: list[bytes] = []
        self.release = asyncio.Event()
        self.fast = False
        self.in_buffer = buffered

    def buffered(self) -> int:
        return self.in_buffer

    def write_now(self, out: Out, binary: bool) -> int | None:
        if not self.fast:
            return None
        self.sent.append(out.text())
        return len(out.text())

    async def write(self, out: Out, binary: bool) -> int:
        await self.release.wait()
        self.sent.append(out.text())
        return len(out.text())


class Harness:
    def __init__(
        self,
        messages: int = 1024,
        size: int = 1 << 30,
        budget: Budget | None = None,
        writer: StalledWriter | None = None,
    ) -> None:
        self.writer = writer or StalledWriter()
        self.cuts: list[str] = []
        self.budget = budget or Budget(1 << 40)
        self.queue = Outbound(
            self.writer, QueueLimits(messages, size), self.budget, self.cuts.append
        )

    def queued(self) -> list[dict[str, Any]]:
        return [slot.out.message for slot in self.queue._queue]


def presence(event: str, peer: str, n: int) -> Out:
    return Out(
        {"type": "presence", "room": "r", "event": event, "peer": {"session_id": peer, "n": n}},
        ("presence", "r", peer),
    )


def change(n: int, pad: int = 0) -> Out:
    return Out({"type": "changes", "room": "r", "n": n, "pad": "x" * pad})


def fill(queue: Outbound, count: int, pad: int = 0) -> None:
    for _ in range(count):
        queue.send(change(0, pad))  # all the same size


async def test_nothing_is_coalesced_while_the_queue_is_short() -> None:
    h = Harness()
    h.queue.send(presence("join", "p", 1))
    h.queue.send(presence("update", "p", 2))
    assert [m["event"] for m in h.queued()] == ["join", "update"]


async def test_backlogged_updates_of_one_peer_keep_only_the_newest() -> None:
    h = Harness()
    h.queue.send(presence("update", "p", 1))
    fill(h.queue, COALESCE_AFTER)
    for n in range(2, 10):
        h.queue.send(presence("update", "p", n))
    h.queue.send(presence("update", "q", 1))
    events = [m for m in h.queued() if m["type"] == "presence"]
    assert [(m["peer"]["session_id"], m["peer"]["n"]) for m in events] == [("p", 9), ("q", 1)]
    # The newest state takes the place of the first, so order per peer is kept.
    assert h.queued()[0]["peer"]["n"] == 9


async def test_a_join_superseded_by_an_update_stays_a_join() -> None:
    h = Harness()
    h.queue.send(presence("join", "p", 1))
    fill(h.queue, COALESCE_AFTER)
    h.queue.send(presence("update", "p", 2))
    first = h.queued()[0]
    assert (first["event"], first["peer"]["n"]) == ("join", 2)
    assert len(h.queued()) == COALESCE_AFTER + 1


async def test_too_many_messages_overflow_and_drop_the_queue() -> None:
    h = Harness(messages=8)
    fill(h.queue, 8)
    assert h.queue.queued == 8 and not h.cuts
    fill(h.queue, 1)
    assert h.cuts == ["slow consumer: too many messages queued"]
    assert h.queue.queued == 0 and h.queue.queued_bytes == 0
    h.queue.send(change(99))  # a cut queue takes nothing more
    assert h.queue.queued == 0


async def test_too_many_bytes_overflow_counting_the_transport_buffer() -> None:
    one = len(change(0, 1000).text())
    h = Harness(size=10 * one)
    fill(h.queue, 10, pad=1000)
    assert h.queue.queued_bytes == 10 * one and not h.cuts
    fill(h.queue, 1, pad=1000)
    assert h.cuts == ["slow consumer: too many bytes queued"]
    # What already sits in the transport counts too.
    h = Harness(size=10 * one, writer=StalledWriter(buffered=5 * one))
    fill(h.queue, 5, pad=1000)
    assert not h.cuts
    fill(h.queue, 1, pad=1000)
    assert h.cuts


async def test_the_first_waiting_message_is_taken_however_large() -> None:
    h = Harness(size=100)
    h.queue.send(change(1, pad=10_000))
    assert h.queue.queued == 1 and not h.cuts


async def test_the_edge_budget_cuts_the_biggest_queues_first() -> None:
    one = len(change(0, 1000).text())
    budget = Budget(25 * one)
    small, big, bigger = Harness(budget=budget), Harness(budget=budget), Harness(budget=budget)
    fill(small.queue, 5, pad=1000)
    fill(big.queue, 8, pad=1000)
    fill(bigger.queue, 12, pad=1000)
    assert budget.total == 25 * one and not (small.cuts or big.cuts or bigger.cuts)
    fill(big.queue, 1, pad=1000)  # over the budget: the biggest queue goes
    assert bigger.cuts and not big.cuts and not small.cuts
    assert budget.total == 14 * one
    assert bigger.queue.queued_bytes == 0


async def test_sent_and_coalesced_bytes_go_back_to_the_budget() -> None:
    budget = Budget(1 << 30)
    h = Harness(budget=budget)
    fill(h.queue, COALESCE_AFTER)
    h.queue.send(presence("update", "p", 1))
    before = budget.total
    h.queue.send(presence("update", "p", 22222))  # one digit more, coalesced into the slot
    assert budget.total == before + 4
    h.writer.release.set()
    await asyncio.wait_for(h.queue.flush(5.0), 6)
    assert budget.total == 0 and h.queue.queued_bytes == 0


async def test_the_writer_runs_only_while_messages_are_queued() -> None:
    h = Harness()
    assert h.queue._task is None and h.queue.queued == 0  # idle: no task, no queue
    h.queue.send(change(1))
    h.queue.send(change(2))
    assert h.queue._task is not None and h.queue.queued == 2
    h.writer.release.set()
    await asyncio.wait_for(h.queue.flush(5.0), 6)
    await asyncio.sleep(0)
    assert [json.loads(d)["n"] for d in h.writer.sent] == [1, 2]
    assert h.queue._task is None and h.queue.queued == 0
    # Another queue is never this one's (idle queues share one empty deque).
    assert Harness().queue.queued == 0


async def test_an_idle_transport_is_written_at_once() -> None:
    h = Harness()
    h.writer.fast = True
    h.queue.send(change(1))
    assert h.queue.queued == 0 and h.queue._task is None
    assert [json.loads(d)["n"] for d in h.writer.sent] == [1]

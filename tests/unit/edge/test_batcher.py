"""The edge's Batcher: client pushes (and presence updates) ride PushMany (UpdateMany)
calls, a few calls at a time.

The call is an in-process function standing in for sync's PushMany, so the
batching itself (who rides which call, how errors map) is what is tested;
the real path runs in tests/e2e.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from accord.api.sync.v1 import sync_pb2 as spb
from accord.edge.backends import Batcher, reason_error
from accord.edge.protocol import ProtocolError


def request(room: str, n: int) -> spb.PushRequest:
    return spb.PushRequest(room=room, user_id="u", client_id=f"c{n}")


class FakeSync:
    """Answers each push with its room's next seq; a push to "bad" fails with ``reason``."""

    def __init__(self, reason: str = "BAD_REQUEST") -> None:
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.reason = reason
        self.heads: dict[str, int] = {}

    async def __call__(
        self, pushes: list[spb.PushRequest]
    ) -> list[spb.PushResponse | ProtocolError]:
        self.calls.append([f"{p.room}/{p.client_id}" for p in pushes])
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        results: list[spb.PushResponse | ProtocolError] = []
        for pushed in pushes:
            if pushed.room == "bad":
                results.append(reason_error(self.reason, "no such thing", pushed.room))
            else:
                head = self.heads[pushed.room] = self.heads.get(pushed.room, 0) + 1
                results.append(spb.PushResponse(room=pushed.room, head=head))
        return results


def make(call: Any, **kw: int) -> Batcher[spb.PushRequest, spb.PushResponse]:
    return Batcher("PushMany", call, **kw)


async def test_pushes_made_in_one_round_ride_one_call() -> None:
    sync = FakeSync()
    batcher = make(sync)
    responses = await asyncio.gather(*(batcher.submit(request("r", n)) for n in range(5)))
    assert sync.calls == [[f"r/c{n}" for n in range(5)]]
    assert [r.head for r in responses] == [1, 2, 3, 4, 5]


async def test_while_calls_are_out_pushes_wait_and_ride_the_next_call_together() -> None:
    sync = FakeSync()
    sync.release.clear()
    batcher = make(sync, max_in_flight=2, max_items=3)
    first = [asyncio.ensure_future(batcher.submit(request("r", n))) for n in range(5)]
    await asyncio.sleep(0.01)
    # Two calls out (3 + 2 pushes); what comes now waits for one of them to finish.
    assert sync.calls == [["r/c0", "r/c1", "r/c2"], ["r/c3", "r/c4"]]
    later = [asyncio.ensure_future(batcher.submit(request("r", n))) for n in range(5, 9)]
    await asyncio.sleep(0.01)
    assert len(sync.calls) == 2
    sync.release.set()
    await asyncio.gather(*first, *later)
    assert sync.most_in_flight == 2
    assert sync.calls[2:] == [["r/c5", "r/c6", "r/c7"], ["r/c8"]]


async def test_a_failed_push_raises_its_own_protocol_error_and_the_rest_succeed() -> None:
    sync = FakeSync()
    batcher = make(sync)
    good, bad = await asyncio.gather(
        batcher.submit(request("r", 1)), batcher.submit(request("bad", 2)), return_exceptions=True
    )
    assert isinstance(good, spb.PushResponse)
    assert isinstance(bad, ProtocolError)
    assert (bad.code, bad.message, bad.room) == ("BAD_REQUEST", "no such thing", "bad")


@pytest.mark.parametrize(
    ("reason", "code", "message"),
    [
        ("TOO_LARGE", "TOO_LARGE", "no such thing"),
        ("UNAVAILABLE", "UNAVAILABLE", "the service is unavailable, try again"),
        ("INTERNAL", "INTERNAL", "internal error"),
        ("SOMETHING_NEW", "INTERNAL", "internal error"),
    ],
)
async def test_push_error_reasons_map_to_client_codes(reason: str, code: str, message: str) -> None:
    batcher = make(FakeSync(reason))
    with pytest.raises(ProtocolError) as caught:
        await batcher.submit(request("bad", 1))
    assert (caught.value.code, caught.value.message) == (code, message)


async def test_a_failed_call_fails_every_push_it_carried_and_the_next_call_goes_out() -> None:
    failing = True

    async def call(pushes: list[spb.PushRequest]) -> list[spb.PushResponse | ProtocolError]:
        if failing:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
            )
        return [spb.PushResponse(room=p.room) for p in pushes]

    batcher = make(call)
    outcomes = await asyncio.gather(
        *(batcher.submit(request("r", n)) for n in range(3)), return_exceptions=True
    )
    assert [o.code for o in outcomes if isinstance(o, ProtocolError)] == ["UNAVAILABLE"] * 3
    failing = False
    assert (await batcher.submit(request("r", 9))).room == "r"


async def test_a_push_whose_session_went_away_does_not_break_the_others() -> None:
    sync = FakeSync()
    sync.release.clear()
    batcher = make(sync)
    gone = asyncio.ensure_future(batcher.submit(request("r", 1)))
    kept = asyncio.ensure_future(batcher.submit(request("r", 2)))
    await asyncio.sleep(0.01)
    gone.cancel()
    sync.release.set()
    assert (await kept).head == 2
    assert gone.cancelled()


async def test_an_item_the_backend_left_unanswered_fails_as_internal() -> None:
    async def short(pushes: list[spb.PushRequest]) -> list[spb.PushResponse | ProtocolError]:
        return [spb.PushResponse(room=pushes[0].room)]

    batcher = make(short)
    first, second = await asyncio.gather(
        batcher.submit(request("r", 1)), batcher.submit(request("r", 2)), return_exceptions=True
    )
    assert isinstance(first, spb.PushResponse)
    assert isinstance(second, ProtocolError) and second.code == "INTERNAL"

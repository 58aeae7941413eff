"""Room changes made in one loop round leave as few Subscribe/Watch requests as keep their order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from accord.edge.feed import Feed, coalesce


def test_adds_and_removes_of_distinct_rooms_share_a_request_per_kind() -> None:
    changes = [("a", True), ("b", True), ("c", False), ("d", False), ("e", True)]
    assert coalesce(changes) == [(["a", "b"], []), ([], ["c", "d"]), (["e"], [])]


def test_a_room_seen_twice_starts_a_new_request_so_its_changes_keep_their_order() -> None:
    assert coalesce([("a", True), ("b", True), ("a", False), ("a", True)]) == [
        (["a", "b"], []),
        ([], ["a"]),
        (["a"], []),
    ]
    assert coalesce([("a", True), ("a", True)]) == [(["a"], []), (["a"], [])]
    assert coalesce([]) == []


class FakeCall:
    """A stream call that records the requests the feed writes to it."""

    def __init__(self, requests: AsyncIterator[Any], seen: asyncio.Queue[Any]) -> None:
        self._requests = requests
        self._seen = seen
        self._reader: asyncio.Task[None] | None = None

    async def wait_for_connection(self) -> None:
        async def read() -> None:
            async for request in self._requests:
                self._seen.put_nowait(request)

        self._reader = asyncio.ensure_future(read())

    def __aiter__(self) -> FakeCall:
        return self

    async def __anext__(self) -> Any:
        await asyncio.Event().wait()  # no messages: the stream stays open
        raise StopAsyncIteration

    def cancel(self) -> None:
        if self._reader is not None:
            self._reader.cancel()


async def test_a_feed_sends_one_request_for_the_rooms_added_in_one_round() -> None:
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def sent() -> Any:
        return await asyncio.wait_for(seen.get(), 5)

    async def on_reconnect() -> None:
        return None

    feed: Feed[Any] = Feed(
        "test",
        lambda requests: FakeCall(requests, seen),
        lambda add, remove: (tuple(add), tuple(remove)),
        lambda message: None,
        on_reconnect,
    )
    async with feed:
        await asyncio.wait_for(feed.connected.wait(), 5)
        assert await sent() == ((), ())  # every room (none yet), as the stream opens
        for room in ("r1", "r2", "r3"):
            feed.add(room)
        feed.remove("r2")
        assert [await sent(), await sent()] == [(("r1", "r2", "r3"), ()), ((), ("r2",))]
        feed.add("r4")
        assert await sent() == (("r4",), ())
        assert seen.empty()


class CancelledAsStatusCall(FakeCall):
    """As grpc.aio can do: the task's cancel, while it reads, comes out as CANCELLED."""

    async def __anext__(self) -> Any:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.CANCELLED,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                "Locally cancelled by application!",
            ) from None
        raise StopAsyncIteration


async def test_a_feed_stops_when_grpc_turns_its_cancel_into_a_status() -> None:
    # The edge's shutdown once waited for a feed that took its own stop for a broken stream
    # and went on reconnecting (seen as `accord dev` children outliving a SIGKILLed parent).
    seen: asyncio.Queue[Any] = asyncio.Queue()
    opened = 0

    def open_stream(requests: AsyncIterator[Any]) -> FakeCall:
        nonlocal opened
        opened += 1
        return CancelledAsStatusCall(requests, seen)

    async def on_reconnect() -> None:
        return None

    feed: Feed[Any] = Feed(
        "test", open_stream, lambda add, remove: (add, remove), lambda m: None, on_reconnect
    )
    await feed.__aenter__()
    await asyncio.wait_for(feed.connected.wait(), 5)
    closing = asyncio.ensure_future(feed.__aexit__(None, None, None))
    done, _ = await asyncio.wait({closing}, timeout=5)
    assert closing in done, "the feed went on reconnecting after its stop"
    assert opened == 1

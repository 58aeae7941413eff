"""Typed clients for the sync and presence services, with deadlines and metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import grpc
from accord.api.presence.v1 import presence_pb2 as ppb
from accord.api.presence.v1 import presence_pb2_grpc
from accord.api.sync.v1 import sync_pb2 as spb
from accord.api.sync.v1 import sync_pb2_grpc
from accord.common import grpcutil, jsontext
from accord.common.rules import RETRY_AFTER_KEY
from accord.common.tasks import spawn
from accord.edge import metrics
from accord.edge.protocol import ProtocolError
from accord.edge.push_socket import SocketPushes

# gRPC status -> client protocol code, when the server gave no reason.
_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: "BAD_REQUEST",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "TOO_LARGE",
    grpc.StatusCode.PERMISSION_DENIED: "FORBIDDEN",
    grpc.StatusCode.UNAVAILABLE: "UNAVAILABLE",
    grpc.StatusCode.DEADLINE_EXCEEDED: "UNAVAILABLE",
    grpc.StatusCode.CANCELLED: "UNAVAILABLE",
}
_CLIENT_CODES = {
    "BAD_REQUEST",
    "TOO_LARGE",
    "FORBIDDEN",
    "UNAVAILABLE",
    "INTERNAL",
    "NOT_SUBSCRIBED",
    "RATE_LIMITED",
    "UNSUPPORTED",
}


def to_protocol_error(error: grpc.aio.AioRpcError, room: str | None = None) -> ProtocolError:
    reason = grpcutil.reason_of(error)
    code = reason if reason in _CLIENT_CODES else _CODES.get(error.code(), "INTERNAL")
    if code in ("UNAVAILABLE", "INTERNAL"):
        message = (
            "the service is unavailable, try again" if code == "UNAVAILABLE" else "internal error"
        )
    else:
        message = error.details() or code.lower()
    retry_after_ms = None
    if code == "RATE_LIMITED":
        for key, value in error.trailing_metadata() or ():
            if key == RETRY_AFTER_KEY and str(value).isdigit():
                retry_after_ms = int(value)
        retry_after_ms = retry_after_ms or 1000
    return ProtocolError(code, message, room=room, retry_after_ms=retry_after_ms)


class _Timed:
    def __init__(self, method: str) -> None:
        self._observe = metrics.GRPC_CLIENT.labels(method).observe
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._observe(time.perf_counter() - self._start)


def reason_error(reason: str, message: str, room: str) -> ProtocolError:
    """One failed item of a many-at-once call (its ``reason`` and message), as the client
    sees it."""
    code = reason if reason in _CLIENT_CODES else "INTERNAL"
    if code == "UNAVAILABLE":
        return ProtocolError(code, "the service is unavailable, try again", room=room)
    if code == "INTERNAL":
        return ProtocolError(code, "internal error", room=room)
    return ProtocolError(code, message or code.lower(), room=room)


Item = TypeVar("Item", spb.PushRequest, ppb.UpdateRequest, ppb.JoinRequest)
Result = TypeVar("Result")
ManyCall = Callable[[list[Item]], Awaitable[list[Result | ProtocolError]]]


class Batcher(Generic[Item, Result]):
    """Items go to a backend in many-at-once calls (``PushMany``, ``UpdateMany``), at most
    ``max_in_flight`` calls at a time.

    An item waits only while that many calls are already out: it then rides
    the next call with every other item that arrived meanwhile. One call at a
    time is the default: a gRPC call costs the edge and the backend several
    hundred microseconds of CPU whatever it carries, so under load fewer,
    fuller calls leave more CPU for the work (docs/benchmarks.md). Under light load each item is
    sent at once, alone; under load one call carries many
    clients' items. Order holds because a session has at most one item out at
    a time (it handles its frames one after another) and the backends apply a
    call's items of one room (or session) in order.
    """

    def __init__(
        self,
        method: str,
        call: ManyCall[Item, Result],
        max_in_flight: int = 1,
        max_items: int = 500,
    ) -> None:
        self._method = method
        self._call: ManyCall[Item, Result] = call
        self._max_in_flight = max_in_flight
        self._max_items = max_items
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._in_flight = 0
        self._scheduled = False
        self._batch_size = metrics.BATCHED_ITEMS.labels(method)

    async def submit(self, item: Item) -> Result:
        """The item's result; raises its ``ProtocolError``."""
        waiting = self._waiting
        # Items waiting already are of this loop: asking for the running loop costs a
        # system call on Python 3.11 (a fork check), and this runs once per item.
        loop = waiting[-1][1].get_loop() if waiting else asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        waiting.append((item, future))
        if not self._scheduled and self._in_flight < self._max_in_flight:
            # Sent after the loop's current round: items parsed in the same round share it.
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._waiting and self._in_flight < self._max_in_flight:
            batch = self._waiting[: self._max_items]
            del self._waiting[: self._max_items]
            self._in_flight += 1
            spawn(self._send(batch), name=self._method)

    async def _send(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            self._batch_size.observe(len(batch))
            try:
                with _Timed(self._method):
                    outcomes = await self._call([item for item, _ in batch])
            except grpc.aio.AioRpcError as error:
                for item, future in batch:
                    if not future.done():
                        future.set_exception(to_protocol_error(error, item.room))
                return
            except ProtocolError as error:  # the whole call failed without a status
                for item, future in batch:
                    if not future.done():
                        future.set_exception(ProtocolError(error.code, str(error), room=item.room))
                return
            for index, (item, future) in enumerate(batch):
                if future.done():
                    continue
                outcome = (
                    outcomes[index]
                    if index < len(outcomes)
                    else ProtocolError("INTERNAL", "internal error", room=item.room)
                )
                if isinstance(outcome, ProtocolError):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        finally:
            self._in_flight -= 1
            self._flush()


PUSH_STREAM_SECONDS = 20.0
"""A push stream is replaced after this long: well inside the servers' connection-age
grace (30 s, ``grpcutil.SERVER_OPTIONS``), so a stream never outlives its connection."""


class PushStream:
    """``PushStream`` to sync: one long-lived call carrying ``PushManyRequest``s, each
    answered in order. A unary call costs both ends several hundred microseconds of
    CPU to set up; a message on an open stream about half. One exchange at a time;
    any failure drops the stream (the next exchange opens another)."""

    def __init__(self, stub: Any, timeout: float) -> None:
        self._stub = stub
        self._timeout = timeout
        self._call: Any = None
        self._opened = 0.0
        self._lock = asyncio.Lock()

    async def exchange(self, request: spb.PushManyRequest) -> spb.PushManyResponse:
        """The response to ``request``; raises ``grpc.aio.AioRpcError`` or ``ProtocolError``
        (UNAVAILABLE) when the stream fails or sync takes longer than the timeout."""
        async with self._lock:
            call = self._call
            if call is not None and call.done():
                call = None  # sync ended it between exchanges (it is shutting down)
            elif call is not None and time.monotonic() - self._opened > PUSH_STREAM_SECONDS:
                call.cancel()  # between exchanges: nothing is lost
                call = None
            if call is None:
                call = self._call = self._stub.PushStream()
                self._opened = time.monotonic()
            try:
                async with asyncio.timeout(self._timeout):
                    await call.write(request)
                    response = await call.read()
            except (TimeoutError, asyncio.InvalidStateError) as error:
                self._drop(call)
                raise ProtocolError(
                    "UNAVAILABLE", "the sync service is unavailable, try again"
                ) from error
            except BaseException:  # AioRpcError (the stream's status), cancellation
                self._drop(call)
                raise
            if response is grpc.aio.EOF:
                self._drop(call)
                raise ProtocolError("UNAVAILABLE", "the sync service ended the push stream")
            return response  # type: ignore[no-any-return]

    def _drop(self, call: Any) -> None:
        if self._call is call:
            self._call = None
        call.cancel()


class InlineBatches(Protocol):
    """Where committed batches answered with pushes go (``rooms.Hub``): the same path as
    the Subscribe stream's."""

    @property
    def subscriber(self) -> str:
        """The current Subscribe call's id (SubscribeRequest.subscriber); "": none."""
        ...

    def take(self, batches: Sequence[spb.ChangeBatch]) -> None:
        """Batches a push exchange was answered with (PushManyResponse.batches)."""
        ...

    def lost(self, rooms: Sequence[str]) -> None:
        """A push exchange naming the subscriber failed: its answer may have held batches
        of these rooms that the Subscribe stream will not send."""
        ...


class SyncClient:
    def __init__(
        self, channel: grpc.aio.Channel, timeout: float, push_socket: str | None = None
    ) -> None:
        self.channel = channel
        self.stub = sync_pb2_grpc.SyncStub(channel)  # type: ignore[no-untyped-call]
        self.timeout = timeout
        self.inline: InlineBatches | None = None
        """Set: pushes name its Subscribe call, and sync may answer them with the batches
        that stream would have sent (``PushManyResponse.batches``)."""
        stream = PushStream(self.stub, timeout)
        self._stream: PushStream | SocketPushes = (
            stream if push_socket is None else SocketPushes(push_socket, stream, timeout)
        )
        self._pushes: Batcher[spb.PushRequest, spb.PushResponse] = Batcher(
            "PushStream", self._push_many
        )

    async def _push_many(
        self, pushes: list[spb.PushRequest]
    ) -> list[spb.PushResponse | ProtocolError]:
        inline = self.inline
        subscriber = inline.subscriber if inline is not None else ""
        if not subscriber:
            response = await self._stream.exchange(spb.PushManyRequest(pushes=pushes))
        else:
            assert inline is not None
            try:
                response = await self._stream.exchange(
                    spb.PushManyRequest(pushes=pushes, subscriber=subscriber)
                )
            except BaseException:
                inline.lost([push.room for push in pushes])
                raise
            if response.batches:
                # Fanned out before the pushes are answered, as the stream's copy would
                # mostly have been.
                inline.take(response.batches)
        return [
            result.response
            if result.WhichOneof("result") == "response"
            else reason_error(result.error.reason, result.error.message, push.room)
            for push, result in zip(pushes, response.results, strict=False)
        ]

    def close(self) -> None:
        """Close the push socket's connection, if any (the channel is closed apart)."""
        if isinstance(self._stream, SocketPushes):
            self._stream.close()

    async def push(self, request: spb.PushRequest) -> spb.PushResponse:
        """Push through the batcher; raises ``ProtocolError``."""
        return await self._pushes.submit(request)

    def pull(
        self,
        room: str,
        since: int,
        until: int = 0,
        changes_only: bool = False,
        epoch: str = "",
    ) -> AsyncIterator[spb.PullResponse]:
        call: AsyncIterator[spb.PullResponse] = self.stub.Pull(
            spb.PullRequest(
                room=room, since=since, until=until, changes_only=changes_only, epoch=epoch
            ),
            timeout=self.timeout * 6,
        )
        return call

    async def pull_changes(
        self, room: str, since: int, until: int = 0, epoch: str = ""
    ) -> list[spb.CommittedChange]:
        """(since, until] from the log; OUT_OF_RANGE when the log no longer holds it
        or ``epoch`` (when set) is not the room's."""
        changes: list[spb.CommittedChange] = []
        async for item in self.pull(room, since, until, changes_only=True, epoch=epoch):
            if item.WhichOneof("item") == "changes":
                changes.extend(item.changes.changes)
        return changes

    def subscribe(self, requests: AsyncIterator[spb.SubscribeRequest]) -> Any:
        return self.stub.Subscribe(requests)


def _peer(peer: dict[str, Any]) -> ppb.Peer:
    return ppb.Peer(
        session_id=peer["session_id"],
        user_id=peer["user_id"],
        client_id=peer["client_id"],
        user_json=jsontext.dumps(peer.get("user") or {}),
        state_json=jsontext.dumps(peer.get("state") or {}),
    )


def peer_dict(peer: ppb.Peer) -> dict[str, Any]:
    return {
        "session_id": peer.session_id,
        "user_id": peer.user_id,
        "client_id": peer.client_id,
        "user": json.loads(peer.user_json) if peer.user_json else {},
        "state": json.loads(peer.state_json) if peer.state_json else {},
    }


def _applied_or_errors(
    items: Sequence[ppb.UpdateRequest | ppb.JoinRequest],
    results: Sequence[ppb.UpdateResult | ppb.JoinResult],
) -> list[ProtocolError | None]:
    """A presence many-call's answers (``UpdateMany``, ``JoinMany``): None where applied."""
    return [
        reason_error(result.reason, result.message, item.room) if result.reason else None
        for item, result in zip(items, results, strict=False)
    ]


class PresenceClient:
    def __init__(self, channel: grpc.aio.Channel, timeout: float, edge_id: str) -> None:
        self.channel = channel
        self.stub = presence_pb2_grpc.PresenceStub(channel)  # type: ignore[no-untyped-call]
        self.timeout = timeout
        self.edge_id = edge_id
        self._updates: Batcher[ppb.UpdateRequest, None] = Batcher("UpdateMany", self._update_many)
        self._joins: Batcher[ppb.JoinRequest, None] = Batcher("JoinMany", self._join_many)

    async def join(self, room: str, peer: dict[str, Any]) -> None:
        """Join through the batcher (a connect storm's joins share calls); raises
        ``ProtocolError``."""
        await self._joins.submit(ppb.JoinRequest(room=room, peer=_peer(peer), edge_id=self.edge_id))

    async def _join_many(self, joins: list[ppb.JoinRequest]) -> list[ProtocolError | None]:
        response: ppb.JoinManyResponse = await self.stub.JoinMany(
            ppb.JoinManyRequest(joins=joins), timeout=self.timeout
        )
        return _applied_or_errors(joins, response.results)

    async def update(self, room: str, session_id: str, state: dict[str, Any]) -> None:
        """Update through the batcher; raises ``ProtocolError``."""
        await self._updates.submit(
            ppb.UpdateRequest(
                room=room,
                session_id=session_id,
                state_json=jsontext.dumps(state),
            )
        )

    async def _update_many(self, updates: list[ppb.UpdateRequest]) -> list[ProtocolError | None]:
        response: ppb.UpdateManyResponse = await self.stub.UpdateMany(
            ppb.UpdateManyRequest(updates=updates), timeout=self.timeout
        )
        return _applied_or_errors(updates, response.results)

    async def leave(self, room: str, session_id: str, reason: ppb.LeaveReason) -> None:
        with _Timed("Leave"):
            await self.stub.Leave(
                ppb.LeaveRequest(room=room, session_id=session_id, reason=reason),
                timeout=self.timeout,
            )

    async def heartbeat(self, session_ids: list[str]) -> list[str]:
        with _Timed("Heartbeat"):
            response: ppb.HeartbeatResponse = await self.stub.Heartbeat(
                ppb.HeartbeatRequest(edge_id=self.edge_id, session_ids=session_ids),
                timeout=self.timeout,
            )
        return list(response.unknown_session_ids)

    async def list(
        self, room: str, *, limit: int = 0, cursor: str = "", counts_only: bool = False
    ) -> dict[str, Any]:
        """A page of the room's peers: ``peers``, ``count``, ``users``, ``next_cursor``."""
        with _Timed("List"):
            response: ppb.ListResponse = await self.stub.List(
                ppb.ListRequest(room=room, limit=limit, cursor=cursor, counts_only=counts_only),
                timeout=self.timeout,
            )
        page: dict[str, Any] = {
            "peers": [peer_dict(p) for p in response.peers],
            "count": response.count,
            "users": response.user_count,
        }
        if response.next_cursor:
            page["next_cursor"] = response.next_cursor
        return page

    async def broadcast(self, room: str, session_id: str, data: Any, channel: str = "") -> None:
        with _Timed("Broadcast"):
            await self.stub.Broadcast(
                ppb.BroadcastRequest(
                    room=room,
                    from_session_id=session_id,
                    data_json=jsontext.dumps(data),
                    channel=channel,
                ),
                timeout=self.timeout,
            )

    def watch(self, requests: AsyncIterator[ppb.WatchRequest]) -> Any:
        """The batched Watch: each message carries every event ready at once."""
        return self.stub.WatchBatched(requests)

"""The gRPC face of the sync service: translate requests, call the engine, map errors.

Inline batches: a Subscribe call may name itself (``SubscribeRequest.subscriber``),
and a ``PushMany`` (or a ``PushStream`` request) may name the caller's Subscribe call
of this replica (``PushManyRequest.subscriber``). The group's batches of the rooms
the request's pushes committed to, and that stream follows, then travel in the
response (``PushManyResponse.batches``) and the stream does not send them
(``RoomStream.claim``): one message fewer to write, and to read, per commit group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable

import grpc
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1 import sync_pb2_grpc
from accord.common.grpcutil import abort
from accord.sync import metrics, records_wire, wire
from accord.sync.bus import Bus
from accord.sync.committer import Committer
from accord.sync.engine import Engine, PullHead, split_by_bytes
from accord.sync.errors import (
    BadRequest,
    OutOfRange,
    SyncError,
    TooLarge,
    Unavailable,
    Unsupported,
)
from accord.sync.model import Limits, PushOutcome, SnapshotPage
from accord.sync.recheck import Rechecker
from accord.sync.subscription import RoomStream

log = logging.getLogger(__name__)

_STATUS: dict[type[SyncError], tuple[grpc.StatusCode, str]] = {
    BadRequest: (grpc.StatusCode.INVALID_ARGUMENT, "BAD_REQUEST"),
    Unsupported: (grpc.StatusCode.INVALID_ARGUMENT, "UNSUPPORTED"),
    TooLarge: (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_LARGE"),
    Unavailable: (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"),
    OutOfRange: (grpc.StatusCode.OUT_OF_RANGE, "BAD_REQUEST"),
}


MAX_PUSH_MANY = 1000
MAX_SUBSCRIBER_ID = 64
"""Characters of a SubscribeRequest.subscriber at most (a longer one is not registered)."""
INLINE_BYTES = 4 * 1024 * 1024
"""Bytes of batches one PushManyResponse carries at most; the stream sends the rest."""


def _failure(error: BaseException) -> tuple[grpc.StatusCode, str, str]:
    """The status code, ``accord-reason`` and message a failed call (or push) reports."""
    if isinstance(error, SyncError):
        code, reason = _STATUS[type(error)]
        return code, reason, str(error)
    log.error("unexpected error", exc_info=error)
    return grpc.StatusCode.INTERNAL, "INTERNAL", "internal error"


async def _fail(context: grpc.aio.ServicerContext, error: Exception) -> None:
    await abort(context, *_failure(error))


def _too_many() -> BadRequest:
    return BadRequest(f"more than {MAX_PUSH_MANY} pushes in one PushMany request")


def _push_error(error: BaseException) -> pb.PushError:
    _, reason, message = _failure(error)
    return pb.PushError(reason=reason, message=message)


class _Answer:
    """The batches a ``PushManyRequest`` naming a live Subscribe stream is answered with."""

    __slots__ = ("batches", "bytes", "open", "stream")

    def __init__(self, stream: RoomStream) -> None:
        self.stream = stream
        self.batches: list[pb.ChangeBatch] = []
        self.bytes = 0
        self.open = True
        """False once the response can no longer carry them (the call was cancelled)."""

    def offer(self, batch: pb.ChangeBatch) -> None:
        if not self.open:
            return
        size = batch.ByteSize()
        if self.bytes + size > INLINE_BYTES:
            return
        if self.stream.claim(batch):
            self.batches.append(batch)
            self.bytes += size
            metrics.INLINE_BATCHES.inc()


class SyncServicer(sync_pb2_grpc.SyncServicer):
    def __init__(
        self,
        engine: Engine,
        bus: Bus,
        limits: Limits,
        rechecker: Rechecker,
        on_committed: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        self._engine = engine
        self._bus = bus
        self._limits = limits
        self._rechecker = rechecker
        self._committer = Committer(
            engine, bus, on_unpublished=rechecker.ask_every_replica, on_committed=on_committed
        )
        self._closing = asyncio.Event()
        self._subscribers: dict[str, RoomStream] = {}
        """SubscribeRequest.subscriber -> its live stream on this replica."""

    def close_streams(self) -> None:
        """End every Subscribe stream, and every PushStream between two requests
        (shutdown: callers reconnect to another replica)."""
        self._closing.set()

    async def _push(self, request: pb.PushRequest) -> PushOutcome:
        return await self._committer.push(wire.push_batch(request, self._limits))

    async def Push(
        self, request: pb.PushRequest, context: grpc.aio.ServicerContext
    ) -> pb.PushResponse:
        # A push that has reached the committer commits (and is published) even
        # if this call is cancelled, so subscribers never miss a change the log holds.
        try:
            outcome = await self._push(request)
        except Exception as error:
            await _fail(context, error)
            raise
        return wire.push_response(outcome)

    async def PushMany(
        self, request: pb.PushManyRequest, context: grpc.aio.ServicerContext
    ) -> pb.PushManyResponse:
        return await self._push_many(request, context)

    async def PushStream(
        self,
        request_iterator: AsyncIterator[pb.PushManyRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.PushManyResponse]:
        requests = aiter(request_iterator)
        closing = asyncio.ensure_future(self._closing.wait())
        received: asyncio.Future[pb.PushManyRequest] | None = None
        try:
            while True:
                received = asyncio.ensure_future(anext(requests))
                await asyncio.wait({received, closing}, return_when=asyncio.FIRST_COMPLETED)
                if not received.done():  # shutting down, and no request is pending
                    received.cancel()
                    return
                try:
                    request = received.result()
                except StopAsyncIteration:
                    return
                yield await self._push_many(request, context)
        finally:
            closing.cancel()
            if received is not None and not received.cancel() and not received.cancelled():
                # Done already: the caller ended or cancelled the stream (the edge
                # replaces its stream so), which is no error; retrieve it as read.
                received.exception()

    async def _push_many(
        self, request: pb.PushManyRequest, context: grpc.aio.ServicerContext
    ) -> pb.PushManyResponse:
        if len(request.pushes) > MAX_PUSH_MANY:
            await _fail(context, _too_many())
        return await self.push_many(request)

    async def push_many(self, request: pb.PushManyRequest) -> pb.PushManyResponse:
        """The answer to ``request``, from any transport: the gRPC calls (which fail a
        request of more than ``MAX_PUSH_MANY`` pushes before this) and the push socket
        (``accord.sync.push_socket``), where such a request gets every push refused."""
        if len(request.pushes) > MAX_PUSH_MANY:
            error = _push_error(_too_many())
            return pb.PushManyResponse(results=[pb.PushResult(error=error) for _ in request.pushes])
        answer = None
        if request.subscriber:
            stream = self._subscribers.get(request.subscriber)
            if stream is not None:
                answer = _Answer(stream)
        # All handed to the committer before the first await: pushes to one room
        # keep their order and join the same commit group.
        pending: list[asyncio.Future[PushOutcome] | Exception] = []
        for push in request.pushes:
            try:
                pending.append(self._committer.submit(wire.push_batch(push, self._limits), answer))
            except Exception as error:
                pending.append(error)
        results = []
        try:
            for item in pending:
                if isinstance(item, asyncio.Future):
                    try:
                        outcome = await item
                    except Exception as error:
                        item = error
                    else:
                        results.append(pb.PushResult(response=wire.push_response(outcome)))
                        continue
                results.append(pb.PushResult(error=_push_error(item)))
        finally:
            if answer is not None:
                # Cancelled: the pushes still waiting are not claimed for this answer.
                answer.open = False
        if answer is not None and answer.batches:
            return pb.PushManyResponse(results=results, batches=answer.batches)
        return pb.PushManyResponse(results=results)

    async def Pull(
        self, request: pb.PullRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.PullResponse]:
        try:
            wire.check_room(request.room)
            items = self._engine.pull(
                request.room,
                request.since,
                request.until,
                request.page_size,
                request.changes_only,
                request.epoch,
            )
            async with contextlib.aclosing(items):
                async for item in items:
                    if isinstance(item, PullHead):
                        yield pb.PullResponse(head=item.head, epoch=item.epoch)
                    elif isinstance(item, SnapshotPage):
                        yield pb.PullResponse(snapshot=wire.snapshot_chunk(item))
                    else:
                        yield pb.PullResponse(changes=wire.change_batch(request.room, item))
        except Exception as error:
            await _fail(context, error)

    async def Head(
        self, request: pb.HeadRequest, context: grpc.aio.ServicerContext
    ) -> pb.HeadResponse:
        try:
            wire.check_room(request.room)
            room = (await self._engine.room_heads([request.room]))[request.room]
            return pb.HeadResponse(head=room.head, epoch=room.epoch.current)
        except Exception as error:
            await _fail(context, error)
            raise

    async def ReadRecords(
        self, request: pb.ReadRecordsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReadRecordsResponse:
        try:
            args = records_wire.read_records_args(request)
            page = await self._engine.records_page(request.room, *args)
            return records_wire.records_response(page)
        except Exception as error:
            await _fail(context, error)
            raise

    async def GetRecord(
        self, request: pb.GetRecordRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRecordResponse:
        try:
            wire.check_room(request.room)
            records_wire.check_record_key(request.collection, request.key)
            row = await self._engine.record(request.room, request.collection, request.key)
            return records_wire.record_response(row)
        except Exception as error:
            await _fail(context, error)
            raise

    async def ListConflicts(
        self, request: pb.ListConflictsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListConflictsResponse:
        try:
            wire.check_room(request.room)
            rows = await self._engine.conflicts(
                request.room, request.before, wire.list_conflicts_limit(request.limit)
            )
            return pb.ListConflictsResponse(conflicts=[wire.conflict_record(r) for r in rows])
        except Exception as error:
            await _fail(context, error)
            raise

    async def Subscribe(
        self,
        request_iterator: AsyncIterator[pb.SubscribeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.SubscribeResponse]:
        stream = RoomStream(self._bus, self._engine)
        self._rechecker.follow(stream)
        reader = asyncio.ensure_future(self._follow_requests(request_iterator, stream))
        overflow = asyncio.ensure_future(stream.overflowed.wait())
        closing = asyncio.ensure_future(self._closing.wait())
        batches = asyncio.ensure_future(stream.next())
        try:
            while True:
                await asyncio.wait(
                    {batches, reader, overflow, closing}, return_when=asyncio.FIRST_COMPLETED
                )
                if overflow.done():
                    raise Unavailable("subscriber fell behind; resubscribe and pull")
                if batches.done():
                    ready = batches.result()
                    if stream.batched:
                        for part in split_by_bytes(ready, pb.ChangeBatch.ByteSize):
                            yield pb.SubscribeResponse(batches=part)
                    else:
                        for batch in ready:
                            yield pb.SubscribeResponse(changes=batch)
                    stream.written(ready)
                    batches = asyncio.ensure_future(stream.next())
                elif reader.done():
                    reader.result()
                    return
                elif closing.done():
                    return
        except Exception as error:
            await _fail(context, error)
        finally:
            for task in (batches, reader, overflow, closing):
                task.cancel()
            if stream.subscriber and self._subscribers.get(stream.subscriber) is stream:
                del self._subscribers[stream.subscriber]
            self._rechecker.forget(stream)
            await stream.close()

    async def _follow_requests(
        self, requests: AsyncIterator[pb.SubscribeRequest], stream: RoomStream
    ) -> None:
        async for request in requests:
            if request.batched:
                stream.batched = True
            if (
                request.subscriber
                and not stream.subscriber
                and len(request.subscriber) <= MAX_SUBSCRIBER_ID
                and request.subscriber not in self._subscribers
            ):
                stream.subscriber = request.subscriber
                self._subscribers[request.subscriber] = stream
            if request.add:
                await stream.add_many([wire.check_room(room) for room in request.add])
            for room in request.remove:
                await stream.remove(room)

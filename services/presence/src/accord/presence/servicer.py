"""The gRPC face of presence: translate wire ↔ model, map errors to status codes.

Error mapping (``accord-reason`` trailing metadata in brackets):

- malformed input, or a Join of a session as another user → INVALID_ARGUMENT [BAD_REQUEST]
- JSON over its size limit, or a session over its room limit → RESOURCE_EXHAUSTED [TOO_LARGE]
- a broadcast over its sender's rate that cannot be coalesced (no channel, or
  too many channels waiting) → RESOURCE_EXHAUSTED [RATE_LIMITED], with
  ``accord-retry-after-ms`` in the trailing metadata
- Update of a session not in the room → NOT_FOUND [NOT_SUBSCRIBED]; the caller
  joins instead (Update carries no user info, so it cannot join by itself)
- a Watch stream whose queue filled up, or the service shutting down →
  RESOURCE_EXHAUSTED / UNAVAILABLE [UNAVAILABLE]; the caller watches again
  and re-lists its rooms
- store unreachable → UNAVAILABLE [UNAVAILABLE]; anything else → INTERNAL [INTERNAL]
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from accord.api.presence.v1 import presence_pb2 as pb
from accord.api.presence.v1 import presence_pb2_grpc
from accord.common.grpcutil import REASON_KEY, abort
from accord.common.rules import RETRY_AFTER_KEY
from accord.presence import metrics, validation
from accord.presence.broadcaster import Broadcaster
from accord.presence.hub import Subscription, WatchOverflow
from accord.presence.model import (
    Event,
    EventKind,
    LeaveReason,
    NotPresent,
    Peer,
    TooManyRooms,
    UserMismatch,
)
from accord.presence.store import PresenceStore, StoreUnavailable
from accord.presence.throttle import RateLimited

log = logging.getLogger(__name__)

SERVICE_NAME = "accord.presence.v1.Presence"


class ShuttingDown(Exception):
    """This replica is stopping; watchers should move to another one."""


_KINDS: dict[EventKind, pb.EventKind] = {
    EventKind.JOIN: pb.EVENT_KIND_JOIN,
    EventKind.UPDATE: pb.EVENT_KIND_UPDATE,
    EventKind.LEAVE: pb.EVENT_KIND_LEAVE,
    EventKind.BROADCAST: pb.EVENT_KIND_BROADCAST,
    EventKind.WATCHING: pb.EVENT_KIND_WATCHING,
    EventKind.USER_ONLINE: pb.EVENT_KIND_USER_ONLINE,
    EventKind.USER_OFFLINE: pb.EVENT_KIND_USER_OFFLINE,
}
_REASONS: dict[LeaveReason, pb.LeaveReason] = {
    LeaveReason.UNSUBSCRIBE: pb.LEAVE_REASON_UNSUBSCRIBE,
    LeaveReason.DISCONNECT: pb.LEAVE_REASON_DISCONNECT,
    LeaveReason.TIMEOUT: pb.LEAVE_REASON_TIMEOUT,
}
_REASONS_FROM_PROTO: dict[int, LeaveReason] = {int(v): k for k, v in _REASONS.items()}


def peer_to_proto(peer: Peer) -> pb.Peer:
    return pb.Peer(
        session_id=peer.session_id,
        user_id=peer.user_id,
        client_id=peer.client_id,
        user_json=peer.user_json,
        state_json=peer.state_json,
    )


def event_to_proto(event: Event) -> pb.PresenceEvent:
    message = pb.PresenceEvent(room=event.room, kind=_KINDS[event.kind])
    if event.peer is not None:
        message.peer.CopyFrom(peer_to_proto(event.peer))
    if event.reason is not None:
        message.reason = _REASONS[event.reason]
    if event.kind is EventKind.BROADCAST:
        message.from_session_id = event.from_session_id
        message.data_json = event.data_json
        message.channel = event.channel
    return message


def _leave_reason(value: int, room: str | None) -> LeaveReason:
    if value == pb.LEAVE_REASON_UNSPECIFIED:
        return LeaveReason.UNSUBSCRIBE if room is not None else LeaveReason.DISCONNECT
    reason = _REASONS_FROM_PROTO.get(value)
    if reason is None:
        raise validation.Invalid(f"unknown leave reason {value}")
    return reason


def _failure(error: Exception) -> tuple[grpc.StatusCode, str, str]:
    """The status code, ``accord-reason`` and message of a failed call."""
    if isinstance(error, validation.Invalid | UserMismatch):
        return grpc.StatusCode.INVALID_ARGUMENT, "BAD_REQUEST", str(error)
    if isinstance(error, validation.TooLarge | TooManyRooms):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_LARGE", str(error)
    if isinstance(error, NotPresent):
        return grpc.StatusCode.NOT_FOUND, "NOT_SUBSCRIBED", str(error)
    if isinstance(error, WatchOverflow):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "UNAVAILABLE", str(error)
    if isinstance(error, StoreUnavailable | ShuttingDown):
        return grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", str(error)
    log.error("presence call failed", exc_info=error)
    return grpc.StatusCode.INTERNAL, "INTERNAL", "internal error"


@asynccontextmanager
async def _status(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    """Turn the block's errors into a status code plus ``accord-reason``."""
    try:
        yield
        return
    except grpc.aio.AbortError:
        raise
    except RateLimited as error:
        retry_after_ms = str(max(1, round(error.retry_after * 1000)))
        context.set_trailing_metadata(
            ((REASON_KEY, "RATE_LIMITED"), (RETRY_AFTER_KEY, retry_after_ms))
        )
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
    except Exception as error:
        code, reason, message = _failure(error)
    await abort(context, code, reason, message)


MAX_UPDATE_MANY = 1000
WATCH_BATCH = 500
"""Events at most in one ``WatchBatched`` message."""


class PresenceServicer(presence_pb2_grpc.PresenceServicer):
    def __init__(
        self,
        store: PresenceStore,
        broadcaster: Broadcaster,
        *,
        max_state_bytes: int,
        watch_queue_size: int,
    ) -> None:
        self._store = store
        self._broadcaster = broadcaster
        self._max_state_bytes = max_state_bytes
        self._watch_queue_size = watch_queue_size
        self._watches: set[Subscription] = set()
        self._closing = False

    def end_watches(self) -> None:
        """End every Watch stream with UNAVAILABLE, and any opened from now on."""
        self._closing = True
        for watch in self._watches:
            watch.fail(ShuttingDown("presence replica is shutting down"))

    async def Join(
        self, request: pb.JoinRequest, context: grpc.aio.ServicerContext
    ) -> pb.JoinResponse:
        async with _status(context):
            await self._join(request)
        return pb.JoinResponse()

    async def JoinMany(
        self, request: pb.JoinManyRequest, context: grpc.aio.ServicerContext
    ) -> pb.JoinManyResponse:
        async with _status(context):
            if len(request.joins) > MAX_UPDATE_MANY:
                raise validation.Invalid(f"more than {MAX_UPDATE_MANY} joins in one JoinMany call")
            results = []
            for join in request.joins:
                try:
                    await self._join(join)
                except Exception as error:
                    _, reason, message = _failure(error)
                    results.append(pb.JoinResult(reason=reason, message=message))
                else:
                    results.append(pb.JoinResult())
        return pb.JoinManyResponse(results=results)

    async def _join(self, request: pb.JoinRequest) -> None:
        room = validation.room(request.room)
        peer = validation.peer(
            Peer(
                session_id=request.peer.session_id,
                user_id=request.peer.user_id,
                client_id=request.peer.client_id,
                user_json=request.peer.user_json,
                state_json=request.peer.state_json,
            ),
            self._max_state_bytes,
        )
        edge_id = validation.identifier(request.edge_id, "edge_id", required=False)
        event = await self._store.join(room, peer, edge_id)
        if event.kind is EventKind.JOIN:
            metrics.JOINS.inc()

    async def Update(
        self, request: pb.UpdateRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateResponse:
        async with _status(context):
            await self._update(request)
        return pb.UpdateResponse()

    def _checked(self, request: pb.UpdateRequest) -> tuple[str, str, str]:
        """(room, session_id, state_json) of a valid update; raises ``validation.Invalid``
        or ``validation.TooLarge``."""
        room = validation.room(request.room)
        session_id = validation.session_id(request.session_id)
        state = validation.json_object(request.state_json, "state_json", self._max_state_bytes)
        return room, session_id, state

    async def _update(self, request: pb.UpdateRequest) -> None:
        await self._store.update(*self._checked(request))

    async def UpdateMany(
        self, request: pb.UpdateManyRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateManyResponse:
        async with _status(context):
            if len(request.updates) > MAX_UPDATE_MANY:
                raise validation.Invalid(
                    f"more than {MAX_UPDATE_MANY} updates in one UpdateMany call"
                )
            # Each update is judged on its own; the valid ones go to the store in one
            # round trip, in the order given (so one session's apply in order).
            updates = list(request.updates)
            failures: dict[int, Exception] = {}
            valid: list[tuple[str, str, str]] = []
            positions: list[int] = []
            for index, update in enumerate(updates):
                try:
                    valid.append(self._checked(update))
                except (validation.Invalid, validation.TooLarge) as error:
                    failures[index] = error
                    continue
                positions.append(index)
            try:
                outcomes: list[Event | NotPresent] | None = await self._store.update_many(valid)
            except StoreUnavailable as error:
                outcomes = None
                for index in positions:
                    failures[index] = error
            for index, outcome in zip(positions, outcomes or (), strict=False):
                if isinstance(outcome, NotPresent):
                    failures[index] = outcome
        results = []
        for index in range(len(updates)):
            failure = failures.get(index)
            if failure is None:
                results.append(pb.UpdateResult())
            else:
                _, reason, message = _failure(failure)
                results.append(pb.UpdateResult(reason=reason, message=message))
        return pb.UpdateManyResponse(results=results)

    async def Leave(
        self, request: pb.LeaveRequest, context: grpc.aio.ServicerContext
    ) -> pb.LeaveResponse:
        async with _status(context):
            room = validation.room(request.room) if request.room else None
            session_id = validation.session_id(request.session_id)
            reason = _leave_reason(request.reason, room)
            rooms = await self._store.leave(session_id, room, reason)
            if rooms:
                metrics.LEAVES.labels(reason.value).inc(len(rooms))
        return pb.LeaveResponse(rooms=rooms)

    async def Heartbeat(
        self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> pb.HeartbeatResponse:
        async with _status(context):
            edge_id = validation.identifier(request.edge_id, "edge_id", required=False)
            session_ids = [validation.session_id(sid) for sid in request.session_ids]
            metrics.HEARTBEAT_BATCH.observe(len(session_ids))
            unknown = await self._store.heartbeat(edge_id, session_ids)
        return pb.HeartbeatResponse(unknown_session_ids=unknown)

    async def List(
        self, request: pb.ListRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListResponse:
        async with _status(context):
            room = validation.room(request.room)
            cursor = validation.identifier(request.cursor, "cursor", required=False)
            if request.counts_only:
                counts = await self._store.counts(room)
                return pb.ListResponse(count=counts.sessions, user_count=counts.users)
            page = await self._store.list(room, request.limit, cursor)
        return pb.ListResponse(
            peers=[peer_to_proto(peer) for peer in page.peers],
            next_cursor=page.next_cursor,
            count=page.count,
            user_count=page.users,
        )

    async def Broadcast(
        self, request: pb.BroadcastRequest, context: grpc.aio.ServicerContext
    ) -> pb.BroadcastResponse:
        async with _status(context):
            room = validation.room(request.room)
            sender = validation.identifier(
                request.from_session_id, "from_session_id", required=False
            )
            # Any JSON value, as in the client protocol's broadcast.
            data = validation.json_value(
                request.data_json, "data_json", validation.MAX_BROADCAST_BYTES
            )
            channel = validation.channel(request.channel)
            deferred = await self._broadcaster.send(room, sender, data, channel)
        return pb.BroadcastResponse(deferred=deferred)

    async def Watch(
        self,
        request_iterator: AsyncIterator[pb.WatchRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.PresenceEvent]:
        async for events in self._watch(request_iterator, context, 1):
            yield event_to_proto(events[0])

    async def WatchBatched(
        self,
        request_iterator: AsyncIterator[pb.WatchRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.PresenceEvents]:
        async for events in self._watch(request_iterator, context, WATCH_BATCH):
            yield pb.PresenceEvents(events=[event_to_proto(event) for event in events])

    async def _watch(
        self,
        request_iterator: AsyncIterator[pb.WatchRequest],
        context: grpc.aio.ServicerContext,
        most: int,
    ) -> AsyncIterator[list[Event]]:
        """The watch's events as they come: each time the next one and up to ``most`` - 1
        more already queued, in order."""
        async with (
            _status(context),
            self._store.subscription(self._watch_queue_size) as watch,
        ):
            self._watches.add(watch)
            if self._closing:
                watch.fail(ShuttingDown("presence replica is shutting down"))
            follower = asyncio.create_task(self._follow(request_iterator, watch))
            try:
                while True:
                    first = await watch.next()
                    yield [first, *watch.ready(most - 1)]
            finally:
                self._watches.discard(watch)
                follower.cancel()

    async def _follow(self, requests: AsyncIterator[pb.WatchRequest], watch: Subscription) -> None:
        """Apply room changes as they come; a bad one ends the stream with its error.

        The stream stays open after the caller stops sending: watching continues
        until the caller cancels the call. With ``ack``, each added room is
        confirmed in the stream once its events are sure to arrive, so a List
        issued after the confirmation cannot miss a change.
        """
        try:
            async for request in requests:
                removed = [validation.room(room) for room in request.remove]
                added = [validation.room(room) for room in request.add]
                await watch.remove(removed)
                await watch.add(added)
                if request.ack:
                    for room in added:
                        watch.offer(Event(room, EventKind.WATCHING))
        except Exception as error:
            watch.fail(error)

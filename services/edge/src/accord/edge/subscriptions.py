"""A session's room subscriptions: catch-up, presence join and watch, and their end.

Subscribing sends ``subscribed`` (with the head and the room's epoch), then the catch-up (missed
changes or a snapshot), then the presence ``sync``; the session is watched
before ``subscribed`` is sent, so every broadcast and presence event after it
reaches the client, and those that arrive before the ``sync`` follow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from accord.api.presence.v1 import presence_pb2 as ppb
from accord.common.tasks import set_within
from accord.edge.backends import to_protocol_error
from accord.edge.context import SessionContext
from accord.edge.protocol import Out, ProtocolError
from accord.edge.requests import Subscribe
from accord.edge.rooms import Subscription
from accord.edge.roster import Held
from accord.edge.signal import Signal

log = logging.getLogger(__name__)


class Owner(Protocol):
    """The session, as its subscriptions see it."""

    @property
    def session_id(self) -> str: ...

    def send(self, out: Out) -> None: ...

    def reply(self, message: dict[str, Any], request_id: int | None) -> None: ...

    def send_error(self, error: ProtocolError, request_id: int | None) -> None: ...

    def peer(self, state: dict[str, Any]) -> dict[str, Any]: ...

    def can_read(self, room: str) -> bool: ...


@dataclass(slots=True)
class RoomEntry:
    sub: Subscription
    presence: dict[str, Any] | None = None  # our state when joined to the room's presence
    # A join was sent, so a leave is owed when the room or session ends, even if the
    # join's answer never came (the session closed or unsubscribed meanwhile).
    joining: bool = False
    watching: bool = False
    task: asyncio.Task[None] | None = None
    # Set once `subscribed` (or the subscribe's error) is queued: replies to
    # pushes for the room never overtake it.
    answered: Signal = field(default_factory=Signal)


def _failure(error: Exception, room: str) -> ProtocolError:
    if isinstance(error, ProtocolError):
        return error
    if isinstance(error, grpc.aio.AioRpcError):
        return to_protocol_error(error, room)
    if isinstance(error, TimeoutError):
        return ProtocolError("UNAVAILABLE", "the service is unavailable, try again", room=room)
    log.error("subscribe to %s failed", room, exc_info=error)
    return ProtocolError("INTERNAL", "internal error", room=room)


class Subscriptions:
    __slots__ = ("_ctx", "_owner", "rooms")

    def __init__(self, ctx: SessionContext, owner: Owner) -> None:
        self._ctx = ctx
        self._owner = owner
        self.rooms: dict[str, RoomEntry] = {}

    def __len__(self) -> int:
        return len(self.rooms)

    def __contains__(self, room: object) -> bool:
        return room in self.rooms

    def __iter__(self) -> Iterator[str]:
        return iter(self.rooms)

    def joined(self) -> bool:
        return any(e.presence is not None for e in self.rooms.values())

    def entry(self, room: str) -> RoomEntry:
        entry = self.rooms.get(room)
        if entry is None:
            raise ProtocolError("NOT_SUBSCRIBED", f"not subscribed to room {room}", room=room)
        return entry

    def open(self, request: Subscribe, request_id: int | None) -> None:
        """Start subscribing (the request is valid and allowed); answers come later."""
        entry = RoomEntry(self._ctx.hub.open(request.room, self._owner))
        self.rooms[request.room] = entry
        entry.task = asyncio.create_task(self._start(request, entry, request_id))

    async def _start(self, request: Subscribe, entry: RoomEntry, request_id: int | None) -> None:
        owner, ctx = self._owner, self._ctx
        room, presence = request.room, request.presence
        roster = ctx.roster
        answered = False
        # Watched before `subscribed` is sent, so every event after it reaches the
        # client; held back until the `sync` is sent, so it comes after both.
        watcher = Held(owner)
        roster.watch(room, watcher, request.users)
        entry.watching = True

        def on_head(head: int, epoch: str) -> None:
            nonlocal answered
            answered = True
            owner.reply(
                {"type": "subscribed", "room": room, "head": head, "epoch": epoch}, request_id
            )
            entry.answered.set()

        try:
            if roster.connected:
                # Presence is up: from its confirmation on, every event reaches this edge.
                with contextlib.suppress(TimeoutError):
                    await roster.confirmed(room)
            await ctx.hub.catch_up(entry.sub, request.since, request.epoch, on_head)
            if presence is not None:
                entry.joining = True
                await ctx.presence.join(room, owner.peer(presence))
                entry.presence = presence
            owner.send(Out(await roster.sync(room)))
            watcher.release()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failure = _failure(error, room)
            if entry.watching:
                entry.watching = False
                roster.unwatch(room, owner)
            if answered:
                # The data subscription stays; only presence failed.
                if entry.sub.live:
                    owner.send_error(failure, None)
                    return
                failure.message = f"subscription to {room} ended: {failure.message}"
            if self.rooms.get(room) is entry:
                del self.rooms[room]
                ctx.hub.close(entry.sub)
            owner.send_error(failure, None if answered else request_id)
            entry.answered.set()
        finally:
            if entry.task is asyncio.current_task():
                entry.task = None  # done: nothing to wait for or cancel (and less to keep)

    async def answered(self, room: str, entry: RoomEntry) -> None:
        """Wait until ``subscribed`` (or the subscribe's error) is queued."""
        if not entry.answered.is_set():
            await set_within(entry.answered, self._ctx.settings.rpc_timeout)
            self._still(room, entry)

    async def started(self, room: str, entry: RoomEntry) -> None:
        """Wait for the subscribe's own presence work (join, watch) to finish first."""
        if entry.task is not None and not entry.task.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._ctx.settings.rpc_timeout):
                    await asyncio.shield(entry.task)
        self._still(room, entry)

    def _still(self, room: str, entry: RoomEntry) -> None:
        if self.rooms.get(room) is not entry:
            raise ProtocolError("NOT_SUBSCRIBED", f"the subscription to {room} failed", room=room)

    def _end(self, room: str, entry: RoomEntry) -> None:
        if entry.task is not None and not entry.task.done():
            entry.task.cancel()
        self._ctx.hub.close(entry.sub)
        if entry.watching:
            self._ctx.roster.unwatch(room, self._owner)

    async def drop(self, room: str, reason: ppb.LeaveReason) -> None:
        entry = self.rooms.pop(room)
        self._end(room, entry)
        if entry.joining:
            try:
                await self._ctx.presence.leave(room, self._owner.session_id, reason)
            except grpc.aio.AioRpcError as error:
                log.warning("presence leave failed: %s", error.code().name)

    def end_all(self) -> bool:
        """End every subscription (the session is over); whether a presence leave is owed."""
        joined = False
        for room, entry in list(self.rooms.items()):
            self._end(room, entry)
            joined = joined or entry.joining
        self.rooms.clear()
        return joined

    async def enforce_access(self) -> int:
        """End the subscriptions the session may no longer read; how many ended."""
        lost = [r for r in self.rooms if not self._owner.can_read(r)]
        for room in lost:
            await self.drop(room, ppb.LEAVE_REASON_UNSUBSCRIBE)
            self._owner.send_error(
                ProtocolError("FORBIDDEN", f"read access to room {room} was revoked", room=room),
                None,
            )
        return len(lost)

    async def rejoin(self) -> list[str]:
        """Join presence again after the presence service forgot this session."""
        rooms = []
        for room, entry in list(self.rooms.items()):
            if entry.presence is not None:
                await self._ctx.presence.join(room, self._owner.peer(entry.presence))
                rooms.append(room)
        return rooms

"""Presence on the edge: one Watch stream to presence, fanned out per room.

Events for a peer are sent to every local watcher of the room except the
peer's own session; broadcasts to every watcher except the sender. Each event
is encoded once for all of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import grpc

from accord.api.presence.v1 import presence_pb2 as ppb
from accord.edge.backends import PresenceClient, peer_dict
from accord.edge.feed import Feed
from accord.edge.protocol import Out
from accord.edge.rooms import Subscriber

log = logging.getLogger(__name__)

EVENT_NAMES = {
    ppb.EVENT_KIND_JOIN: "join",
    ppb.EVENT_KIND_UPDATE: "update",
    ppb.EVENT_KIND_LEAVE: "leave",
}
REASON_NAMES = {
    ppb.LEAVE_REASON_UNSUBSCRIBE: "unsubscribe",
    ppb.LEAVE_REASON_DISCONNECT: "disconnect",
    ppb.LEAVE_REASON_TIMEOUT: "timeout",
}


class _Watched:
    __slots__ = ("confirmed", "sessions")

    def __init__(self) -> None:
        self.sessions: dict[str, Subscriber] = {}
        self.confirmed = asyncio.Event()


class Roster:
    def __init__(self, presence: PresenceClient, confirm_timeout: float) -> None:
        self.presence = presence
        self.confirm_timeout = confirm_timeout
        self.rooms: dict[str, _Watched] = {}
        self._resync: set[str] = set()
        self.feed: Feed[ppb.PresenceEvent] = Feed(
            "presence",
            presence.watch,
            lambda add, remove: ppb.WatchRequest(add=add, remove=remove, ack=True),
            self._on_event,
            self._on_reconnect,
        )

    async def __aenter__(self) -> Roster:
        await self.feed.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.feed.__aexit__(*exc)

    async def _on_reconnect(self) -> None:
        # Events may have been lost while the stream was down: once each room is
        # watched again, its watchers get a fresh sync.
        for name, watched in self.rooms.items():
            watched.confirmed.clear()
            self._resync.add(name)

    async def _send_sync(self, room: str) -> None:
        watched = self.rooms.get(room)
        if watched is None:
            return
        try:
            peers = await self.presence.list(room)
        except grpc.aio.AioRpcError as error:
            log.warning("presence resync of %s failed: %s", room, error.code().name)
            return
        out = Out({"type": "presence", "room": room, "event": "sync", "peers": peers})
        for session in watched.sessions.values():
            session.send(out)

    def _on_event(self, event: ppb.PresenceEvent) -> None:
        watched = self.rooms.get(event.room)
        if watched is None:
            return
        if event.kind == ppb.EVENT_KIND_WATCHING:
            watched.confirmed.set()
            if event.room in self._resync:
                self._resync.discard(event.room)
                asyncio.create_task(self._send_sync(event.room))
            return
        message: dict[str, Any]
        if event.kind == ppb.EVENT_KIND_BROADCAST:
            message = {
                "type": "broadcast",
                "room": event.room,
                "from": event.from_session_id,
                "data": json.loads(event.data_json) if event.data_json else None,
            }
            skip = event.from_session_id
            key = ("broadcast", event.room, skip)
        elif event.kind in EVENT_NAMES:
            message = {
                "type": "presence",
                "room": event.room,
                "event": EVENT_NAMES[event.kind],
                "peer": peer_dict(event.peer),
            }
            if event.kind == ppb.EVENT_KIND_LEAVE:
                message["reason"] = REASON_NAMES.get(event.reason, "disconnect")
            skip = event.peer.session_id
            key = ("presence", event.room, skip)
        else:
            return
        out = Out(message, key)
        for session_id, session in watched.sessions.items():
            if session_id != skip:
                session.send(out)

    async def watch(self, room: str, session: Subscriber) -> list[dict[str, Any]]:
        """Start forwarding ``room``'s events to ``session``; returns the current peers.

        The peers are listed only once the Watch stream confirms the room, so
        no event between the list and the first forwarded event is lost.
        """
        watched = self.rooms.get(room)
        if watched is None:
            watched = self.rooms[room] = _Watched()
            self.feed.add(room)
        try:
            await asyncio.wait_for(watched.confirmed.wait(), self.confirm_timeout)
            peers = await self.presence.list(room)
        except BaseException:
            if not watched.sessions and self.rooms.get(room) is watched:
                del self.rooms[room]
                self.feed.remove(room)
            raise
        watched.sessions[session.session_id] = session
        return peers

    def unwatch(self, room: str, session: Subscriber) -> None:
        watched = self.rooms.get(room)
        if watched is None:
            return
        watched.sessions.pop(session.session_id, None)
        if not watched.sessions:
            del self.rooms[room]
            self.feed.remove(room)

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
from accord.common.tasks import spawn, until_set
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


USER_EVENTS = {
    ppb.EVENT_KIND_USER_ONLINE: "user_online",
    ppb.EVENT_KIND_USER_OFFLINE: "user_offline",
}


def sync_message(room: str, page: dict[str, Any]) -> dict[str, Any]:
    return {"type": "presence", "room": room, "event": "sync", **page}


def _peer_event(event: ppb.PresenceEvent, name: str, left: bool) -> dict[str, Any]:
    """A ``presence`` message about one peer (with the reason when it left)."""
    message: dict[str, Any] = {
        "type": "presence",
        "room": event.room,
        "event": name,
        "peer": peer_dict(event.peer),
    }
    if left:
        message["reason"] = REASON_NAMES.get(event.reason, "disconnect")
    return message


class Held:
    """A watcher whose events wait until ``release``, then pass straight through.

    A subscriber is watched before it is told ``subscribed``, so that no event
    after ``subscribed`` is lost; what arrives before its ``sync`` is sent
    follows the sync (events the sync already reflects repeat: joins and
    updates are upserts, a leave of an absent peer is a no-op).
    """

    __slots__ = ("_held", "_target", "session_id")

    def __init__(self, target: Subscriber) -> None:
        self._target = target
        self.session_id = target.session_id
        self._held: list[Out] | None = []

    def send(self, out: Out) -> None:
        if self._held is None:
            self._target.send(out)
        else:
            self._held.append(out)

    def release(self) -> None:
        held, self._held = self._held, None
        for out in held or ():
            self._target.send(out)


class _Watched:
    __slots__ = ("confirmed", "sessions", "user_watchers")

    def __init__(self) -> None:
        self.sessions: dict[str, Subscriber] = {}
        self.user_watchers: set[str] = set()  # sessions that asked for user events
        self.confirmed = asyncio.Event()


class Roster:
    def __init__(self, presence: PresenceClient, confirm_timeout: float, sync_limit: int) -> None:
        self.presence = presence
        self.confirm_timeout = confirm_timeout
        self.sync_limit = sync_limit
        self.rooms: dict[str, _Watched] = {}
        self._resync: set[str] = set()
        self.feed: Feed[ppb.PresenceEvents] = Feed(
            "presence",
            presence.watch,
            lambda add, remove: ppb.WatchRequest(add=add, remove=remove, ack=True),
            self._on_events,
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
            page = await self.presence.list(room, limit=self.sync_limit)
        except grpc.aio.AioRpcError as error:
            log.warning("presence resync of %s failed: %s (retried)", room, error.code().name)
            self._resync.add(room)
            return
        out = Out(sync_message(room, page))
        for session in watched.sessions.values():
            session.send(out)

    def resync(self, rooms: list[str]) -> None:
        """Send the watchers of ``rooms`` a fresh sync (e.g. after presence forgot sessions)."""
        for room in rooms:
            if room in self.rooms:
                spawn(self._send_sync(room))

    def retry_resyncs(self) -> None:
        """Retry syncs that failed, for rooms whose Watch is confirmed."""
        due = [r for r in self._resync if r in self.rooms and self.rooms[r].confirmed.is_set()]
        for room in due:
            self._resync.discard(room)
        self.resync(due)

    def _on_events(self, message: ppb.PresenceEvents) -> None:
        for event in message.events:
            self._on_event(event)

    def _on_event(self, event: ppb.PresenceEvent) -> None:
        watched = self.rooms.get(event.room)
        if watched is None:
            return
        if event.kind == ppb.EVENT_KIND_WATCHING:
            watched.confirmed.set()
            if event.room in self._resync:
                self._resync.discard(event.room)
                spawn(self._send_sync(event.room))
            return
        message: dict[str, Any]
        key: tuple[str, ...]
        if event.kind in USER_EVENTS:
            message = _peer_event(
                event, USER_EVENTS[event.kind], event.kind == ppb.EVENT_KIND_USER_OFFLINE
            )
            out = Out(message)
            for session_id in watched.user_watchers:
                if session_id != event.peer.session_id:
                    watched.sessions[session_id].send(out)
            return
        if event.kind == ppb.EVENT_KIND_BROADCAST:
            message = {
                "type": "broadcast",
                "room": event.room,
                # No sender session: a backend's broadcast through the server API.
                "from": event.from_session_id or "server",
                "data": json.loads(event.data_json) if event.data_json else None,
            }
            if event.channel:
                message["channel"] = event.channel
            skip = event.from_session_id
            key = ("broadcast", event.room, skip, event.channel)
        elif event.kind in EVENT_NAMES:
            message = _peer_event(
                event, EVENT_NAMES[event.kind], event.kind == ppb.EVENT_KIND_LEAVE
            )
            skip = event.peer.session_id
            key = ("presence", event.room, skip)
        else:
            return
        out = Out(message, key)
        for session_id, session in watched.sessions.items():
            if session_id != skip:
                session.send(out)

    def watch(self, room: str, session: Subscriber, users: bool = False) -> None:
        """Forward ``room``'s events to ``session`` from now on (the Watch starts if need be).

        Give a ``Held`` watcher to keep the events back until the session has
        sent what must come first (``subscribed``, the ``sync``).
        """
        watched = self.rooms.get(room)
        if watched is None:
            watched = self.rooms[room] = _Watched()
            self.feed.add(room)
        watched.sessions[session.session_id] = session
        if users:
            watched.user_watchers.add(session.session_id)

    async def confirmed(self, room: str) -> None:
        """Wait until presence confirms the Watch of ``room`` (raises ``TimeoutError``).

        From then on every event of the room reaches this edge.
        """
        watched = self.rooms.get(room)
        if watched is not None:
            await until_set(watched.confirmed, self.confirm_timeout)

    @property
    def connected(self) -> bool:
        return self.feed.connected.is_set()

    async def sync(self, room: str) -> dict[str, Any]:
        """``room``'s ``sync`` message, listed once the Watch is confirmed.

        Big rooms list the first ``sync_limit`` peers; ``next_cursor`` pages on.
        """
        await self.confirmed(room)
        page = await self.presence.list(room, limit=self.sync_limit)
        return sync_message(room, page)

    def unwatch(self, room: str, session: Subscriber) -> None:
        watched = self.rooms.get(room)
        if watched is None:
            return
        watched.sessions.pop(session.session_id, None)
        watched.user_watchers.discard(session.session_id)
        if not watched.sessions:
            del self.rooms[room]
            self.feed.remove(room)

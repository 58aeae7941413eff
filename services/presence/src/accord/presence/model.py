"""Presence rules, free of I/O: rooms hold sessions, sessions hold a TTL.

A session exists while it is present in at least one room. Every join, update
and heartbeat pushes its deadline to ``now + ttl``; a sweep turns sessions whose
deadline has passed into one ``leave (timeout)`` per room.

Users are a view over sessions: a user is online in a room while at least one
of its sessions is there, so a user with three tabs open is one user, and its
``user_offline`` comes once, after the leave of its last session. A session
belongs to one user for its whole life. Time is an argument,
so the rules are tested without clocks. The in-memory store runs these rules
directly; the Redis store runs the same rules as Lua scripts, and one contract
test suite holds both to them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum


class LeaveReason(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    DISCONNECT = "disconnect"
    TIMEOUT = "timeout"


class EventKind(StrEnum):
    JOIN = "join"
    UPDATE = "update"
    LEAVE = "leave"
    BROADCAST = "broadcast"
    # Not a presence change: tells one Watch stream that a room is now watched.
    WATCHING = "watching"
    USER_ONLINE = "user_online"
    USER_OFFLINE = "user_offline"


@dataclass(frozen=True, slots=True)
class Peer:
    session_id: str
    user_id: str = ""
    client_id: str = ""
    user_json: str = "{}"
    state_json: str = "{}"


@dataclass(frozen=True, slots=True)
class Event:
    room: str
    kind: EventKind
    peer: Peer | None = None
    reason: LeaveReason | None = None
    from_session_id: str = ""
    data_json: str = ""
    channel: str = ""


@dataclass(frozen=True, slots=True)
class Counts:
    sessions: int
    users: int


@dataclass(frozen=True, slots=True)
class Page:
    peers: tuple[Peer, ...]
    next_cursor: str
    count: int
    users: int = 0


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep did: sessions expired and the leave events it emitted."""

    sessions: int
    events: tuple[Event, ...]


class PresenceError(Exception):
    """A request the presence rules refuse."""


class NotPresent(PresenceError):
    """The session is not in the room (Update needs a prior Join)."""


class TooManyRooms(PresenceError):
    """Joining would put the session in more rooms than allowed."""


class UserMismatch(PresenceError):
    """The session is already present as another user."""


def join_event(room: str, peer: Peer, rejoined: bool) -> Event:
    return Event(room, EventKind.UPDATE if rejoined else EventKind.JOIN, peer)


def broadcast_event(room: str, from_session_id: str, data_json: str, channel: str = "") -> Event:
    return Event(
        room,
        EventKind.BROADCAST,
        from_session_id=from_session_id,
        data_json=data_json,
        channel=channel,
    )


def user_key(peer: Peer) -> str:
    """Whose session this is: its user, or the session itself when it has no user id."""
    return f"u:{peer.user_id}" if peer.user_id else f"s:{peer.session_id}"


@dataclass(slots=True)
class _Session:
    user: str
    rooms: set[str] = field(default_factory=set)
    edge_id: str = ""
    deadline: float = 0.0


class Presence:
    """Every room's sessions and every session's rooms and deadline."""

    def __init__(self, ttl: float, max_rooms: int) -> None:
        self.ttl = ttl
        self.max_rooms = max_rooms
        self._rooms: dict[str, dict[str, Peer]] = {}
        # Session ids of each room, sorted, so that List pages by cursor.
        self._order: dict[str, list[str]] = {}
        self._sessions: dict[str, _Session] = {}
        # Per room, each present user's number of sessions there.
        self._users: dict[str, dict[str, int]] = {}
        # Each known user's number of sessions (in any room).
        self._user_sessions: dict[str, int] = {}

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    @property
    def user_count(self) -> int:
        return len(self._user_sessions)

    def counts(self, room: str) -> Counts:
        return Counts(len(self._order.get(room, ())), len(self._users.get(room, ())))

    def rooms_of(self, session_id: str) -> frozenset[str]:
        session = self._sessions.get(session_id)
        return frozenset(session.rooms) if session else frozenset()

    def join(self, room: str, peer: Peer, edge_id: str, now: float) -> list[Event]:
        """Add or replace ``peer``: JOIN (then USER_ONLINE for a new user), or UPDATE."""
        user = user_key(peer)
        session = self._sessions.get(peer.session_id)
        if session is not None and session.user != user:
            raise UserMismatch(f"session {peer.session_id} is present as another user")
        rejoined = session is not None and room in session.rooms
        if not rejoined and session is not None and len(session.rooms) >= self.max_rooms:
            raise TooManyRooms(f"session {peer.session_id} is already in {self.max_rooms} rooms")
        if session is None:
            session = self._sessions[peer.session_id] = _Session(user)
            self._user_sessions[user] = self._user_sessions.get(user, 0) + 1
        session.rooms.add(room)
        session.edge_id = edge_id
        session.deadline = now + self.ttl
        peers = self._rooms.setdefault(room, {})
        peers[peer.session_id] = peer
        events = [join_event(room, peer, rejoined)]
        if not rejoined:
            bisect.insort(self._order.setdefault(room, []), peer.session_id)
            users = self._users.setdefault(room, {})
            users[user] = users.get(user, 0) + 1
            if users[user] == 1:
                events.append(Event(room, EventKind.USER_ONLINE, peer))
        return events

    def update(self, room: str, session_id: str, state_json: str, now: float) -> Event:
        peers = self._rooms.get(room, {})
        current = peers.get(session_id)
        if current is None:
            raise NotPresent(f"session {session_id} is not in room {room}")
        peer = peers[session_id] = replace(current, state_json=state_json)
        self._sessions[session_id].deadline = now + self.ttl
        return Event(room, EventKind.UPDATE, peer)

    def leave(self, session_id: str, room: str | None, reason: LeaveReason) -> list[Event]:
        """Leave ``room``, or every room when it is None, in room order.

        Per room left: LEAVE, then USER_OFFLINE when it was the user's last session there.
        """
        session = self._sessions.get(session_id)
        if session is None:
            return []
        rooms = sorted(session.rooms) if room is None else [r for r in [room] if r in session.rooms]
        events: list[Event] = []
        for left in rooms:
            events.extend(self._remove(session_id, session.user, left, reason))
        session.rooms.difference_update(rooms)
        if not session.rooms:
            del self._sessions[session_id]
            remaining = self._user_sessions[session.user] - 1
            if remaining:
                self._user_sessions[session.user] = remaining
            else:
                del self._user_sessions[session.user]
        return events

    def heartbeat(self, edge_id: str, session_ids: Iterable[str], now: float) -> list[str]:
        """Refresh each known session; return the ids this presence does not know."""
        unknown: list[str] = []
        for session_id in session_ids:
            session = self._sessions.get(session_id)
            if session is None:
                unknown.append(session_id)
                continue
            session.deadline = now + self.ttl
            if edge_id:
                session.edge_id = edge_id
        return unknown

    def list(self, room: str, limit: int, cursor: str) -> Page:
        """Peers in session id order after ``cursor``; ``limit`` 0 means all."""
        order = self._order.get(room, [])
        start = bisect.bisect_right(order, cursor) if cursor else 0
        stop = len(order) if limit == 0 else min(len(order), start + limit)
        peers = self._rooms.get(room, {})
        page = tuple(peers[sid] for sid in order[start:stop])
        next_cursor = order[stop - 1] if stop < len(order) else ""
        return Page(page, next_cursor, len(order), len(self._users.get(room, ())))

    def expire(self, now: float, limit: int | None = None) -> Swept:
        """Every session whose deadline is at or before ``now`` leaves every room."""
        expired = [sid for sid, s in self._sessions.items() if s.deadline <= now]
        expired.sort(key=lambda sid: self._sessions[sid].deadline)
        if limit is not None:
            expired = expired[:limit]
        events: list[Event] = []
        for session_id in expired:
            events.extend(self.leave(session_id, None, LeaveReason.TIMEOUT))
        return Swept(len(expired), tuple(events))

    def _remove(
        self, session_id: str, user: str, room: str, reason: LeaveReason
    ) -> tuple[Event, ...]:
        peers = self._rooms[room]
        peer = peers.pop(session_id)
        order = self._order[room]
        del order[bisect.bisect_left(order, session_id)]
        if not peers:
            del self._rooms[room]
            del self._order[room]
        leave = Event(room, EventKind.LEAVE, peer, reason)
        users = self._users[room]
        users[user] -= 1
        if users[user]:
            return (leave,)
        del users[user]
        if not users:
            del self._users[room]
        return leave, Event(room, EventKind.USER_OFFLINE, peer, reason)

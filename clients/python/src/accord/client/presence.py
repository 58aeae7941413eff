"""A room's presence as the client sees it: peers, counts, and the ephemeral broadcasts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Broadcast", "Peer", "PresencePage", "PresenceView"]


@dataclass(frozen=True)
class Peer:
    """One session in the room's presence."""

    session_id: str
    user_id: str
    client_id: str
    user: dict[str, Any]
    state: dict[str, Any]

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Peer:
        return cls(
            str(raw.get("session_id", "")),
            str(raw.get("user_id", "")),
            str(raw.get("client_id", "")),
            dict(raw.get("user") or {}),
            dict(raw.get("state") or {}),
        )


@dataclass(frozen=True)
class Broadcast:
    """An ephemeral message from another session of the room."""

    data: Any
    sender: str
    channel: str | None = None

    @classmethod
    def from_wire(cls, message: Mapping[str, Any]) -> Broadcast:
        channel = message.get("channel")
        return cls(
            message.get("data"),
            str(message.get("from", "")),
            channel if isinstance(channel, str) else None,
        )


@dataclass(frozen=True)
class PresencePage:
    """One page of a room's presence (``presence_list``); ``next_cursor`` when there is more."""

    peers: list[Peer]
    count: int
    users: int
    next_cursor: str | None

    @classmethod
    def from_wire(cls, reply: Mapping[str, Any]) -> PresencePage:
        return cls(
            [Peer.from_wire(p) for p in reply.get("peers") or []],
            int(reply.get("count", 0)),
            int(reply.get("users", 0)),
            reply.get("next_cursor") or None,
        )


class PresenceView:
    """The peers of the first ``sync`` page plus the events since, and the counts."""

    def __init__(self) -> None:
        self.peers: dict[str, Peer] = {}
        self.count = 0
        self.users = 0
        self.cursor: str | None = None

    def clear(self) -> None:
        self.peers = {}

    def apply(self, message: Mapping[str, Any]) -> tuple[str, Peer | None]:
        """Take a ``presence`` message in; the event and its peer, for the callbacks."""
        event = str(message.get("event", ""))
        raw = message.get("peer")
        peer = Peer.from_wire(raw) if isinstance(raw, dict) and event != "sync" else None
        if event == "sync":
            self.peers = {p.session_id: p for p in map(Peer.from_wire, message.get("peers") or [])}
            self.count = int(message.get("count", len(self.peers)))
            self.users = int(message.get("users", len({p.user_id for p in self.peers.values()})))
            self.cursor = message.get("next_cursor") or None
        elif peer is not None and event == "leave":
            if self.peers.pop(peer.session_id, None) is not None:
                self.count = max(0, self.count - 1)
        elif peer is not None and event not in ("user_online", "user_offline"):
            if peer.session_id not in self.peers:
                self.count += 1
            self.peers[peer.session_id] = peer
        return event, peer

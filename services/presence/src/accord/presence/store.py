"""What the service needs from a presence store, and how stores are chosen.

A store holds who is present where, expires sessions, and carries events (and
ephemeral broadcasts) to the watchers on every replica that shares it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from accord.presence.hub import Subscription
from accord.presence.model import Counts, Event, LeaveReason, NotPresent, Page, Peer

Changed = Callable[[Sequence[Event]], None]
"""Told, in order, the events a change made by THIS replica caused (its own calls,
and the timeout leaves of the sweeps it won), as opposed to the events its
watchers receive from every replica. Presence webhooks are sent from here, so
each event is sent by exactly one replica."""


def ignore_changes(events: Sequence[Event]) -> None:
    return None


class StoreUnavailable(Exception):
    """The backing store cannot be reached; the call may be retried."""


class PresenceStore(Protocol):
    async def join(self, room: str, peer: Peer, edge_id: str) -> Event:
        """Add or replace ``peer`` in ``room``; the JOIN or UPDATE event it caused.

        Watchers also get USER_ONLINE after the JOIN of a user's first session
        in the room. Raises :class:`~accord.presence.model.TooManyRooms` and
        :class:`~accord.presence.model.UserMismatch`.
        """
        ...

    async def update(self, room: str, session_id: str, state_json: str) -> Event:
        """Replace the state of a present session; raises ``NotPresent`` otherwise."""
        ...

    async def update_many(
        self, updates: Sequence[tuple[str, str, str]]
    ) -> list[Event | NotPresent]:
        """``update`` each (room, session_id, state_json) in the order given, in one
        round trip where the store allows; ``NotPresent`` in the place of an update
        whose session is not in its room."""
        ...

    async def leave(self, session_id: str, room: str | None, reason: LeaveReason) -> list[str]:
        """Leave ``room`` (every room when None); the rooms actually left, sorted.

        Watchers get LEAVE per room, then USER_OFFLINE where the user's last session left.
        """
        ...

    async def heartbeat(self, edge_id: str, session_ids: Sequence[str]) -> list[str]:
        """Refresh the TTL of known sessions; the ids that are not known."""
        ...

    async def list(self, room: str, limit: int, cursor: str) -> Page: ...

    async def counts(self, room: str) -> Counts:
        """Sessions and distinct users in ``room``, without listing them."""
        ...

    async def broadcast(
        self, room: str, from_session_id: str, data_json: str, channel: str = ""
    ) -> None: ...

    async def sweep(self) -> tuple[int, int]:
        """Expire overdue sessions once across all replicas: (sessions, leaves)."""
        ...

    async def count_sessions(self) -> int: ...

    async def count_users(self) -> int:
        """Distinct users with at least one session present anywhere."""
        ...

    def subscription(self, max_queue: int) -> AbstractAsyncContextManager[Subscription]:
        """A watch whose rooms are added and removed while it is open."""
        ...

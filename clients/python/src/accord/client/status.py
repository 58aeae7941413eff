"""A client's sync status: where its connection is, and how much is still pending."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["State", "Status"]


class State(enum.StrEnum):
    CONNECTING = "connecting"
    SYNCING = "syncing"
    SYNCED = "synced"
    OFFLINE = "offline"
    CLOSED = "closed"
    FAILED = "failed"


@dataclass(frozen=True)
class Status:
    """``SYNCED``: connected, every room caught up and nothing pending.

    ``SYNCING``: connected, catching up or pushing. ``OFFLINE``: waiting to
    reconnect (or ``go_offline()``); changes queue up. ``FAILED``: gave up on
    an error that reconnecting cannot fix (see ``Client.error``).

    ``transport``: ``websocket`` or ``sse`` (the HTTP fallback) while connected,
    else None; not compared (a status equals one without it).
    """

    state: State
    pending: int = 0
    transport: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        if self.pending and self.state in (State.SYNCING, State.SYNCED):
            return f"pending {self.pending}"
        if self.pending:
            return f"{self.state} (pending {self.pending})"
        return str(self.state)

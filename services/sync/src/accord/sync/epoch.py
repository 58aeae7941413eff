"""A room's epoch: the name of the history its log belongs to.

A room's seqs mean something only within one history: after a database is
restored from a backup (or a room is created anew), seq 105 may be another
change than the one a client applied as 105. The epoch tells them apart.

It is a digest of three parts, so that each way a history can end changes it:

- the database's *basis*: its cluster (on PostgreSQL the system identifier and
  the current timeline, which a restore into a new cluster or a point-in-time
  recovery or failover change by themselves) and its *incarnation*, a random
  value in a one-row table that ``accord epoch renew`` replaces (the step after
  restoring a backup into the same cluster, or copying back a SQLite file);
- the room's own random part, stored with the room's row when the row is
  created: a room created anew after a restore gets a new epoch even when the
  renewal was forgotten.

A room with no row yet (no change ever committed, or not since a restore) has
its *initial* epoch, the digest without a room part. A client that saw the room
so and then followed its first changes must not be sent a snapshot on its next
resume, so the initial epoch is accepted for as long as the basis stands; an
empty epoch (a client from before epochs) is accepted always: no check.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

EPOCH_CHARS = 16
"""Hex digits of an epoch (64 bits of the digest)."""


def new_incarnation() -> str:
    """A fresh incarnation value for ``accord epoch renew``."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Basis:
    """The database-wide part of every room's epoch, as one read saw it."""

    cluster: str
    """PostgreSQL's system identifier and timeline ("" for SQLite, or when unreadable)."""
    incarnation: str

    def epoch(self, part: str) -> str:
        """The epoch of a room whose row holds ``part`` ("" when it has no row)."""
        text = f"{self.cluster}\n{self.incarnation}\n{part}".encode()
        return hashlib.sha256(text).hexdigest()[:EPOCH_CHARS]

    def room(self, part: str | None) -> RoomEpoch:
        """The epoch of a room whose row holds ``part`` (None: no row)."""
        initial = self.epoch("")
        return RoomEpoch(initial if part is None else self.epoch(part), initial)


@dataclass(frozen=True)
class RoomEpoch:
    current: str
    """What the room's history is called now (announced to clients)."""
    initial: str
    """What it was called before its row existed, under the same basis."""

    def accepts(self, seen: str) -> bool:
        """Whether a ``since`` read under epoch ``seen`` belongs to this history."""
        return not seen or seen in (self.current, self.initial)


@dataclass(frozen=True)
class RoomHead:
    """A room's head with its epoch, as one read saw them."""

    head: int
    epoch: RoomEpoch

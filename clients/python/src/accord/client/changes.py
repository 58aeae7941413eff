"""The two kinds of change a replica deals in: a record's visible change, and a local change
waiting for the server. Plain data, importing nothing of the client but ``Record``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from accord.client.patch import Record

RecordKey = tuple[str, str]
Origin = Literal["local", "remote"]

__all__ = ["Origin", "PendingChange", "RecordChange", "RecordKey"]


@dataclass(frozen=True)
class RecordChange:
    """One record's visible value changed; ``value`` is ``None`` when it is gone."""

    room: str
    collection: str
    key: str
    value: Record | None
    previous: Record | None
    origin: Origin

    @property
    def deleted(self) -> bool:
        return self.value is None


@dataclass
class PendingChange:
    """A local change not yet confirmed; ``acked_seq`` once the server stored it."""

    client_seq: int
    collection: str
    key: str
    op: dict[str, Any]
    ts: int
    acked_seq: int | None = None

    @property
    def record_key(self) -> RecordKey:
        return (self.collection, self.key)

    def wire(self) -> dict[str, Any]:
        return {
            "client_seq": self.client_seq,
            "collection": self.collection,
            "key": self.key,
            "ts": self.ts,
            "op": self.op,
        }

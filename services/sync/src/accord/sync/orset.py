"""The add-wins set a field can hold (an observed-remove set).

Every ``add`` of an element leaves a tag: the change's clock and its seq. A
``remove`` removes only the tags it has observed — those with a seq up to the
remover's ``seen`` and the remover's own earlier adds — so an add the remover
had not seen survives: concurrent add and remove, add wins. A removal is kept
as a tombstone per element (the highest ``seen``, and the highest remover
``client_seq`` per client), so that any delivery order gives the same state.
Elements are keyed by their canonical JSON text; the field lists them in that
order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from accord.sync.lattice import Clock, Json, above, clock_json, clock_of, clock_req, latest

ClientKey = tuple[str, str]
"""(user_id, client_id)"""


@dataclass
class Tombstone:
    seen: int = 0
    """Adds with a seq up to this are removed."""
    mine: dict[ClientKey, int] = field(default_factory=dict)
    """A client's adds with a client_seq below this are removed (its own removes saw them)."""

    def covers(self, clock: Clock, seq: int) -> bool:
        return seq <= self.seen or self.mine.get((clock[2], clock[1]), 0) > clock[3]


@dataclass
class SetField:
    at: Clock | None = None
    """The latest add that still counts: the field shows as a set while this is set."""
    tags: dict[str, dict[Clock, int]] = field(default_factory=dict)
    """element (canonical JSON) -> {add clock: seq} of the adds still live."""
    tombs: dict[str, Tombstone] = field(default_factory=dict)

    def copy(self) -> SetField:
        return SetField(
            self.at,
            {e: dict(t) for e, t in self.tags.items()},
            {e: Tombstone(t.seen, dict(t.mine)) for e, t in self.tombs.items()},
        )

    def add(self, clock: Clock, seq: int, elements: list[str]) -> None:
        for element in elements:
            tomb = self.tombs.get(element)
            if tomb is None or not tomb.covers(clock, seq):
                self.tags.setdefault(element, {})[clock] = seq
        self.at = latest(self.at, clock)

    def remove(self, clock: Clock, seen: int, elements: list[str]) -> None:
        client = (clock[2], clock[1])
        for element in elements:
            tomb = self.tombs.setdefault(element, Tombstone())
            tomb.seen = max(tomb.seen, seen)
            tomb.mine[client] = max(tomb.mine.get(client, 0), clock[3])
            tags = self.tags.get(element)
            if tags is not None:
                self._keep(element, {c: s for c, s in tags.items() if not tomb.covers(c, s)})

    def cut(self, cutoff: Clock | None) -> None:
        """Drop what a delete or a plain write of the field at ``cutoff`` replaced."""
        if cutoff is None:
            return
        self.at = above(self.at, cutoff)
        for element, tags in list(self.tags.items()):
            self._keep(element, {c: s for c, s in tags.items() if c > cutoff})

    def _keep(self, element: str, tags: dict[Clock, int]) -> None:
        if tags:
            self.tags[element] = tags
        else:
            self.tags.pop(element, None)

    def empty(self) -> bool:
        return self.at is None and not self.tags and not self.tombs

    def value(self) -> list[Json]:
        return [json.loads(element) for element in sorted(self.tags)]

    def dump(self) -> dict[str, Any]:
        return {
            "at": clock_json(self.at),
            "tags": {
                e: [[list(c), s] for c, s in sorted(tags.items())]
                for e, tags in sorted(self.tags.items())
            },
            "tombs": {
                e: [t.seen, [[u, c, s] for (u, c), s in sorted(t.mine.items())]]
                for e, t in sorted(self.tombs.items())
            },
        }

    @classmethod
    def load(cls, raw: Any) -> SetField:
        return cls(
            clock_of(raw["at"]),
            {e: {clock_req(c): int(s) for c, s in tags} for e, tags in raw["tags"].items()},
            {
                e: Tombstone(int(seen), {(str(u), str(c)): int(s) for u, c, s in mine})
                for e, (seen, mine) in raw["tombs"].items()
            },
        )

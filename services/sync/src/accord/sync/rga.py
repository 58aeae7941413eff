"""The ordered list (or text) a field can hold: a replicated growable array (RGA).

Each inserted value is an element with an id derived from its change —
``"{client_seq}.{index}@{client_id}"`` — so a client knows the ids of its own
inserts before they are acknowledged. An element records the element it was
inserted after (None: the start). The order is the tree of "after" links read
depth-first, siblings newest clock first, so a run inserted by one change stays
contiguous and concurrent inserts at one place never interleave. Removed
elements stay as tombstones (value dropped) so later inserts can still refer
to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from accord.sync.lattice import Clock, Json, above, clock_json, clock_of, clock_req, latest


def element_id(clock: Clock, index: int) -> str:
    return f"{clock[3]}.{index}@{clock[1]}"


@dataclass(frozen=True)
class Element:
    clock: Clock
    after: str | None
    removed: bool
    value: Json = None
    live: bool = False
    """False once removed or replaced (by a delete or a plain write): the value is dropped."""

    def dead(self, removed: bool | None = None) -> Element:
        return Element(self.clock, self.after, self.removed if removed is None else removed)


@dataclass
class ListField:
    at: Clock | None = None
    """The latest insert that still counts: the field shows as a list while this is set."""
    items: dict[str, Element] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    """Ids removed before their insert was merged."""

    def copy(self) -> ListField:
        return ListField(self.at, dict(self.items), set(self.gone))

    def knows(self, element: str) -> bool:
        return element in self.items

    def insert(self, clock: Clock, after: str | None, values: Sequence[Json]) -> None:
        parent = after
        for index, value in enumerate(values):
            ident = element_id(clock, index)
            current = self.items.get(ident)
            # Two changes claiming one id (clients sharing a client_id): the later one holds it.
            if current is None or clock > current.clock:
                removed = ident in self.gone or (current is not None and current.removed)
                self.gone.discard(ident)
                live = not removed
                self.items[ident] = Element(clock, parent, removed, value if live else None, live)
            parent = ident
        self.at = latest(self.at, clock)

    def remove(self, ids: Sequence[str]) -> None:
        for ident in ids:
            current = self.items.get(ident)
            if current is None:
                self.gone.add(ident)
            elif not current.removed:
                self.items[ident] = current.dead(removed=True)

    def cut(self, cutoff: Clock | None) -> None:
        """Drop the values a delete or a plain write of the field at ``cutoff`` replaced."""
        if cutoff is None:
            return
        self.at = above(self.at, cutoff)
        for ident, element in self.items.items():
            if element.live and element.clock <= cutoff:
                self.items[ident] = element.dead()

    def empty(self) -> bool:
        return self.at is None and not self.items and not self.gone

    def value(self) -> list[Json]:
        """The live elements in order, as ``{"id", "value"}`` objects."""
        children: dict[str | None, list[tuple[Clock, str]]] = {}
        for ident, element in self.items.items():
            children.setdefault(element.after, []).append((element.clock, ident))
        # Depth-first, newest sibling first: push siblings oldest first so the newest pops first.
        stack = [ident for _, ident in sorted(children.get(None, ()))]
        out: list[Json] = []
        while stack:
            ident = stack.pop()
            element = self.items[ident]
            if element.live:
                out.append({"id": ident, "value": element.value})
            stack.extend(child for _, child in sorted(children.get(ident, ())))
        return out

    def dump(self) -> dict[str, Any]:
        items: dict[str, list[Any]] = {}
        for ident, e in sorted(self.items.items()):
            row: list[Any] = [list(e.clock), e.after, e.removed]
            if e.live:
                row.append(e.value)
            items[ident] = row
        return {"at": clock_json(self.at), "items": items, "gone": sorted(self.gone)}

    @classmethod
    def load(cls, raw: Any) -> ListField:
        items = {}
        for ident, row in raw["items"].items():
            live = len(row) == 4
            items[ident] = Element(
                clock_req(row[0]), row[1], bool(row[2]), row[3] if live else None, live
            )
        return cls(clock_of(raw["at"]), items, set(raw["gone"]))

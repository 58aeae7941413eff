"""The SDK's shape: no import cycles, small modules, and a room that needs only a RoomHost."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import accord.client
import pytest
from accord.client import Backoff, ClientClosed, ClientError, RecordChange, Replica, Room
from accord.client.changes import PendingChange, RecordKey
from accord.client.host import RoomHost
from accord.client.link import RoomLink
from accord.client.patch import Record

PACKAGE = Path(accord.client.__file__).parent
MAX_LINES = 400


def imports() -> dict[str, set[str]]:
    """Each module's imports of sibling modules, ``TYPE_CHECKING`` blocks included."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module]
                if isinstance(node, ast.ImportFrom) and node.module
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            found.update(n.split(".")[2] for n in names if n.startswith("accord.client."))
        graph[path.stem] = found
    return graph


def test_modules_import_each_other_without_cycles() -> None:
    graph = imports()
    assert {"client", "room", "link", "host", "rooms"} <= set(graph)
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert "client" not in graph["room"] and "client" not in graph["link"]


def test_no_module_is_large() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


class FakeHost:
    """A RoomHost with no client behind it: what a room may ask, recorded."""

    def __init__(self) -> None:
        self.client_id = "fake"
        self.backoff = Backoff()
        self.running = True
        self.next_seq = 1
        self.saved: list[tuple[str, int]] = []
        self.reported: list[Exception] = []
        self.forgotten: list[str] = []
        self.changes = 0

    async def queue(
        self, room: str, replica: Replica, collection: str, key: str, op: dict[str, Any]
    ) -> tuple[int, list[RecordChange]]:
        if not self.running:
            raise ClientClosed("stopped")
        change = PendingChange(self.next_seq, collection, key, op, ts=self.next_seq)
        self.next_seq += 1
        return change.client_seq, replica.add_local(change)

    def observe(self, ts: int) -> None:
        pass

    async def save(
        self,
        room: str,
        seq: int,
        records: Mapping[RecordKey, Record | None],
        dropped: Sequence[int],
        *,
        replace: bool,
    ) -> None:
        self.saved.append((room, seq))

    def report(self, error: Exception) -> None:
        self.reported.append(error)

    def changed(self) -> None:
        self.changes += 1

    def forget(self, room: str) -> None:
        self.forgotten.append(room)


async def test_a_room_needs_only_its_host() -> None:
    host = FakeHost()
    typed: RoomHost = host
    room = Room(RoomLink(typed, "r", Replica("r", host.client_id), None, False))
    seen: list[RecordChange] = []
    room.on_change(seen.append)

    assert await room.set("todos", "t-1", title="milk") == 1
    ids = await room.insert("lists", "l-1", "items", "a", "b")

    assert room.get("todos", "t-1") == {"title": "milk"}
    assert ids == ["2.0@fake", "2.1@fake"]
    assert room.pending == 2 and not room.synced and not room.subscribed
    assert [(c.key, c.origin) for c in seen] == [("t-1", "local"), ("l-1", "local")]
    assert host.changes > 0

    host.running = False
    with pytest.raises(ClientClosed):
        await room.set("todos", "t-2", title="eggs")
    assert room.get("todos", "t-2") is None

    await room.leave()
    await room.leave()
    assert host.forgotten == ["r"]
    with pytest.raises(ClientError):
        await room.delete("todos", "t-1")

"""What a sync replica remembers of the rooms it committed to: bounded, and dropped
whenever it may not match the database."""

from __future__ import annotations

from accord.sync import merge
from accord.sync.room_memory import KNOWN_RECORD_BYTES, _Group, _RoomMemory


def group(head: int, keys: list[str], size: int = 100, clients: int = 1) -> _Group:
    g = _Group(head=head)
    for key in keys:
        g.states[("todos", key)] = merge.RecordState()
        g.views[("todos", key)] = None
        g.sizes[("todos", key)] = size
    for n in range(clients):
        g.marks[("u", f"c{n}")] = head
    return g


def recalled(memory: _RoomMemory, room: str, *keys: str) -> int | None:
    known = memory.recall([(room, "u", "c0")], [(room, "todos", k) for k in keys])
    return None if known is None else known[room].head


def test_a_room_is_recalled_as_it_was_left_and_only_with_every_key_known() -> None:
    memory = _RoomMemory()
    memory.remember({"r": group(3, ["a", "b"])}, {"r": 1})
    assert recalled(memory, "r", "a", "b") == 3
    assert recalled(memory, "r", "a", "z") is None  # a record never read: read them all
    assert memory.recall([("r", "u", "other")], []) is None  # a client never seen
    # The next group started where the last left off: both groups' records are known.
    memory.remember({"r": group(4, ["z"])}, {"r": 3})
    assert recalled(memory, "r", "a", "z") == 4
    # A group that started elsewhere (read under a lock after a contention) replaces it.
    memory.remember({"r": group(9, ["z"])}, {"r": 7})
    assert recalled(memory, "r", "z") == 9
    assert recalled(memory, "r", "a") is None


def test_rooms_never_committed_to_are_not_remembered() -> None:
    memory = _RoomMemory()
    memory.remember({"new": group(0, ["a"])}, {"new": 0})  # every push failed
    assert recalled(memory, "new", "a") is None


def test_large_records_and_rooms_that_would_crowd_out_the_rest_are_read_each_time() -> None:
    memory = _RoomMemory()
    memory.remember({"r": group(2, ["big"], size=KNOWN_RECORD_BYTES + 1)}, {"r": 1})
    assert recalled(memory, "r", "big") is None
    assert recalled(memory, "r") == 2  # the room and its clients are still known
    small = _RoomMemory(budget=100_000)
    keys = [f"k{n}" for n in range(600)]  # 60,000 bytes: more than half the budget
    small.remember({"crowded": group(2, keys)}, {"crowded": 1})
    assert recalled(small, "crowded", "k0") is None
    small.remember({"hot": group(2, keys[:400])}, {"hot": 1})  # 40,000 bytes: fits
    assert recalled(small, "hot", *keys[:400]) == 2


def test_the_least_recently_used_rooms_go_first_beyond_the_budget() -> None:
    memory = _RoomMemory(budget=12_000)  # five rooms of 2,064 bytes fit, six do not
    for n in range(5):
        memory.remember({f"r{n}": group(1 + n, ["a"], size=2_000)}, {f"r{n}": 0})
    assert recalled(memory, "r0", "a") == 1  # used again: now the most recent
    memory.remember({"r5": group(6, ["a"], size=2_000)}, {"r5": 0})
    assert recalled(memory, "r1", "a") is None  # the oldest unused went
    assert recalled(memory, "r0", "a") == 1
    assert recalled(memory, "r5", "a") == 6


def test_forgetting() -> None:
    memory = _RoomMemory()
    memory.remember({"r": group(2, ["a"]), "q": group(2, ["a"])}, {"r": 1, "q": 1})
    memory.forget(["r"])
    assert recalled(memory, "r", "a") is None
    assert recalled(memory, "q", "a") == 2
    memory.clear()
    assert recalled(memory, "q", "a") is None

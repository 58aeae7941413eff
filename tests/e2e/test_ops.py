"""Set and list ops over /ws: client op JSON in, patches out, and bad ops refused whole.

Two sessions edit one room; a third subscribes afterwards. The patches each
live subscriber received, applied in seq order with the reference
``apply_patch``, must equal the snapshot the late subscriber gets.
"""

from __future__ import annotations

from typing import Any

import pytest
from accord.sync.patch import apply_patch

from tests.support.suite import Suite
from tests.support.wsclient import Client, make_token

pytestmark = pytest.mark.e2e

ROOM = "ops-room"


def change(client_seq: int, op: dict[str, Any], key: str = "doc") -> dict[str, Any]:
    return {"client_seq": client_seq, "collection": "docs", "key": key, "op": op}


async def session(suite: Suite, client_id: str, sub: str = "u-1") -> Client:
    client = await suite.client()
    await client.hello(make_token(sub), client_id=client_id)
    await client.subscribe(ROOM)
    return client


class Mirror:
    """A client with no merge logic: applies each patch in seq order."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.seq = 0

    def apply(self, message: dict[str, Any]) -> None:
        for c in message["changes"]:
            assert c["seq"] == self.seq + 1, "gap or repeat"
            self.seq = c["seq"]
            key = (c["collection"], c["key"])
            after = apply_patch(self.records.get(key), c["patch"])
            if after is None:
                self.records.pop(key, None)
            else:
                self.records[key] = after


async def follow(client: Client, mirror: Mirror, seq: int) -> None:
    while mirror.seq < seq:
        mirror.apply(await client.expect("changes"))


async def head_of(suite: Suite) -> int:
    async with await suite.client() as probe:
        await probe.hello(make_token("probe"), client_id="probe")
        return int((await probe.subscribe(ROOM))["head"])


async def test_sets_and_lists_through_the_edge_converge_with_the_snapshot(suite: Suite) -> None:
    alice, bob = await session(suite, "alice"), await session(suite, "bob", "u-2")
    watching = Mirror()
    try:
        ack = await alice.push(
            ROOM,
            [
                change(1, {"kind": "add", "field": "tags", "values": ["red", "blue"]}),
                change(2, {"kind": "insert", "field": "text", "after": None, "values": ["h", "i"]}),
            ],
        )
        assert [r["status"] for r in ack["results"]] == ["applied", "applied"]
        # alice's first list element has the id she can compute herself: client_seq.index@client_id
        ack = await bob.push(
            ROOM,
            [
                change(
                    1, {"kind": "insert", "field": "text", "after": "2.0@alice", "values": ["!"]}
                ),
                change(2, {"kind": "remove", "field": "tags", "values": ["red"], "seen": 0}),
                change(3, {"kind": "remove_items", "field": "text", "ids": ["2.1@alice"]}),
            ],
        )
        assert [r["status"] for r in ack["results"]] == ["applied"] * 3
        ack = await alice.push(
            ROOM, [change(3, {"kind": "remove", "field": "tags", "values": ["blue"]})]
        )
        await follow(bob, watching, 6)

        record = watching.records[("docs", "doc")]
        # bob had seen nothing (seen 0), so alice's concurrent "red" survives his remove.
        assert record["tags"] == ["red"]
        assert [i["value"] for i in record["text"]] == ["h", "!"]
        assert [i["id"] for i in record["text"]] == ["2.0@alice", "1.0@bob"]

        async with await suite.client() as late:
            await late.hello(make_token("u-3"), client_id="late")
            assert (await late.subscribe(ROOM))["head"] == 6
            snapshot = await late.expect("snapshot")
            assert snapshot["last"] and snapshot["seq"] == 6
            assert {(r["collection"], r["key"]): r["value"] for r in snapshot["records"]} == (
                watching.records
            )
    finally:
        await alice.close()
        await bob.close()


async def test_list_patches_name_ids_and_neighbours(suite: Suite) -> None:
    alice = await session(suite, "alice")
    try:
        await alice.push(
            ROOM, [change(1, {"kind": "insert", "field": "text", "after": None, "values": ["a"]})]
        )
        first = await alice.expect("changes")
        assert first["changes"][0]["patch"] == {
            "set": {"text": [{"id": "1.0@alice", "value": "a"}]}
        }
        await alice.push(
            ROOM,
            [change(2, {"kind": "insert", "field": "text", "after": "1.0@alice", "values": ["b"]})],
        )
        second = await alice.expect("changes")
        assert second["changes"][0]["patch"] == {
            "list": {
                "text": [{"insert": [{"id": "2.0@alice", "value": "b"}], "after": "1.0@alice"}]
            }
        }
        await alice.push(ROOM, [change(3, {"kind": "add", "field": "tags", "values": [1]})])
        await alice.expect("changes")
        await alice.push(ROOM, [change(4, {"kind": "add", "field": "tags", "values": [2, 1]})])
        fourth = await alice.expect("changes")
        assert fourth["changes"][0]["patch"] == {"add": {"tags": [2]}}
    finally:
        await alice.close()


@pytest.mark.parametrize(
    ("op", "code"),
    [
        ({"kind": "explode", "field": "x"}, "UNSUPPORTED"),
        ({"kind": "add", "field": "tags", "values": "red"}, "BAD_REQUEST"),
        ({"kind": "add", "field": "tags", "values": []}, "BAD_REQUEST"),
        ({"kind": "add", "field": "tags", "values": [{"not": "a scalar"}]}, "BAD_REQUEST"),
        ({"kind": "add", "field": "tags", "values": [1.5]}, "BAD_REQUEST"),
        ({"kind": "remove", "field": "tags", "values": ["a"], "seen": -1}, "BAD_REQUEST"),
        (
            {"kind": "insert", "field": "text", "after": "9.0@nobody", "values": ["x"]},
            "BAD_REQUEST",
        ),
        ({"kind": "insert", "field": "text", "after": 7, "values": ["x"]}, "BAD_REQUEST"),
        ({"kind": "insert", "field": "", "values": ["x"]}, "BAD_REQUEST"),
        ({"kind": "remove_items", "field": "text", "ids": ["1.0@nobody"]}, "BAD_REQUEST"),
        ({"kind": "remove_items", "field": "text", "ids": [3]}, "BAD_REQUEST"),
    ],
)
async def test_a_bad_op_fails_the_whole_push_and_stores_nothing(
    suite: Suite, op: dict[str, Any], code: str
) -> None:
    alice = await session(suite, "alice")
    try:
        reply = await alice.push(
            ROOM,
            [
                change(1, {"kind": "add", "field": "tags", "values": ["fine"]}),
                change(2, op),
            ],
        )
        assert reply["type"] == "error" and reply["code"] == code, reply
        assert reply["room"] == ROOM
        assert await head_of(suite) == 0
    finally:
        await alice.close()


async def test_a_record_grown_past_the_limit_by_a_list_is_refused(suite: Suite) -> None:
    alice = await session(suite, "alice")
    try:
        # Each insert is well within the limits; together they make the record too large.
        half = ["x" * 1000] * 150
        reply = await alice.push(
            ROOM,
            [
                change(1, {"kind": "insert", "field": "text", "after": None, "values": half}),
                change(2, {"kind": "insert", "field": "text", "after": None, "values": half}),
            ],
        )
        assert reply["type"] == "error" and reply["code"] == "TOO_LARGE", reply
        assert await head_of(suite) == 0
    finally:
        await alice.close()

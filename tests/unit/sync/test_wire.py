"""accord.sync.wire.push_batch: the edge's rules on sync's typed requests.

What the edge forwards, sync accepts as the same op; what the edge refuses for a
number out of range, sync refuses with the same code when another caller sends
it; each op's JSON text is parsed once.
"""

from __future__ import annotations

from typing import Any

import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.common import jsontext
from accord.common.opcheck import check_op
from accord.common.rules import MAX_INT64, MAX_SAFE_INT, MIN_INT64
from accord.edge.ops import parse_change
from accord.edge.protocol import ProtocolError
from accord.sync import merge, wire
from accord.sync.errors import BadRequest, SyncError, TooLarge, Unsupported
from accord.sync.model import Limits
from hypothesis import given, settings
from hypothesis import strategies as st

LIMITS = Limits(max_batch_changes=10, max_record_bytes=4096, max_json_depth=4)
CODES: dict[type[SyncError], str] = {
    BadRequest: "BAD_REQUEST",
    TooLarge: "TOO_LARGE",
    Unsupported: "UNSUPPORTED",
}


def request(*changes: pb.Change) -> pb.PushRequest:
    return pb.PushRequest(room="r", user_id="u1", client_id="c1", changes=changes)


def sync_code(*changes: pb.Change) -> str:
    with pytest.raises(SyncError) as caught:
        wire.push_batch(request(*changes), LIMITS)
    return CODES[type(caught.value)]


def edge_code(raw: dict[str, Any]) -> str:
    with pytest.raises(ProtocolError) as caught:
        parse_change(raw, "r", 0)
    return caught.value.code


def client(op: dict[str, Any], **over: Any) -> dict[str, Any]:
    return {"client_seq": 1, "collection": "c", "key": "k", "op": op} | over


DELETE = pb.Op(delete=pb.DeleteOp())


@pytest.mark.parametrize(
    ("raw", "typed"),
    [
        (
            client({"kind": "delete"}, client_seq=MAX_INT64 + 1),
            pb.Change(client_seq=MAX_INT64 + 1, collection="c", key="k", op=DELETE),
        ),
        (
            client({"kind": "delete"}, client_seq=0),
            pb.Change(client_seq=0, collection="c", key="k", op=DELETE),
        ),
        (
            client({"kind": "delete"}, ts=-1),
            pb.Change(client_seq=1, collection="c", key="k", ts=-1, op=DELETE),
        ),
        (
            client({"kind": "delete"}, ts=MIN_INT64),
            pb.Change(client_seq=1, collection="c", key="k", ts=MIN_INT64, op=DELETE),
        ),
        (
            client({"kind": "remove", "field": "t", "values": ["a"], "seen": MAX_INT64 + 1}),
            pb.Change(
                client_seq=1,
                collection="c",
                key="k",
                op=pb.Op(remove=pb.RemoveOp(field="t", values_json='["a"]', seen=MAX_INT64 + 1)),
            ),
        ),
        (
            client({"kind": "add", "field": "t", "values": [MAX_SAFE_INT + 1]}),
            pb.Change(
                client_seq=1,
                collection="c",
                key="k",
                op=pb.Op(add=pb.AddOp(field="t", values_json=f"[{MAX_SAFE_INT + 1}]")),
            ),
        ),
        (
            client({"kind": "add", "field": "t", "values": [1.0]}),
            pb.Change(
                client_seq=1,
                collection="c",
                key="k",
                op=pb.Op(add=pb.AddOp(field="t", values_json="[1.0]")),
            ),
        ),
        (
            client({"kind": "remove_items", "field": "x", "ids": ["a"] * 10_001}),
            pb.Change(
                client_seq=1,
                collection="c",
                key="k",
                op=pb.Op(remove_items=pb.RemoveItemsOp(field="x", ids=["a"] * 10_001)),
            ),
        ),
    ],
)
def test_the_edge_and_sync_refuse_the_same_numbers_with_the_same_code(
    raw: dict[str, Any], typed: pb.Change
) -> None:
    assert edge_code(raw) == sync_code(typed)


def test_numbers_at_their_bounds_are_accepted_by_sync() -> None:
    batch = wire.push_batch(
        request(
            pb.Change(client_seq=1, collection="c", key="k", ts=MAX_INT64, op=DELETE),
            pb.Change(
                client_seq=2,
                collection="c",
                key="k",
                op=pb.Op(incr=pb.IncrOp(field="n", by=MIN_INT64)),
            ),
            pb.Change(
                client_seq=MAX_INT64,
                collection="c",
                key="k",
                op=pb.Op(
                    remove=pb.RemoveOp(
                        field="t", values_json=f"[{-MAX_SAFE_INT}, true, null]", seen=MAX_INT64
                    )
                ),
            ),
        ),
        LIMITS,
    )
    assert [c.client_seq for c in batch.changes] == [1, 2, MAX_INT64]
    assert batch.changes[0].ts == MAX_INT64
    assert batch.changes[1].op == merge.IncrOp("n", MIN_INT64)
    assert batch.changes[2].op == merge.RemoveOp("t", (-MAX_SAFE_INT, True, None), MAX_INT64)


def test_errors_name_the_change_and_the_field() -> None:
    bad = pb.Change(
        client_seq=2, collection="c", key="k", op=pb.Op(set=pb.SetOp(fields_json="[1]"))
    )
    with pytest.raises(BadRequest, match=r"^changes\[1\]\.op\.fields must be an object"):
        wire.push_batch(
            request(pb.Change(client_seq=1, collection="c", key="k", op=DELETE), bad), LIMITS
        )
    deep = pb.Change(
        client_seq=1, collection="c", key="k", op=pb.Op(set=pb.SetOp(fields_json='{"a":[[[[]]]]}'))
    )
    with pytest.raises(BadRequest, match=r"^changes\[0\]\.op\.fields_json nests deeper than 4"):
        wire.push_batch(request(deep), LIMITS)
    big = pb.Change(
        client_seq=1,
        collection="c",
        key="k",
        op=pb.Op(set=pb.SetOp(fields_json='{"a":"' + "é" * 2100 + '"}')),  # > 4096 bytes
    )
    with pytest.raises(TooLarge, match=r"^changes\[0\]\.op\.fields_json exceeds 4096 bytes"):
        wire.push_batch(request(big), LIMITS)


@pytest.mark.parametrize(
    ("op", "stored"),
    [
        ({"kind": "set", "fields": {"b": 1, "a": [2]}}, '{"kind":"set","fields":{"b":1,"a":[2]}}'),
        ({"kind": "delete"}, '{"kind":"delete"}'),
        ({"kind": "incr", "field": "n"}, '{"kind":"incr","field":"n","by":1}'),
        (
            {"kind": "add", "field": "t", "values": ["x"]},
            '{"kind":"add","field":"t","values":["x"]}',
        ),
        (
            {"kind": "remove", "field": "t", "values": ["x"]},
            '{"kind":"remove","field":"t","values":["x"]}',
        ),
        (
            {"kind": "remove", "field": "t", "values": ["x"], "seen": 0},
            '{"kind":"remove","field":"t","values":["x"],"seen":0}',
        ),
        (
            {"kind": "insert", "field": "x", "after": None, "values": ["é"]},
            '{"kind":"insert","field":"x","after":null,"values":["é"]}',
        ),
        (
            {"kind": "remove_items", "field": "x", "ids": ["1.0@a", "1.0@a"]},
            '{"kind":"remove_items","field":"x","ids":["1.0@a"]}',
        ),
    ],
)
def test_what_the_edge_forwards_sync_stores_as_the_op(op: dict[str, Any], stored: str) -> None:
    change = parse_change(client(op), "r", 0)
    (incoming,) = wire.push_batch(request(change), LIMITS).changes
    assert incoming.op_json == stored


def test_each_ops_json_text_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str | bytes] = []
    loads = jsontext.loads

    def counting(text: str | bytes) -> Any:
        parsed.append(text)
        return loads(text)

    changes = [
        parse_change(client({"kind": "set", "fields": {"n": n}}, client_seq=n), "r", n)
        for n in range(1, 4)
    ] + [
        parse_change(client({"kind": "insert", "field": "x", "values": [1]}, client_seq=4), "r", 3)
    ]
    monkeypatch.setattr(jsontext, "loads", counting)
    batch = wire.push_batch(request(*changes), LIMITS)
    assert len(batch.changes) == 4
    assert parsed == ['{"n":1}', '{"n":2}', '{"n":3}', "[1]"]


names = st.text(alphabet="ab\x00", min_size=0, max_size=3)
elements = st.none() | st.booleans() | st.integers(-(2**54), 2**54) | st.text(max_size=3)
values = st.lists(elements | st.floats(allow_nan=False, allow_infinity=False), max_size=3)
ops = st.one_of(
    st.builds(lambda f: {"kind": "set", "fields": f}, st.dictionaries(names, elements, max_size=3)),
    st.just({"kind": "delete"}),
    st.builds(
        lambda f, by: {"kind": "incr", "field": f, "by": by},
        names,
        st.integers(-(2**64), 2**64) | st.floats(allow_nan=False) | st.booleans(),
    ),
    st.builds(
        lambda k, f, v: {"kind": k, "field": f, "values": v},
        st.sampled_from(["add", "remove", "insert"]),
        names,
        values,
    ),
    st.builds(
        lambda f, v, s: {"kind": "remove", "field": f, "values": v, "seen": s},
        names,
        values,
        st.integers(-2, 2**64),
    ),
    st.builds(
        lambda f, a, v: {"kind": "insert", "field": f, "after": a, "values": v},
        names,
        names,
        values,
    ),
    st.builds(
        lambda f, ids: {"kind": "remove_items", "field": f, "ids": ids},
        names,
        st.lists(names, max_size=3),
    ),
)


@settings(max_examples=500)
@given(
    ops,
    st.integers(-2, 2**64) | st.booleans(),
    st.integers(-(2**64), 2**64) | st.none(),
)
def test_sync_accepts_exactly_what_the_edge_forwards(
    op: dict[str, Any], client_seq: int, ts: int | None
) -> None:
    raw = client(op, client_seq=client_seq, ts=ts)
    try:
        change = parse_change(raw, "r", 0)
    except ProtocolError as error:
        assert error.code in ("BAD_REQUEST", "TOO_LARGE", "UNSUPPORTED")
        return
    (incoming,) = wire.push_batch(request(change), LIMITS).changes
    assert incoming.op_json == jsontext.dumps(check_op(op, 0))
    assert (incoming.client_seq, incoming.ts) == (client_seq, ts or 0)

"""Frame decoding (accord.edge.frames) and the JSON ↔ protobuf table (accord.edge.codec):
every message type survives the round trip in the direction it travels, and bad
binary frames get typed errors carrying the frame's id."""

from __future__ import annotations

from typing import Any

import pytest
from accord.api.edge.v1 import frames_pb2 as pb
from accord.edge import codec
from accord.edge.frames import parse_binary, parse_json
from accord.edge.protocol import ProtocolError

PEER = {"session_id": "s", "user_id": "u", "client_id": "c", "user": {"n": 1}, "state": {"x": []}}
CLIENT_MESSAGES: list[dict[str, Any]] = [
    {"type": "hello", "id": 1, "token": "t", "client_id": "c", "user": {"name": "a"}},
    {"type": "hello", "token": None, "client_id": "c"},
    {"type": "ping", "id": -5},
    {"type": "refresh", "token": "t2"},
    {
        "type": "subscribe",
        "room": "r",
        "since": 9,
        "presence": {"s": 1},
        "users": True,
        "epoch": "0123456789abcdef",
    },
    {"type": "subscribe", "room": "r", "since": 0},
    {"type": "unsubscribe", "room": "r"},
    {
        "type": "push",
        "room": "r",
        "changes": [
            {"client_seq": 1, "collection": "c", "key": "k", "op": {"kind": "delete"}, "ts": 5},
            {"client_seq": 2, "collection": "c", "key": "k", "op": {"kind": "incr", "field": "n"}},
        ],
    },
    {"type": "presence", "room": "r", "state": {"cursor": [1, 2]}},
    {"type": "broadcast", "room": "r", "data": {"hi": True}, "channel": "cursor"},
    {"type": "broadcast", "room": "r", "data": None},
    {"type": "presence_list", "room": "r", "cursor": "x", "limit": 5, "counts_only": True},
]
SERVER_MESSAGES: list[dict[str, Any]] = [
    {
        "type": "welcome",
        "id": 1,
        "session_id": "s",
        "user_id": "u",
        "server": {
            "version": "1",
            "protocol": 1,
            "heartbeat_ms": 5,
            "max_message_bytes": 9,
            "features": ["a", "b"],
        },
    },
    {"type": "pong", "id": 2},
    {"type": "refreshed"},
    {"type": "subscribed", "room": "r", "head": 3, "epoch": "e"},
    {"type": "unsubscribed", "room": "r"},
    {
        "type": "snapshot",
        "room": "r",
        "seq": 3,
        "last": True,
        "epoch": "e",
        "records": [{"collection": "c", "key": "k", "value": {"v": [1]}}],
    },
    {
        "type": "changes",
        "room": "r",
        "changes": [
            {
                "seq": 4,
                "collection": "c",
                "key": "k",
                "client_id": "c",
                "client_seq": 1,
                "ts": 7,
                "patch": {"set": {"a": 1}},
            }
        ],
    },
    {
        "type": "ack",
        "room": "r",
        "results": [
            {"client_seq": 1, "seq": 4, "status": "applied", "ts": 8},
            {
                "client_seq": 2,
                "seq": 5,
                "status": "applied",
                "conflicts": [{"field": "a", "winner": {"ts": 3, "client_id": "z"}}],
            },
            {
                "client_seq": 3,
                "seq": 0,
                "status": "error",
                "error": {"code": "BAD_REQUEST", "message": "m", "json_path": "$.title"},
            },
            {
                "client_seq": 4,
                "seq": 0,
                "status": "error",
                "error": {"code": "INTERNAL", "message": "the hook raised"},
            },
        ],
    },
    {
        "type": "presence",
        "room": "r",
        "event": "sync",
        "peers": [PEER],
        "count": 1,
        "users": 1,
        "next_cursor": "n",
    },
    {"type": "presence", "room": "r", "event": "sync", "peers": [], "count": 0, "users": 0},
    {"type": "presence", "room": "r", "event": "leave", "peer": PEER, "reason": "timeout"},
    {"type": "presence_page", "room": "r", "peers": [PEER], "count": 1, "users": 1},
    {"type": "broadcast", "room": "r", "data": [1], "from": PEER, "channel": "c"},
    {
        "type": "error",
        "id": 3,
        "code": "RATE_LIMITED",
        "message": "m",
        "room": "r",
        "retry_after_ms": 20,
    },
]


@pytest.mark.parametrize("message", CLIENT_MESSAGES, ids=lambda m: m["type"])
def test_client_messages_round_trip(message: dict[str, Any]) -> None:
    data = codec.to_client_frame(message).SerializeToString()
    assert parse_binary(data, 32) == message


@pytest.mark.parametrize("message", SERVER_MESSAGES, ids=lambda m: m["type"])
def test_server_messages_round_trip(message: dict[str, Any]) -> None:
    if message["type"] == "broadcast":
        message = {**message, "from": "s-1"}
    frame = pb.ServerFrame.FromString(codec.to_server_frame(message).SerializeToString())
    assert codec.from_server_frame(frame) == message


def test_every_frame_type_has_a_row() -> None:
    oneof = {f.name for f in pb.ClientFrame.DESCRIPTOR.oneofs_by_name["msg"].fields}
    assert set(codec.CLIENT) == oneof
    oneof = {f.name for f in pb.ServerFrame.DESCRIPTOR.oneofs_by_name["msg"].fields}
    assert set(codec.SERVER) == oneof


def test_bad_binary_frames_get_typed_errors_with_their_id() -> None:
    with pytest.raises(ProtocolError) as error:
        parse_binary(b"\xff\xff", 32)
    assert (error.value.code, error.value.request_id) == ("BAD_REQUEST", None)

    bad_op = pb.ClientFrame(id=7, push=pb.Push(room="r", changes=[pb.PushChange(op_json="{")]))
    with pytest.raises(ProtocolError) as error:
        parse_binary(bad_op.SerializeToString(), 32)
    assert (error.value.code, error.value.request_id) == ("BAD_REQUEST", 7)
    assert "op_json" in error.value.message

    with pytest.raises(ProtocolError) as error:
        parse_binary(pb.ClientFrame(id=8).SerializeToString(), 32)
    assert (error.value.code, error.value.request_id) == ("UNSUPPORTED", 8)

    deep = pb.ClientFrame(
        id=9, presence=pb.PresenceState(room="r", state_json='{"a":' * 5 + "1" + "}" * 5)
    )
    with pytest.raises(ProtocolError) as error:
        parse_binary(deep.SerializeToString(), 3)
    assert (error.value.code, error.value.request_id) == ("BAD_REQUEST", 9)
    assert parse_binary(deep.SerializeToString(), 32)["state"] == {
        "a": {"a": {"a": {"a": {"a": 1}}}}
    }


def test_json_frames_keep_the_id_of_a_frame_they_refuse() -> None:
    with pytest.raises(ProtocolError) as error:
        parse_json('{"id": 4, "a": NaN}', 32)
    assert (error.value.code, error.value.request_id) == ("BAD_REQUEST", 4)
    with pytest.raises(ProtocolError) as error:
        parse_json("[1]", 32)
    assert error.value.code == "BAD_REQUEST"
    assert parse_json('{"type":"ping","id":1}', 32) == {"type": "ping", "id": 1}

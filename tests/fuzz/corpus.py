"""Fuzz inputs for the edge's WebSocket frames: hypothesis draws seeds, a seeded loop mutates them.

An input is a ``Frame``: a payload and how it goes on the wire — ``text`` (a text frame of
valid UTF-8), ``binary`` (a binary frame), ``raw-text`` (a text frame of arbitrary bytes, e.g.
invalid UTF-8). The seeds cover every client message type in JSON and as a protobuf
``ClientFrame``, each mutated field by field (wrong types, huge and negative numbers, floats
and bools where integers go, deep nesting, lone surrogates, NaN, invalid UTF-8, unknown
fields), plus random bytes and garbage protobuf. The loop then flips, truncates, splices and
duplicates bytes of each seed.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from typing import Any

from accord.api.edge.v1 import frames_pb2 as pb
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.binary import to_client_frame

ROOM = "fuzz-room"


@dataclass(frozen=True)
class Frame:
    wire: str  # text | binary | raw-text
    payload: bytes
    label: str

    def show(self, limit: int = 160) -> str:
        data = self.payload if len(self.payload) <= limit else self.payload[:limit] + b"..."
        return f"{self.wire} {self.label} ({len(self.payload)} B): {data!r}"


def templates(token: str) -> list[dict[str, Any]]:
    """One valid message of every client type (the fuzzed session is authenticated)."""
    change = {
        "client_seq": 1,
        "collection": "todos",
        "key": "t-1",
        "ts": 1763766000000123,
        "op": {"kind": "set", "fields": {"title": "milk", "done": False}},
    }
    return [
        {"type": "hello", "id": 1, "token": token, "client_id": "fuzz-1", "user": {"n": "A"}},
        {"type": "ping", "id": 2},
        {"type": "refresh", "id": 3, "token": token},
        {"type": "subscribe", "id": 4, "room": ROOM, "since": 0, "presence": {"s": "on"}},
        {"type": "unsubscribe", "id": 5, "room": ROOM},
        {"type": "push", "id": 6, "room": ROOM, "changes": [change]},
        {
            "type": "push",
            "id": 7,
            "room": ROOM,
            "changes": [
                {**change, "client_seq": 2, "op": {"kind": "incr", "field": "votes", "by": 3}},
                {**change, "client_seq": 3, "op": {"kind": "delete"}},
            ],
        },
        {"type": "presence", "id": 8, "room": ROOM, "state": {"cursor": [1, 2]}},
        {"type": "broadcast", "id": 9, "room": ROOM, "data": {"x": 1}, "channel": "c"},
        {"type": "presence_list", "id": 10, "room": ROOM, "limit": 10, "cursor": ""},
    ]


HUGE = [
    2**64,
    2**64 + 1,
    2**63,
    2**63 - 1,
    -(2**63) - 1,
    -(2**63),
    -1,
    0,
    10**30,
    -(10**30),
    1.5,
    -0.0,
    1e308,
    -1e308,
    5e-324,
    True,
    False,
]
# Raw JSON number and string tokens that json.dumps will not write.
RAW_TOKENS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 5000, '"\\ud800"', "1.0e+"]


def _leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from(HUGE),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
        st.sampled_from(["", ROOM, "\x00", "\ud800", "a" * 200, "*", "set", "incr", "delete"]),
    )


JSON_VALUES = st.recursive(
    _leaves(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _mutate(message: dict[str, Any], draw: Any) -> dict[str, Any]:
    message = copy.deepcopy(message)
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(message)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = message
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(JSON_VALUES)
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return message


def _nested(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


@st.composite
def json_frames(draw: Any, token: str) -> Frame:
    base = draw(st.sampled_from(templates(token)))
    message = _mutate(base, draw) if draw(st.booleans()) else base
    text = json.dumps(message, ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 4)) == 0:
        # Splice in a token json.dumps never writes (NaN, 1e999, a 5000-digit integer, ...).
        raw = draw(st.sampled_from(RAW_TOKENS))
        text = text.replace("1", raw, 1) if "1" in text else text[:-1] + f',"z":{raw}}}'
    return text_frame(text, f"json:{base['type']}")


PLACEHOLDER = "\u00a7\u00a7"  # two chars, four UTF-8 bytes: replaced by invalid UTF-8
INVALID_UTF8 = b"\xff\xfe\xc3\x28"


@st.composite
def binary_frames(draw: Any, token: str) -> Frame:
    base = draw(st.sampled_from([t for t in templates(token)]))
    frame = to_client_frame(base)
    kind = frame.WhichOneof("msg")
    body = getattr(frame, kind)
    for _ in range(draw(st.integers(0, 3))):
        fields = list(body.DESCRIPTOR.fields)
        if not fields:
            break
        field = draw(st.sampled_from(fields))
        if field.type == field.TYPE_STRING:
            json_like = field.name.endswith("_json")
            value = draw(
                st.one_of(
                    st.text(max_size=20),
                    st.just(PLACEHOLDER),
                    st.just("[" * 20_000 if json_like else "x" * 129),
                    st.just('{"a":' * 40 + "1" + "}" * 40),
                    st.sampled_from(RAW_TOKENS),
                    JSON_VALUES.map(json.dumps),
                )
            )
            try:
                setattr(body, field.name, value)
            except ValueError:  # a lone surrogate: protobuf strings are UTF-8
                setattr(body, field.name, PLACEHOLDER)
        elif field.type == field.TYPE_UINT64:
            setattr(body, field.name, draw(st.sampled_from([0, 1, 2**63, 2**64 - 1])))
        elif field.type == field.TYPE_UINT32:
            setattr(body, field.name, draw(st.sampled_from([0, 1, 1001, 2**32 - 1])))
        elif field.type == field.TYPE_BOOL:
            setattr(body, field.name, draw(st.booleans()))
        elif field.name == "changes":
            change = (
                body.changes.add() if draw(st.booleans()) or not body.changes else body.changes[0]
            )
            change.client_seq = draw(st.sampled_from([0, 1, 2**63, 2**64 - 1]))
            change.ts = draw(st.sampled_from([-(2**63), -1, 0, 2**63 - 1]))
            change.op_json = draw(JSON_VALUES.map(json.dumps) | st.sampled_from(RAW_TOKENS))
            change.collection = draw(st.sampled_from(["todos", "", "\x00", PLACEHOLDER]))
    if draw(st.booleans()):
        frame.id = draw(st.sampled_from([-(2**63), -1, 0, 2**63 - 1]))
    data = frame.SerializeToString()
    data = data.replace(PLACEHOLDER.encode(), INVALID_UTF8)
    return Frame("binary", data, f"pb:{kind}")


@st.composite
def garbage_frames(draw: Any) -> Frame:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return Frame("binary", draw(st.binary(max_size=200)), "random-bytes")
    if choice == 1:
        return Frame(
            "text", draw(st.text(max_size=200)).encode("utf-8", "surrogatepass"), "random-text"
        )
    if choice == 2:
        return Frame("raw-text", draw(st.binary(min_size=1, max_size=64)), "raw-text-bytes")
    if choice == 3:
        # Plausible protobuf: random tags and wire types, varints, length-delimited runs.
        parts = draw(
            st.lists(
                st.tuples(st.integers(1, 40), st.integers(0, 5), st.binary(max_size=12)), max_size=6
            )
        )
        data = b"".join(
            bytes([(tag << 3 | wire) & 0x7F]) + bytes([len(blob)]) + blob
            for tag, wire, blob in parts
        )
        return Frame("binary", data, "garbage-protobuf")
    depth = draw(st.sampled_from([33, 200, 5000, 50_000]))
    kind = draw(st.sampled_from(["list", "dict"]))
    if choice == 4:
        text = "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth
        return Frame("text", text.encode(), f"deep-{kind}-{depth}")
    fields = _nested(min(depth, 600), kind)
    message = {
        "type": "push",
        "room": ROOM,
        "changes": [
            {
                "client_seq": 1,
                "collection": "c",
                "key": "k",
                "op": {"kind": "set", "fields": {"f": fields}},
            }
        ],
    }
    return Frame("text", json.dumps(message).encode(), f"deep-push-{kind}")


def text_frame(text: str, label: str) -> Frame:
    """A text frame; one holding a lone surrogate is not UTF-8 and goes as raw bytes."""
    data = text.encode("utf-8", "surrogatepass")
    try:
        data.decode()
    except UnicodeDecodeError:
        return Frame("raw-text", data, label)
    return Frame("text", data, label)


def _byte_mutations(frame: Frame, rng: random.Random, count: int) -> list[Frame]:
    out = []
    for index in range(count):
        data = bytearray(frame.payload or b"\x00")
        how = rng.randrange(5)
        if how == 0:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif how == 1:
            del data[rng.randrange(len(data)) :]
        elif how == 2:
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.randbytes(rng.randint(1, 8))
        elif how == 3:
            data += data[: rng.randint(1, len(data))]
        else:
            at = rng.randrange(len(data))
            data[at : at + 1] = b"\\u0000" if frame.wire != "binary" else b"\x80\x80\x80\x80\x80"
        wire = frame.wire
        if wire == "text":
            try:
                bytes(data).decode()
            except UnicodeDecodeError:
                wire = "raw-text"
        out.append(Frame(wire, bytes(data), f"{frame.label}~{how}.{index}"))
    return out


def build(token: str, seeds: int, mutations_per_seed: int, seed: int = 19) -> list[Frame]:
    """``seeds`` hypothesis-drawn frames, each followed by ``mutations_per_seed`` byte mutants."""
    drawn: list[Frame] = []
    strategy = st.one_of(
        json_frames(token),
        json_frames(token),
        binary_frames(token),
        binary_frames(token),
        garbage_frames(),
    )

    @settings(
        max_examples=seeds,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(frame: Frame) -> None:
        drawn.append(frame)

    collect()
    rng = random.Random(seed)
    corpus: list[Frame] = []
    for frame in drawn:
        corpus.append(frame)
        corpus.extend(_byte_mutations(frame, rng, mutations_per_seed))
    return corpus


def oversized(limit: int) -> list[Frame]:
    """Frames over the size limit (TOO_LARGE) and over four times it (closed with 1009)."""
    over = json.dumps({"type": "broadcast", "room": ROOM, "data": {"x": "a" * limit}}).encode()
    frame = pb.ClientFrame()
    frame.broadcast.room = ROOM
    frame.broadcast.data_json = json.dumps({"x": "b" * limit})
    return [
        Frame("text", over, "too-large-json"),
        Frame("binary", frame.SerializeToString(), "too-large-pb"),
        Frame("binary", b"\x00" * (4 * limit + 1), "over-4x-limit"),
    ]

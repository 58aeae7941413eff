"""The JSON ↔ protobuf mapping of the client frames (frames.proto), written once, as a table.

Each message type is a ``Spec``: its fields, each a JSON name, the protobuf field
it travels in and how (a scalar or a list of scalars as it is, JSON text in a
``*_json`` field, a nested message or a list of them). ``encode`` fills a
protobuf message from a JSON-shaped dict and ``decode`` reads one back; the
edge encodes server frames and decodes client frames, and the tests (which
speak both encodings) do the opposite with the same table.

The ``changes`` fan-out is the exception on the way out: ``ChangesOut`` copies
committed changes from sync's protobuf straight into ``Change`` messages (its
patches are JSON text already); the table decodes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from accord.api.edge.v1 import frames_pb2 as pb
from accord.common import jsontext
from google.protobuf.message import Message


class Kind(Enum):
    VALUE = "value"  # a scalar
    VALUES = "values"  # a repeated scalar, as a list
    JSON = "json"  # JSON text in the protobuf field
    MESSAGE = "message"  # a nested message (a dict)
    MESSAGES = "messages"  # a repeated nested message (a list of dicts)


class Keep(Enum):
    """When ``decode`` puts the field into the dict."""

    ALWAYS = "always"
    SET = "set"  # only when not the protobuf default (0, "", false, empty)
    PRESENT = "present"  # only when the protobuf field is present (optional, message)


_NO = object()


_dumps = jsontext.dumps
_loads = jsontext.loads
"""As strict as a text frame: no lone surrogates (a ``*_json`` field is JSON text too)."""


class BadJson(ValueError):
    """A ``*_json`` field that is not JSON; ``str()`` names the field."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    """The JSON member; a dotted path (``winner.ts``) reaches into a nested object."""
    proto: str = ""
    """The protobuf field ("" : the same as ``name``, with ``_json`` for JSON text)."""
    kind: Kind = Kind.VALUE
    keep: Keep = Keep.ALWAYS
    empty: Any = _NO
    """What ``decode`` gives for a protobuf default (``_NO``: the default itself)."""
    default: Any = _NO
    """What ``encode`` writes when the JSON member is absent (``_NO``: nothing)."""
    spec: Spec | None = None

    @property
    def target(self) -> str:
        if self.proto:
            return self.proto
        return f"{self.name}_json" if self.kind is Kind.JSON else self.name


_VALUE, _VALUES, _JSON, _MESSAGE, _MESSAGES = range(5)
_KINDS = {
    Kind.VALUE: _VALUE,
    Kind.VALUES: _VALUES,
    Kind.JSON: _JSON,
    Kind.MESSAGE: _MESSAGE,
    Kind.MESSAGES: _MESSAGES,
}

# One field as ``encode``/``decode`` walk it (precomputed: these run per frame).
_Step = tuple[
    str,  # the JSON member
    "tuple[str, ...] | None",  # its dotted path, when it has dots
    str,  # the protobuf field
    int,  # the kind
    Keep,
    Any,  # empty
    Any,  # default
    "Spec | None",
]


class Spec:
    """One message type's fields (and a hook that finishes a decoded dict)."""

    __slots__ = ("after_decode", "decoder", "fields", "steps")

    def __init__(
        self, fields: tuple[Field, ...], after_decode: Callable[[dict[str, Any]], None] | None
    ) -> None:
        self.fields = fields
        self.after_decode = after_decode
        self.steps: tuple[_Step, ...] = tuple(
            (
                f.name,
                tuple(f.name.split(".")) if "." in f.name else None,
                f.target,
                _KINDS[f.kind],
                f.keep,
                f.empty,
                f.default,
                f.spec,
            )
            for f in fields
        )
        self.decoder = _decoder(self)


def _get(message: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = message
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _put(message: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        message = message.setdefault(part, {})
    message[path[-1]] = value


def encode(spec: Spec, message: Mapping[str, Any], into: Message) -> None:
    """Fill ``into`` from the JSON-shaped ``message``; absent (None) members stay unset."""
    for name, path, target, kind, _, _, default, sub in spec.steps:
        value = message.get(name) if path is None else _get(message, path)
        if value is None:
            if default is _NO:
                continue
            value = default
        if kind == _VALUE:
            setattr(into, target, value)
        elif kind == _VALUES:
            getattr(into, target).extend(value)
        elif kind == _JSON:
            setattr(into, target, _dumps(value))
        elif kind == _MESSAGE:
            assert sub is not None
            encode(sub, value, getattr(into, target))
        else:
            assert sub is not None
            items = getattr(into, target)
            for item in value:
                encode(sub, item, items.add())


def decode(spec: Spec, source: Message) -> dict[str, Any]:
    """The JSON-shaped dict of ``source``; raises ``BadJson`` for a ``*_json`` field
    that is not JSON."""
    return spec.decoder(source)


def _decoder(spec: Spec) -> Callable[[Message], dict[str, Any]]:
    """``decode`` for one spec, as straight-line Python compiled from the table (every
    incoming binary frame goes through it: a loop over the table costs twice as much)."""
    names: dict[str, Any] = {"_loads": _loads, "BadJson": BadJson, "_put": _put}
    lines = ["def decode(src):", "    m = {}"]
    for index, (name, path, target, kind, keep, empty, _, sub) in enumerate(spec.steps):
        body: list[str] = [f"raw = getattr(src, {target!r})"]
        if kind == _JSON:
            body += [
                "try:",
                "    value = _loads(raw) if raw else None",
                # Nesting past the parser's own limit is a bad field, not an internal error.
                "except (ValueError, RecursionError):",
                f"    raise BadJson({target!r}) from None",
            ]
        elif kind == _VALUE:
            body.append("value = raw")
        elif kind == _VALUES:
            body.append("value = list(raw)")
        else:
            assert sub is not None
            names[f"sub{index}"] = sub.decoder
            one = kind == _MESSAGE
            body.append(
                f"value = sub{index}(raw)" if one else f"value = [sub{index}(x) for x in raw]"
            )
        if empty is not _NO:
            names[f"empty{index}"] = empty
            body.append(f"if not raw: value = empty{index}")
        body.append(f"m[{name!r}] = value" if path is None else f"_put(m, {path!r}, value)")
        if keep is Keep.SET:
            body = [body[0], "if raw:", *(f"    {line}" for line in body[1:])]
        elif keep is Keep.PRESENT:
            body = [f"if src.HasField({target!r}):", *(f"    {line}" for line in body)]
        lines += (f"    {line}" for line in body)
    if spec.after_decode is not None:
        names["after"] = spec.after_decode
        lines.append("    after(m)")
    lines.append("    return m")
    exec("\n".join(lines), names)  # the table's own text, never input
    decoder: Callable[[Message], dict[str, Any]] = names["decode"]
    return decoder


def _spec(*fields: Field, after_decode: Callable[[dict[str, Any]], None] | None = None) -> Spec:
    return Spec(tuple(fields), after_decode)


V, J, SET, PRESENT = Kind.VALUE, Kind.JSON, Keep.SET, Keep.PRESENT
ROOM = Field("room")

# Client frames

PUSH_CHANGE = _spec(
    Field("client_seq"),
    Field("collection"),
    Field("key"),
    Field("op", kind=J),
    Field("ts", keep=SET),
)
CLIENT: dict[str, Spec] = {
    "hello": _spec(
        Field("token", empty=None),
        Field("client_id"),
        Field("user", kind=J, keep=SET),
    ),
    "ping": _spec(),
    "refresh": _spec(Field("token")),
    "subscribe": _spec(
        ROOM,
        Field("since"),
        Field("presence", kind=J, keep=PRESENT, empty={}),
        Field("users", keep=SET),
        Field("epoch", keep=SET),
    ),
    "unsubscribe": _spec(ROOM),
    "push": _spec(ROOM, Field("changes", kind=Kind.MESSAGES, spec=PUSH_CHANGE)),
    "presence": _spec(ROOM, Field("state", kind=J, empty={})),
    "broadcast": _spec(ROOM, Field("data", kind=J, default=None), Field("channel", keep=SET)),
    "presence_list": _spec(
        ROOM,
        Field("cursor", keep=SET),
        Field("limit", keep=SET),
        Field("counts_only"),
    ),
}

# Server frames

PEER = _spec(
    Field("session_id"),
    Field("user_id"),
    Field("client_id"),
    Field("user", kind=J, empty={}, default={}),
    Field("state", kind=J, empty={}, default={}),
)
PEERS = Field("peers", kind=Kind.MESSAGES, spec=PEER)
RECORD = _spec(Field("collection"), Field("key"), Field("value", kind=J))
CHANGE = _spec(
    Field("seq"),
    Field("collection"),
    Field("key"),
    Field("client_id"),
    Field("client_seq"),
    Field("ts"),
    Field("patch", kind=J),
)
CONFLICT = _spec(
    Field("field"),
    Field("winner.ts", proto="winner_ts"),
    Field("winner.client_id", proto="winner_client_id"),
)
ACK_ERROR = _spec(Field("code"), Field("message"), Field("json_path", keep=SET))
ACK_RESULT = _spec(
    Field("client_seq"),
    Field("seq"),
    Field("status"),
    Field("ts", keep=PRESENT),
    Field("conflicts", kind=Kind.MESSAGES, keep=SET, spec=CONFLICT),
    Field("error", kind=Kind.MESSAGE, keep=PRESENT, spec=ACK_ERROR),
)
SERVER_INFO = _spec(
    Field("version"),
    Field("protocol"),
    Field("heartbeat_ms"),
    Field("max_message_bytes"),
    Field("features", kind=Kind.VALUES),
)


def _presence_peers(message: dict[str, Any]) -> None:
    # A sync lists its peers (maybe none); the other events name one peer.
    if message["event"] == "sync":
        message.setdefault("peers", [])


SERVER: dict[str, Spec] = {
    "welcome": _spec(
        Field("session_id"),
        Field("user_id"),
        Field("server", kind=Kind.MESSAGE, spec=SERVER_INFO),
    ),
    "pong": _spec(),
    "refreshed": _spec(),
    "subscribed": _spec(ROOM, Field("head"), Field("epoch")),
    "unsubscribed": _spec(ROOM),
    "snapshot": _spec(
        ROOM,
        Field("seq"),
        Field("last"),
        Field("epoch"),
        Field("records", kind=Kind.MESSAGES, spec=RECORD),
    ),
    "changes": _spec(ROOM, Field("changes", kind=Kind.MESSAGES, spec=CHANGE)),
    "ack": _spec(ROOM, Field("results", kind=Kind.MESSAGES, spec=ACK_RESULT)),
    "presence": _spec(
        ROOM,
        Field("event"),
        Field("peers", kind=Kind.MESSAGES, keep=SET, spec=PEER),
        Field("peer", kind=Kind.MESSAGE, keep=PRESENT, spec=PEER),
        Field("reason", keep=SET),
        Field("count", keep=PRESENT),
        Field("users", keep=PRESENT),
        Field("next_cursor", keep=SET),
        after_decode=_presence_peers,
    ),
    "presence_page": _spec(
        ROOM, PEERS, Field("count"), Field("users"), Field("next_cursor", keep=SET)
    ),
    "broadcast": _spec(
        ROOM, Field("data", kind=J, default=None), Field("from"), Field("channel", keep=SET)
    ),
    "error": _spec(
        Field("code"),
        Field("message"),
        Field("room", keep=SET),
        Field("retry_after_ms", keep=PRESENT),
    ),
}


_Frame = TypeVar("_Frame", pb.ClientFrame, pb.ServerFrame)


def _to_frame(specs: dict[str, Spec], frame: _Frame, message: Mapping[str, Any]) -> _Frame:
    kind = message.get("type")
    spec = specs.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise ValueError(f"no binary form for message type {kind!r}")
    if message.get("id") is not None:
        frame.id = message["id"]
    body = getattr(frame, kind)  # type: ignore[arg-type]
    body.SetInParent()
    encode(spec, message, body)
    return frame


def _from_frame(specs: dict[str, Spec], frame: pb.ClientFrame | pb.ServerFrame) -> dict[str, Any]:
    """The frame as its JSON message; a frame with no known message has ``type`` ""."""
    kind = frame.WhichOneof("msg") or ""
    message: dict[str, Any] = {"type": kind}
    if frame.HasField("id"):
        message["id"] = frame.id
    if kind:
        message.update(decode(specs[kind], getattr(frame, kind)))
    return message


def to_server_frame(message: Mapping[str, Any]) -> pb.ServerFrame:
    return _to_frame(SERVER, pb.ServerFrame(), message)


def from_server_frame(frame: pb.ServerFrame) -> dict[str, Any]:
    return _from_frame(SERVER, frame)


def to_client_frame(message: Mapping[str, Any]) -> pb.ClientFrame:
    return _to_frame(CLIENT, pb.ClientFrame(), message)


def from_client_frame(frame: pb.ClientFrame) -> dict[str, Any]:
    """Raises ``BadJson`` for a ``*_json`` field that is not JSON."""
    return _from_frame(CLIENT, frame)

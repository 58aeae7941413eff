"""The client protocol's wire forms: JSON text frames and protobuf binary frames.

Incoming frames of either encoding become the same JSON-shaped dict, so the
session logic is written once. Outgoing messages are ``Out`` objects that
encode lazily and at most once per encoding, so a fan-out message is encoded
once and the same bytes go to every socket.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from accord.api.edge.v1 import frames_pb2 as pb
from accord.api.sync.v1 import sync_pb2
from accord.common import jsontext
from google.protobuf.message import DecodeError

PROTOCOL_VERSION = 1


class ProtocolError(Exception):
    """A request that gets an ``error`` reply (and, with ``close``, ends the session)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        room: str | None = None,
        retry_after_ms: int | None = None,
        close: int | None = None,
        request_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.room = room
        self.retry_after_ms = retry_after_ms
        self.close = close
        # The frame's id, when the error is raised before the frame is handed on.
        self.request_id = request_id


def too_deep(value: Any, max_depth: int) -> bool:
    """True when containers nest deeper than ``max_depth`` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def is_int(value: Any) -> bool:
    """An integer, not a bool (``True`` is an ``int`` to Python, not to the protocol)."""
    return isinstance(value, int) and not isinstance(value, bool)


def request_id_of(message: dict[str, Any]) -> int | None:
    """The frame's integer ``id`` (None when absent or not an integer)."""
    value = message.get("id")
    return value if is_int(value) else None


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]|[^\s\[\]{}:,"]+')
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)").fullmatch
SALVAGE_SCAN = 64 * 1024
"""How far into an over-deep frame its top-level ``id`` is looked for (bounded work)."""


def _top_level_id(text: str) -> int | None:
    """A top-level integer ``"id"`` member, found without parsing (for frames nested
    beyond what the parser can recurse into); looks at the first ``SALVAGE_SCAN`` characters."""
    depth = 0
    key: str | None = None
    after_colon = False
    for match in _TOKEN.finditer(text, 0, SALVAGE_SCAN):
        token = match.group()
        if token in ("{", "["):
            if depth == 0 and token == "[":
                return None
            depth += 1
            after_colon = False
        elif token in ("}", "]"):
            depth -= 1
        elif depth != 1:
            continue
        elif token == ":":
            after_colon = True
        elif token == ",":
            key, after_colon = None, False
        elif after_colon:
            if key == '"id"':
                return int(token) if _INTEGER(token) else None
            after_colon = False
        else:
            key = token
    return None


def _salvage_id(data: bytes | str) -> int | None:
    """The integer ``id`` of a frame that is JSON but not acceptable JSON (a lone
    surrogate, a number too large, nesting beyond the parser's reach)."""
    try:
        message = json.loads(data)
    except RecursionError:
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        return _top_level_id(text)
    except ValueError:
        return None
    return request_id_of(message) if isinstance(message, dict) else None


def parse_json(data: bytes | str, max_depth: int) -> dict[str, Any]:
    try:
        message = jsontext.loads(data)
    except (ValueError, RecursionError):
        raise ProtocolError(
            "BAD_REQUEST", "frame is not valid JSON", request_id=_salvage_id(data)
        ) from None
    if not isinstance(message, dict):
        raise ProtocolError("BAD_REQUEST", "frame must be a JSON object")
    if too_deep(message, max_depth):
        raise ProtocolError(
            "BAD_REQUEST",
            f"JSON nests deeper than {max_depth} levels",
            request_id=request_id_of(message),
        )
    return message


def _json_field(text: str, what: str) -> Any:
    if text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ProtocolError("BAD_REQUEST", f"{what} is not valid JSON") from None


def parse_binary(data: bytes, max_depth: int) -> dict[str, Any]:
    """A protobuf ``ClientFrame`` as the equivalent JSON message."""
    frame = pb.ClientFrame()
    try:
        frame.ParseFromString(data)
    except DecodeError:
        raise ProtocolError("BAD_REQUEST", "binary frame is not a valid ClientFrame") from None
    try:
        return _binary_message(frame, max_depth)
    except ProtocolError as error:
        if frame.HasField("id"):
            error.request_id = frame.id
        raise


def _binary_message(frame: pb.ClientFrame, max_depth: int) -> dict[str, Any]:
    kind = frame.WhichOneof("msg")
    message: dict[str, Any] = {"type": kind or ""}
    if frame.HasField("id"):
        message["id"] = frame.id
    if kind == "hello":
        message["token"] = frame.hello.token or None
        message["client_id"] = frame.hello.client_id
        if frame.hello.user_json:
            message["user"] = _json_field(frame.hello.user_json, "user_json")
    elif kind == "refresh":
        message["token"] = frame.refresh.token
    elif kind == "subscribe":
        message["room"] = frame.subscribe.room
        message["since"] = frame.subscribe.since
        if frame.subscribe.HasField("presence_json"):
            message["presence"] = _json_field(frame.subscribe.presence_json, "presence_json") or {}
        if frame.subscribe.users:
            message["users"] = True
    elif kind == "unsubscribe":
        message["room"] = frame.unsubscribe.room
    elif kind == "push":
        changes = []
        for change in frame.push.changes:
            item: dict[str, Any] = {
                "client_seq": change.client_seq,
                "collection": change.collection,
                "key": change.key,
                "op": _json_field(change.op_json, "op_json"),
            }
            if change.ts:
                item["ts"] = change.ts
            changes.append(item)
        message["room"] = frame.push.room
        message["changes"] = changes
    elif kind == "presence":
        message["room"] = frame.presence.room
        message["state"] = _json_field(frame.presence.state_json, "state_json") or {}
    elif kind == "broadcast":
        message["room"] = frame.broadcast.room
        message["data"] = _json_field(frame.broadcast.data_json, "data_json")
        if frame.broadcast.channel:
            message["channel"] = frame.broadcast.channel
    elif kind == "presence_list":
        message["room"] = frame.presence_list.room
        if frame.presence_list.cursor:
            message["cursor"] = frame.presence_list.cursor
        if frame.presence_list.limit:
            message["limit"] = frame.presence_list.limit
        message["counts_only"] = frame.presence_list.counts_only
    elif kind is None:
        raise ProtocolError("UNSUPPORTED", "binary frame carries no known message")
    if too_deep(message, max_depth):
        raise ProtocolError("BAD_REQUEST", f"JSON nests deeper than {max_depth} levels")
    return message


_dumps = jsontext.dumps


_PLAIN = re.compile(r'[^"\\\x00-\x1f]*').fullmatch


def _quote(text: str) -> str:
    """``text`` as a JSON string, as ``_dumps`` writes it; fast for the usual plain names."""
    return f'"{text}"' if _PLAIN(text) else _dumps(text)


def _peer_pb(peer: dict[str, Any]) -> pb.Peer:
    return pb.Peer(
        session_id=peer["session_id"],
        user_id=peer["user_id"],
        client_id=peer["client_id"],
        user_json=_dumps(peer.get("user") or {}),
        state_json=_dumps(peer.get("state") or {}),
    )


def to_server_frame(message: dict[str, Any]) -> pb.ServerFrame:
    """The protobuf form of a JSON-shaped server message."""
    frame = pb.ServerFrame()
    if "id" in message:
        frame.id = message["id"]
    kind = message["type"]
    if kind == "welcome":
        server = message["server"]
        frame.welcome.CopyFrom(
            pb.Welcome(
                session_id=message["session_id"],
                user_id=message["user_id"],
                server=pb.ServerInfo(
                    version=server["version"],
                    protocol=server["protocol"],
                    heartbeat_ms=server["heartbeat_ms"],
                    max_message_bytes=server["max_message_bytes"],
                    features=server["features"],
                ),
            )
        )
    elif kind == "pong":
        frame.pong.SetInParent()
    elif kind == "refreshed":
        frame.refreshed.SetInParent()
    elif kind == "subscribed":
        frame.subscribed.CopyFrom(pb.Subscribed(room=message["room"], head=message["head"]))
    elif kind == "unsubscribed":
        frame.unsubscribed.CopyFrom(pb.Unsubscribed(room=message["room"]))
    elif kind == "snapshot":
        frame.snapshot.CopyFrom(
            pb.Snapshot(
                room=message["room"],
                seq=message["seq"],
                last=message["last"],
                records=[
                    pb.Record(
                        collection=r["collection"], key=r["key"], value_json=_dumps(r["value"])
                    )
                    for r in message["records"]
                ],
            )
        )
    elif kind == "ack":
        results = []
        for result in message["results"]:
            item = pb.AckResult(
                client_seq=result["client_seq"],
                seq=result["seq"],
                status=result["status"],
                conflicts=[
                    pb.Conflict(
                        field=c["field"],
                        winner_ts=c["winner"]["ts"],
                        winner_client_id=c["winner"]["client_id"],
                    )
                    for c in result.get("conflicts", ())
                ],
            )
            if "ts" in result:
                item.ts = result["ts"]
            results.append(item)
        frame.ack.CopyFrom(pb.Ack(room=message["room"], results=results))
    elif kind == "presence":
        event = pb.PresenceEvent(room=message["room"], event=message["event"])
        if "peers" in message:
            event.peers.extend(_peer_pb(p) for p in message["peers"])
        if "peer" in message:
            event.peer.CopyFrom(_peer_pb(message["peer"]))
        if "reason" in message:
            event.reason = message["reason"]
        if "count" in message:
            event.count = message["count"]
        if "users" in message:
            event.users = message["users"]
        event.next_cursor = message.get("next_cursor", "")
        frame.presence.CopyFrom(event)
    elif kind == "presence_page":
        frame.presence_page.CopyFrom(
            pb.PresencePage(
                room=message["room"],
                peers=[_peer_pb(p) for p in message.get("peers", ())],
                count=message["count"],
                users=message["users"],
                next_cursor=message.get("next_cursor", ""),
            )
        )
    elif kind == "broadcast":
        frame.broadcast.CopyFrom(
            pb.BroadcastRecv(
                room=message["room"],
                data_json=_dumps(message["data"]),
                channel=message.get("channel", ""),
                **{"from": message["from"]},
            )
        )
    elif kind == "error":
        error = pb.Error(
            code=message["code"], message=message["message"], room=message.get("room", "")
        )
        if "retry_after_ms" in message:
            error.retry_after_ms = message["retry_after_ms"]
        frame.error.CopyFrom(error)
    else:
        raise ValueError(f"no binary form for server message type {kind!r}")
    return frame


def ws_frame(payload: bytes, binary: bool) -> bytes:
    """An unmasked, unfragmented, uncompressed WebSocket frame (RFC 6455 5.2)."""
    first = 0x82 if binary else 0x81
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + size.to_bytes(8, "big")
    return header + payload


class Out:
    """A server message, encoded at most once per encoding.

    ``frame()`` also caches the whole WebSocket frame, so a fan-out message is
    framed once and the same bytes are written to every idle socket.
    """

    __slots__ = ("_binary", "_frames", "_text", "key", "message")

    def __init__(self, message: dict[str, Any], key: tuple[str, ...] | None = None) -> None:
        self.message = message
        # Messages with the same key supersede each other: a backlogged session
        # sends only the newest (presence of one peer, broadcasts of one sender).
        self.key = key
        self._text: bytes | None = None
        self._binary: bytes | None = None
        self._frames: dict[bool, bytes] = {}

    def frame(self, binary: bool) -> bytes:
        frame = self._frames.get(binary)
        if frame is None:
            frame = self._frames[binary] = ws_frame(
                self.binary() if binary else self.text(), binary
            )
        return frame

    @property
    def type(self) -> str:
        return str(self.message["type"])

    def text(self) -> bytes:
        if self._text is None:
            self._text = _dumps(self.message).encode()
        return self._text

    def binary(self) -> bytes:
        if self._binary is None:
            self._binary = to_server_frame(self.message).SerializeToString()
        return self._binary


class ChangesOut(Out):
    """A ``changes`` message built from committed changes; patches are forwarded raw."""

    __slots__ = ("changes", "room")

    def __init__(self, room: str, changes: list[sync_pb2.CommittedChange]) -> None:
        super().__init__({"type": "changes", "room": room})
        self.room = room
        self.changes = changes

    def text(self) -> bytes:
        if self._text is None:
            items = ",".join(
                f'{{"seq":{c.seq},"collection":{_quote(c.collection)},"key":{_quote(c.key)},'
                f'"client_id":{_quote(c.client_id)},"client_seq":{c.client_seq},"ts":{c.ts},'
                f'"patch":{c.patch_json or "{}"}}}'
                for c in self.changes
            )
            self._text = (
                f'{{"type":"changes","room":{_dumps(self.room)},"changes":[{items}]}}'.encode()
            )
        return self._text

    def binary(self) -> bytes:
        if self._binary is None:
            frame = pb.ServerFrame(
                changes=pb.Changes(
                    room=self.room,
                    changes=[
                        pb.Change(
                            seq=c.seq,
                            collection=c.collection,
                            key=c.key,
                            client_id=c.client_id,
                            client_seq=c.client_seq,
                            ts=c.ts,
                            patch_json=c.patch_json or "{}",
                        )
                        for c in self.changes
                    ],
                )
            )
            self._binary = frame.SerializeToString()
        return self._binary


def error_message(error: ProtocolError, request_id: int | None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "error", "code": error.code, "message": error.message}
    if request_id is not None:
        message["id"] = request_id
    if error.room is not None:
        message["room"] = error.room
    if error.retry_after_ms is not None:
        message["retry_after_ms"] = error.retry_after_ms
    return message

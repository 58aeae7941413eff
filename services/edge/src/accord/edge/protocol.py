"""The client protocol's outgoing side and its error type.

Outgoing messages are ``Out`` objects that encode lazily and at most once per
encoding (JSON text or protobuf, through the mapping in ``codec``), so a
fan-out message is encoded once and the same bytes go to every socket.
Incoming frames are decoded in ``frames``.
"""

from __future__ import annotations

from typing import Any

from accord.api.edge.v1 import frames_pb2 as pb
from accord.api.sync.v1 import sync_pb2
from accord.common import jsontext
from accord.edge.codec import to_server_frame


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


_dumps = jsontext.dumps


def _quote(text: str) -> str:
    """``text`` as a JSON string, as ``_dumps`` writes it; fast for the usual plain names.

    Text with no quote, backslash or unprintable character (control characters among
    them) is written as it is; the rest (``isprintable`` is also false for a few
    characters orjson writes as they are, such as U+2028) goes through ``_dumps``."""
    if '"' not in text and "\\" not in text and text.isprintable():
        return f'"{text}"'
    return _dumps(text)


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

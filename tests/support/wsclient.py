"""A plain WebSocket client for driving the edge in tests (JSON or protobuf frames)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp
import jwt
from accord.api.edge.v1 import frames_pb2 as pb

from tests.support.binary import from_server_frame, to_client_frame

SECRET = "test-secret-0123456789abcdef-0123456789"
DEFAULT_TIMEOUT = 10.0


def set_change(client_seq: int, key: str, **fields: Any) -> dict[str, Any]:
    """A client ``set`` change of ``fields`` to record ``key`` of collection ``todos``."""
    return {
        "client_seq": client_seq,
        "collection": "todos",
        "key": key,
        "op": {"kind": "set", "fields": fields},
    }


def make_token(
    sub: str = "u-1",
    *,
    ttl: float = 3600,
    rooms: list[str] | None = None,
    write: list[str] | None = None,
    secret: str = SECRET,
    **claims: Any,
) -> str:
    payload: dict[str, Any] = {"sub": sub, "exp": int(time.time() + ttl), **claims}
    if rooms is not None:
        payload["rooms"] = rooms
    if write is not None:
        payload["write"] = write
    return jwt.encode(payload, secret, algorithm="HS256")


class Closed(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class Client:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        encoding: str = "json",
    ) -> None:
        self.http = http
        self.ws = ws
        self.encoding = encoding
        self.next_id = 1
        self.inbox: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] = {}
        self.binary_replies = 0

    @classmethod
    async def connect(cls, url: str, encoding: str = "json", **kwargs: Any) -> Client:
        """``encoding="binary"`` sends every message as a protobuf ClientFrame."""
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(url, autoping=True, max_msg_size=64 * 1024 * 1024, **kwargs)
        except Exception:
            await http.close()
            raise
        return cls(http, ws, encoding)

    async def close(self) -> None:
        if not self.ws.closed:
            await self.ws.close()
        await self.http.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def take_id(self) -> int:
        request_id = self.next_id
        self.next_id += 1
        return request_id

    async def send(self, message: dict[str, Any]) -> None:
        if self.encoding == "binary":
            await self.ws.send_bytes(to_client_frame(message).SerializeToString())
        else:
            await self.ws.send_str(json.dumps(message))

    async def send_raw(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def send_frame(self, frame: pb.ClientFrame) -> None:
        await self.ws.send_bytes(frame.SerializeToString())

    async def _receive(self, timeout: float | None) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type == aiohttp.WSMsgType.TEXT:
            parsed: dict[str, Any] = json.loads(msg.data)
            return parsed
        if msg.type == aiohttp.WSMsgType.BINARY:
            self.binary_replies += 1
            frame = pb.ServerFrame()
            frame.ParseFromString(msg.data)
            return from_server_frame(frame)
        if msg.type == aiohttp.WSMsgType.CLOSE:
            raise Closed(int(msg.data))
        raise Closed(self.ws.close_code)

    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        if self.inbox:
            return self.inbox.pop(0)
        return await self._receive(timeout)

    async def expect(self, predicate: Any, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The first message matching ``predicate`` (a type name or a callable); others are kept."""
        match = (lambda m: m.get("type") == predicate) if isinstance(predicate, str) else predicate
        for index, message in enumerate(self.inbox):
            if match(message):
                return self.inbox.pop(index)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await self._receive(None)
                    if match(message):
                        return message
                    self.inbox.append(message)
        except TimeoutError:
            raise TimeoutError(f"no matching message; kept: {self.inbox[-5:]}") from None

    async def reply(self, request_id: int, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        return await self.expect(lambda m: m.get("id") == request_id, timeout)

    async def request(
        self, message: dict[str, Any], timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        request_id = self.take_id()
        await self.send({**message, "id": request_id})
        return await self.reply(request_id, timeout)

    async def hello(
        self, token: str | None = None, client_id: str = "c-1", user: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "hello", "client_id": client_id}
        if token is not None:
            message["token"] = token
        if user is not None:
            message["user"] = user
        reply = await self.request(message)
        assert reply["type"] == "welcome", reply
        self.welcome = reply
        return reply

    async def subscribe(
        self, room: str, since: int = 0, presence: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "subscribe", "room": room, "since": since}
        if presence is not None:
            message["presence"] = presence
        reply = await self.request(message)
        assert reply["type"] == "subscribed", reply
        return reply

    async def push(self, room: str, changes: list[dict[str, Any]]) -> dict[str, Any]:
        return await self.request({"type": "push", "room": room, "changes": changes})

    async def idle(self, seconds: float) -> None:
        """Keep reading (and so answering the server's pings) for ``seconds``."""
        with contextlib.suppress(TimeoutError):
            await self.expect(lambda m: False, timeout=seconds)

    async def closed(self, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Read until the server closes; the close code."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError("server did not close the connection")
            msg = await self.ws.receive(timeout=remaining)
            if msg.type == aiohttp.WSMsgType.CLOSE:
                # The code in the server's close frame (close_code may read 1006
                # when the server drops TCP before the handshake completes).
                return int(msg.data)
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return self.ws.close_code
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.inbox.append(json.loads(msg.data))


class Replica:
    """Applies snapshots and patches exactly as protocol.md tells clients to."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.seq = 0
        self.seqs: list[int] = []
        self.in_snapshot = False

    def apply(self, message: dict[str, Any]) -> None:
        if message["type"] == "snapshot":
            # A snapshot replaces the replica; it may span several frames.
            if not self.in_snapshot:
                self.records.clear()
                self.in_snapshot = True
            for record in message.get("records", []):
                self.records[(record["collection"], record["key"])] = dict(record["value"])
            if message.get("last"):
                self.in_snapshot = False
                self.seq = int(message["seq"])
        elif message["type"] == "changes":
            assert not self.in_snapshot, "changes inside a snapshot"
            for change in message["changes"]:
                self.apply_change(change)

    def apply_change(self, change: dict[str, Any]) -> None:
        seq = int(change["seq"])
        assert seq == self.seq + 1, f"gap or repeat: at {self.seq}, got {seq}"
        self.seq = seq
        self.seqs.append(seq)
        key = (change["collection"], change["key"])
        patch = change["patch"]
        if isinstance(patch, str):
            patch = json.loads(patch)
        if set(patch) - {"deleted", "unset", "set", "incr"}:
            # Set and list patches: the reference client algorithm of merge.md.
            from accord.sync.patch import apply_patch

            record = apply_patch(self.records.get(key), patch)
            if record is None:
                self.records.pop(key, None)
            else:
                self.records[key] = record
            return
        for op, arg in patch.items():
            if op == "deleted":
                self.records.pop(key, None)
            elif op == "unset":
                for name in arg:
                    self.records.get(key, {}).pop(name, None)
            elif op == "set":
                self.records.setdefault(key, {}).update(arg)
            elif op == "incr":
                record = self.records.setdefault(key, {})
                for name, by in arg.items():
                    record[name] = record.get(name, 0) + by

    def view(self, collection: str) -> dict[str, dict[str, Any]]:
        return {k: v for (c, k), v in self.records.items() if c == collection}


async def sync_until(
    client: Client, replica: Replica, seq: int, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Apply snapshot and changes messages until ``replica`` reaches ``seq``."""
    while replica.seq < seq:
        message = await client.expect(lambda m: m.get("type") in ("snapshot", "changes"), timeout)
        replica.apply(message)

"""One client session: the protocol of docs/protocol.md over one WebSocket.

The reader handles one message at a time, in order; replies and fan-out go
through a bounded outbound queue drained by a writer task, so a slow socket
never blocks a room's fan-out. A session that cannot keep up is closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from accord.api.presence.v1 import presence_pb2 as ppb
from accord.api.sync.v1 import sync_pb2 as spb
from accord.common import jsontext
from accord.common.tasks import spawn
from accord.edge import metrics
from accord.edge.auth import CLIENT_ID_RE, NAME_RE, AuthError, Identity
from accord.edge.backends import to_protocol_error
from accord.edge.limits import TokenBucket
from accord.edge.ops import parse_change
from accord.edge.protocol import (
    PROTOCOL_VERSION,
    Out,
    ProtocolError,
    error_message,
    parse_binary,
    parse_json,
)
from accord.edge.rooms import Subscription
from accord.edge.signal import Signal
from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from accord.edge.app import Edge

log = logging.getLogger(__name__)

CHANNEL_RE = CLIENT_ID_RE  # broadcast channels: 1-64 of [A-Za-z0-9_.:-]

VERSION = "0.1.0"
FEATURES = [
    "set",
    "delete",
    "incr",
    "add",
    "remove",
    "insert",
    "remove_items",
    "presence",
    "broadcast",
    "binary",
]
MAX_STATE_BYTES = 4096
MAX_BROADCAST_BYTES = 64 * 1024
CLOSE_TIMEOUT = 5.0
FAST_WRITE_LIMIT = 64 * 1024  # transport buffer below which messages skip the queue
COALESCE_AFTER = 64  # queued messages before superseded presence/broadcast are coalesced
ABUSE_LIMIT = 20  # rate-limit violations in a row before the session is closed

CLOSE_UNAUTHENTICATED = 4001
CLOSE_ADMIN = 4003
CLOSE_POLICY = 4008
CLOSE_SLOW_CONSUMER = 4009
CLOSE_TOO_BIG = 1009
CLOSE_RESTART = 1012
CLOSE_FULL = 1013
CLOSE_HEARTBEAT = 1001


class _Slot:
    __slots__ = ("out",)

    def __init__(self, out: Out) -> None:
        self.out = out


_EMPTY: collections.deque[_Slot] = collections.deque(maxlen=0)
"""Every idle session's queue (shared: ``send`` gives a session its own before appending)."""


@dataclass(slots=True)
class RoomEntry:
    sub: Subscription
    presence: dict[str, Any] | None = None  # our state when joined to the room's presence
    # A join was sent, so a leave is owed when the room or session ends, even if the
    # join's answer never came (the session closed or unsubscribed meanwhile).
    joining: bool = False
    watching: bool = False
    task: asyncio.Task[None] | None = None
    # Set once `subscribed` (or the subscribe's error) is queued: replies to
    # pushes for the room never overtake it.
    answered: Signal = field(default_factory=Signal)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _room_of(message: dict[str, Any]) -> str:
    room = message.get("room")
    if not isinstance(room, str) or not NAME_RE.match(room):
        raise ProtocolError("BAD_REQUEST", "room must be 1-128 characters of [A-Za-z0-9_.:-]")
    return room


def _json_size(value: Any) -> int:
    return len(jsontext.dumps(value).encode())


class Session:
    # Slots: one of these per connection (memory per idle connection).
    __slots__ = (
        "_closer",
        "_drained",
        "_expiry",
        "_idle",
        "_latest",
        "_queue",
        "_transport",
        "_writer",
        "binary",
        "bucket",
        "client_id",
        "close_code",
        "closing",
        "edge",
        "identity",
        "last_seen",
        "remote",
        "rooms",
        "session_id",
        "settings",
        "user",
        "violations",
        "ws",
    )

    def __init__(
        self,
        edge: Edge,
        ws: web.WebSocketResponse,
        remote: str | None,
        transport: asyncio.Transport | None = None,
    ) -> None:
        self.edge = edge
        self.settings = edge.settings
        self.ws = ws
        # With the transport, a message for an idle socket is written at once
        # instead of waking the writer task (the fan-out fast path).
        self._transport = transport
        self.remote = remote
        self.session_id = f"s-{uuid.uuid4().hex[:16]}"
        self.identity: Identity | None = None
        self.client_id = ""
        self.user: dict[str, Any] = {}
        self.rooms: dict[str, RoomEntry] = {}
        self.binary = False
        self.last_seen = time.monotonic()
        self.bucket = TokenBucket(self.settings.rate_limit, self.settings.rate_burst)
        self.violations = 0
        self.closing = False
        self.close_code: int | None = None
        # Messages waiting for the writer task, which runs only while there are any
        # (an idle session has neither: memory per connection).
        self._queue: collections.deque[_Slot] = _EMPTY
        self._latest: dict[tuple[str, ...], _Slot] = {}
        self._drained = Signal(True)
        self._writer: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._closer: asyncio.Task[None] | None = None
        self._idle = Signal(True)

    # -- outbound ---------------------------------------------------------

    def send(self, out: Out) -> None:
        if self.closing:
            return
        queue = self._queue
        if out.key is not None:
            slot = self._latest.get(out.key)
            if slot is not None and len(queue) >= COALESCE_AFTER:
                if slot.out.message.get("event") == "join" and out.message.get("event") == "update":
                    # The client has not seen the peer yet: it joins with the newer state.
                    out = Out({**out.message, "event": "join"}, out.key)
                slot.out = out
                metrics.COALESCED.inc()
                return
        if len(queue) >= self.settings.send_queue_size:
            metrics.SLOW_CONSUMERS.inc()
            log.warning("closing slow consumer", extra={"session_id": self.session_id})
            self.close_soon(
                CLOSE_SLOW_CONSUMER, "slow consumer: too many messages queued", flush=False
            )
            return
        transport = self._transport
        if (
            not queue
            and transport is not None
            and transport.get_write_buffer_size() < FAST_WRITE_LIMIT
            and not transport.is_closing()
            and not self.ws.closed
        ):
            # Nothing is queued and the writer is idle or has already written
            # (aiohttp writes uncompressed frames synchronously), so writing
            # here keeps the order.
            frame = out.frame(self.binary)
            transport.write(frame)
            metrics.count_out(out.type, len(frame))
            return
        slot = _Slot(out)
        if queue is _EMPTY:
            queue = self._queue = collections.deque()
        queue.append(slot)
        self._drained.clear()
        if out.key is not None:
            self._latest[out.key] = slot
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    @property
    def queued(self) -> int:
        return len(self._queue)

    def reply(self, message: dict[str, Any], request_id: int | None) -> None:
        if request_id is not None:
            message["id"] = request_id
        self.send(Out(message))

    def send_error(self, error: ProtocolError, request_id: int | None) -> None:
        metrics.ERRORS.labels(error.code).inc()
        self.send(Out(error_message(error, request_id)))

    async def _write_loop(self) -> None:
        """Send what is queued, then end (the next queued message starts a new one)."""
        ws = self.ws
        queue = self._queue
        try:
            while queue:
                slot = queue.popleft()
                out = slot.out
                if out.key is not None and self._latest.get(out.key) is slot:
                    del self._latest[out.key]
                if self.binary:
                    data, opcode = out.binary(), WSMsgType.BINARY
                else:
                    data, opcode = out.text(), WSMsgType.TEXT
                try:
                    await ws.send_frame(data, opcode)
                except (ConnectionError, RuntimeError):
                    queue.clear()
                    return
                metrics.count_out(out.type, len(data))
        finally:
            self._writer = None
            self._queue = _EMPTY
            self._drained.set()

    async def _flush(self, timeout: float) -> None:
        """Wait until the writer has sent everything queued (or ``timeout``)."""
        if self._writer is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout)

    def close_soon(self, code: int, reason: str, *, flush: bool = True) -> None:
        if self.close_code is not None:
            return
        self.close_code = code
        self._closer = spawn(self._close(code, reason, flush))

    async def _close(self, code: int, reason: str, flush: bool) -> None:
        if flush:
            await self._flush(2.0)
        self.closing = True
        try:
            # A stalled peer never takes the close frame off a full socket: the
            # frame stays queued behind the data, and the transport is closed
            # (flushing what it can) instead of waiting for the handshake.
            await asyncio.wait_for(
                self.ws.close(code=code, message=reason.encode()[:120]), CLOSE_TIMEOUT
            )
        except TimeoutError:
            log.info(
                "close handshake timed out", extra={"session_id": self.session_id, "code": code}
            )

    async def drain(self, timeout: float) -> None:
        """Finish the message in hand and its reply, then close with 1012."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        self.close_soon(CLOSE_RESTART, "server restarting")

    # -- lifecycle --------------------------------------------------------

    async def run(self) -> None:
        try:
            if await self._hello():
                await self._read_loop()
        finally:
            if self._closer is not None:
                await asyncio.shield(self._closer)
            self.closing = True
            await self._cleanup()
            if self._writer is not None:
                self._writer.cancel()

    async def _hello(self) -> bool:
        try:
            msg = await self.ws.receive(timeout=self.settings.hello_timeout)
        except TimeoutError:
            self._fail_hello(
                ProtocolError("UNAUTHENTICATED", "no hello within the hello timeout"), None
            )
            return False
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return False
        request_id: int | None = None
        try:
            message = self._decode(msg)
            raw_id = message.get("id")
            request_id = raw_id if _int(raw_id) else None
            if message.get("type") != "hello":
                raise ProtocolError("UNAUTHENTICATED", "the first message must be hello")
            if "id" in message and not _int(raw_id):
                raise ProtocolError("BAD_REQUEST", "id must be an integer")
            self._accept_hello(message)
        except ProtocolError as error:
            self._fail_hello(error, request_id)
            return False
        self.reply(
            {
                "type": "welcome",
                "session_id": self.session_id,
                "user_id": self.user_id,
                "server": {
                    "version": VERSION,
                    "protocol": PROTOCOL_VERSION,
                    "heartbeat_ms": int(self.settings.heartbeat_interval * 1000),
                    "max_message_bytes": self.settings.max_message_size,
                    "max_batch": self.settings.max_batch_changes,
                    "features": FEATURES,
                },
            },
            request_id,
        )
        log.info("session opened", extra={"session_id": self.session_id, "user_id": self.user_id})
        return True

    def _fail_hello(self, error: ProtocolError, request_id: int | None) -> None:
        self.send_error(error, request_id)
        self.close_soon(CLOSE_UNAUTHENTICATED, error.message)

    def _accept_hello(self, message: dict[str, Any]) -> None:
        token = message.get("token")
        if token is not None and not isinstance(token, str):
            raise ProtocolError("BAD_REQUEST", "token must be a string")
        client_id = message.get("client_id")
        if not isinstance(client_id, str) or not CLIENT_ID_RE.match(client_id):
            raise ProtocolError(
                "BAD_REQUEST", "client_id must be 1-64 characters of [A-Za-z0-9_.:-]"
            )
        user = message.get("user", {})
        if user is None:
            user = {}
        if not isinstance(user, dict):
            raise ProtocolError("BAD_REQUEST", "user must be an object")
        if _json_size(user) > MAX_STATE_BYTES:
            raise ProtocolError("TOO_LARGE", f"user info is larger than {MAX_STATE_BYTES} bytes")
        self.identity = self._authenticate(token, client_id)
        self.edge.user_limits.hold(self.identity.user_id)
        self.client_id = client_id
        self.user = user
        self._schedule_expiry()

    def _authenticate(self, token: str | None, client_id: str | None = None) -> Identity:
        try:
            return self.edge.auth.authenticate(token, client_id)
        except AuthError as error:
            raise ProtocolError(error.code, error.message) from None

    @property
    def user_id(self) -> str:
        assert self.identity is not None
        return self.identity.user_id

    def _schedule_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        assert self.identity is not None
        if self.identity.expires_at is None:
            return
        delay = max(0.0, self.identity.expires_at - time.time())
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self.send_error(
            ProtocolError("TOKEN_EXPIRED", "token has expired; send refresh before exp"), None
        )
        self.close_soon(CLOSE_UNAUTHENTICATED, "token expired")

    def _decode(self, msg: Any) -> dict[str, Any]:
        data = msg.data
        size = len(data)
        metrics.BYTES_IN.inc(size)
        if msg.type == WSMsgType.BINARY:
            self.binary = True
        else:
            self.binary = False
        if size > self.settings.max_message_size:
            raise ProtocolError(
                "TOO_LARGE",
                f"frame of {size} bytes is over the {self.settings.max_message_size}-byte limit",
            )
        if self.binary:
            return parse_binary(data, self.settings.max_json_depth)
        return parse_json(data, self.settings.max_json_depth)

    async def _read_loop(self) -> None:
        ws = self.ws
        while not self.closing:
            msg = await ws.receive()
            self.last_seen = time.monotonic()
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                self._idle.clear()
                try:
                    await self._handle_frame(msg)
                finally:
                    self._idle.set()
            elif msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                continue
            elif msg.type == WSMsgType.ERROR:
                error = ws.exception()
                if error is not None and "too big" in str(error).lower():
                    self.close_code = CLOSE_TOO_BIG
                return
            else:
                return

    async def _handle_frame(self, msg: Any) -> None:
        request_id: int | None = None
        try:
            # Every frame costs a token, malformed ones included; the id is read
            # first so that a RATE_LIMITED reply can echo it.
            wait_ms = self.bucket.take()
            try:
                message = self._decode(msg)
            except ProtocolError:
                self._count_violation(wait_ms)
                raise
            raw_id = message.get("id")
            if "id" in message and not _int(raw_id):
                self._count_violation(wait_ms)
                raise ProtocolError("BAD_REQUEST", "id must be an integer")
            request_id = raw_id
            if not wait_ms and self.identity is not None:
                wait_ms = self.edge.user_limits.take(self.identity.user_id)
            self._count_violation(wait_ms)
            if wait_ms:
                raise ProtocolError("RATE_LIMITED", "too many messages", retry_after_ms=wait_ms)
            kind = message.get("type")
            if not isinstance(kind, str):
                raise ProtocolError("BAD_REQUEST", "type must be a string")
            metrics.count_in(kind if kind in HANDLERS else "unknown")
            handler = HANDLERS.get(kind)
            if handler is None:
                raise ProtocolError("UNSUPPORTED", f"unsupported message type {kind!r}")
            await handler(self, message, request_id)
        except ProtocolError as error:
            self.send_error(error, request_id)
            if error.close is not None:
                self.close_soon(error.close, error.message)
        except grpc.aio.AioRpcError as error:
            self.send_error(to_protocol_error(error), request_id)
        except Exception:
            log.exception("message handling failed", extra={"session_id": self.session_id})
            self.send_error(ProtocolError("INTERNAL", "internal error"), request_id)

    def _count_violation(self, wait_ms: int) -> None:
        if not wait_ms:
            self.violations = 0
            return
        self.violations += 1
        if self.violations >= ABUSE_LIMIT:
            raise ProtocolError(
                "RATE_LIMITED",
                "too many messages: closing",
                retry_after_ms=wait_ms,
                close=CLOSE_POLICY,
            )

    async def _cleanup(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        joined = False
        for room, entry in list(self.rooms.items()):
            if entry.task is not None:
                entry.task.cancel()
            self.edge.hub.close(entry.sub)
            if entry.watching:
                self.edge.roster.unwatch(room, self)
            joined = joined or entry.joining
        self.rooms.clear()
        self.edge.sessions.pop(self.session_id, None)
        if self.identity is not None:
            self.edge.user_limits.release(self.identity.user_id)
        if joined:
            reason = (
                ppb.LEAVE_REASON_TIMEOUT
                if self.close_code == CLOSE_HEARTBEAT
                else ppb.LEAVE_REASON_DISCONNECT
            )
            try:
                await self.edge.presence.leave("", self.session_id, reason)
            except grpc.aio.AioRpcError as error:
                log.warning("presence leave failed: %s (the TTL will expire it)", error.code().name)
        log.info("session closed", extra={"session_id": self.session_id, "code": self.close_code})

    # -- handlers ---------------------------------------------------------

    def _entry(self, room: str) -> RoomEntry:
        entry = self.rooms.get(room)
        if entry is None:
            raise ProtocolError("NOT_SUBSCRIBED", f"not subscribed to room {room}", room=room)
        return entry

    def can_read(self, room: str) -> bool:
        assert self.identity is not None
        return self.identity.can_read(room) and not self.edge.revocations.denies(
            self.identity.user_id, room, "read"
        )

    def can_write(self, room: str) -> bool:
        assert self.identity is not None
        return (
            self.can_read(room)
            and self.identity.can_write(room)
            and not self.edge.revocations.denies(self.identity.user_id, room, "write")
        )

    async def enforce_access(self) -> int:
        """End the subscriptions this session may no longer read; how many ended."""
        lost = [r for r in self.rooms if not self.can_read(r)]
        for room in lost:
            await self._drop(room, ppb.LEAVE_REASON_UNSUBSCRIBE)
            self.send_error(
                ProtocolError("FORBIDDEN", f"read access to room {room} was revoked", room=room),
                None,
            )
        return len(lost)

    def _check_write(self, room: str) -> None:
        if not self.can_write(room):
            raise ProtocolError("FORBIDDEN", f"no write access to room {room}", room=room)

    def peer(self, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "user_id": self.user_id,
            "client_id": self.client_id,
            "user": self.user,
            "state": state,
        }

    async def on_hello(self, message: dict[str, Any], request_id: int | None) -> None:
        raise ProtocolError("BAD_REQUEST", "already authenticated")

    async def on_ping(self, message: dict[str, Any], request_id: int | None) -> None:
        self.reply({"type": "pong"}, request_id)

    async def on_refresh(self, message: dict[str, Any], request_id: int | None) -> None:
        token = message.get("token")
        if not isinstance(token, str):
            raise ProtocolError("BAD_REQUEST", "token must be a string")
        identity = self._authenticate(token)
        if identity.user_id != self.user_id:
            raise ProtocolError("FORBIDDEN", "the new token is for a different user")
        self.identity = identity
        self._schedule_expiry()
        self.reply({"type": "refreshed"}, request_id)
        await self.enforce_access()

    async def on_subscribe(self, message: dict[str, Any], request_id: int | None) -> None:
        room = _room_of(message)
        since = message.get("since", 0)
        if since is None:
            since = 0
        if not _int(since) or since < 0:
            raise ProtocolError("BAD_REQUEST", "since must be a non-negative integer", room=room)
        users = message.get("users", False)
        if not isinstance(users, bool):
            raise ProtocolError("BAD_REQUEST", "users must be a boolean", room=room)
        presence = message.get("presence")
        if presence is not None:
            if not isinstance(presence, dict):
                raise ProtocolError("BAD_REQUEST", "presence must be an object", room=room)
            if _json_size(presence) > MAX_STATE_BYTES:
                raise ProtocolError(
                    "TOO_LARGE", f"presence state is larger than {MAX_STATE_BYTES} bytes", room=room
                )
        if not self.can_read(room):
            raise ProtocolError("FORBIDDEN", f"no read access to room {room}", room=room)
        if presence is not None:
            self._check_write(room)
        if room in self.rooms:
            raise ProtocolError("BAD_REQUEST", f"already subscribed to room {room}", room=room)
        if len(self.rooms) >= self.settings.max_rooms_per_session:
            raise ProtocolError(
                "BAD_REQUEST",
                f"subscribed to too many rooms (limit {self.settings.max_rooms_per_session})",
                room=room,
            )
        entry = RoomEntry(self.edge.hub.open(room, self))
        self.rooms[room] = entry
        entry.task = asyncio.create_task(
            self._start(room, entry, since, presence, users, request_id)
        )

    async def _start(
        self,
        room: str,
        entry: RoomEntry,
        since: int,
        presence: dict[str, Any] | None,
        users: bool,
        request_id: int | None,
    ) -> None:
        answered = False

        def on_head(head: int) -> None:
            nonlocal answered
            answered = True
            self.reply({"type": "subscribed", "room": room, "head": head}, request_id)
            entry.answered.set()

        try:
            await self.edge.hub.catch_up(entry.sub, since, on_head)
            if presence is not None:
                entry.joining = True
                await self.edge.presence.join(room, self.peer(presence))
                entry.presence = presence
            sync = await self.edge.roster.watch(room, self, users)
            entry.watching = True
            self.send(Out(sync))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if isinstance(error, ProtocolError):
                failure = error
            elif isinstance(error, grpc.aio.AioRpcError):
                failure = to_protocol_error(error, room)
            elif isinstance(error, TimeoutError):
                failure = ProtocolError(
                    "UNAVAILABLE", "the service is unavailable, try again", room=room
                )
            else:
                log.exception("subscribe to %s failed", room)
                failure = ProtocolError("INTERNAL", "internal error", room=room)
            if answered:
                # The data subscription stays; only presence failed.
                if entry.sub.live:
                    self.send_error(failure, None)
                    return
                failure.message = f"subscription to {room} ended: {failure.message}"
            if self.rooms.get(room) is entry:
                del self.rooms[room]
                self.edge.hub.close(entry.sub)
            self.send_error(failure, None if answered else request_id)
            entry.answered.set()
        finally:
            if entry.task is asyncio.current_task():
                entry.task = None  # done: nothing to wait for or cancel (and less to keep)

    async def _drop(self, room: str, reason: ppb.LeaveReason) -> None:
        entry = self.rooms.pop(room)
        if entry.task is not None and not entry.task.done():
            entry.task.cancel()
        self.edge.hub.close(entry.sub)
        if entry.watching:
            self.edge.roster.unwatch(room, self)
        if entry.joining:
            try:
                await self.edge.presence.leave(room, self.session_id, reason)
            except grpc.aio.AioRpcError as error:
                log.warning("presence leave failed: %s", error.code().name)

    async def on_unsubscribe(self, message: dict[str, Any], request_id: int | None) -> None:
        room = _room_of(message)
        self._entry(room)
        await self._drop(room, ppb.LEAVE_REASON_UNSUBSCRIBE)
        self.reply({"type": "unsubscribed", "room": room}, request_id)

    async def on_push(self, message: dict[str, Any], request_id: int | None) -> None:
        room = _room_of(message)
        entry = self._entry(room)
        self._check_write(room)
        if not entry.answered.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.answered.wait(), self.settings.rpc_timeout)
            if self.rooms.get(room) is not entry:
                raise ProtocolError(
                    "NOT_SUBSCRIBED", f"the subscription to {room} failed", room=room
                )
        changes = message.get("changes")
        if not isinstance(changes, list) or not changes:
            raise ProtocolError("BAD_REQUEST", "changes must be a non-empty list", room=room)
        max_batch = self.settings.max_batch_changes
        if len(changes) > max_batch:
            raise ProtocolError(
                "TOO_LARGE", f"more than {max_batch} changes in one push", room=room
            )
        request = spb.PushRequest(
            room=room,
            user_id=self.user_id,
            client_id=self.client_id,
            changes=[parse_change(c, room, i) for i, c in enumerate(changes)],
        )
        response = await self.edge.sync.push(request)
        results = []
        for result in response.results:
            item: dict[str, Any] = {
                "client_seq": result.client_seq,
                "seq": result.seq,
                "status": "duplicate"
                if result.status == spb.CHANGE_STATUS_DUPLICATE
                else "applied",
            }
            if result.HasField("error"):  # refused by an extension or a record schema
                item["status"] = "error"
                item["error"] = {"code": result.error.reason, "message": result.error.message}
                if result.error.json_path:
                    item["error"]["json_path"] = result.error.json_path
            if result.ts_adjusted:
                item["ts"] = result.ts
            if result.conflicts:
                item["conflicts"] = [
                    {
                        "field": c.field,
                        "winner": {"ts": c.winner_ts, "client_id": c.winner_client_id},
                    }
                    for c in result.conflicts
                ]
            results.append(item)
        self.reply({"type": "ack", "room": room, "results": results}, request_id)

    async def _started(self, room: str, entry: RoomEntry) -> None:
        """Wait for the subscribe's own presence work (join, watch) to finish first."""
        if entry.task is not None and not entry.task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(entry.task), self.settings.rpc_timeout)
        if self.rooms.get(room) is not entry:
            raise ProtocolError("NOT_SUBSCRIBED", f"the subscription to {room} failed", room=room)

    async def on_presence(self, message: dict[str, Any], request_id: int | None) -> None:
        room = _room_of(message)
        entry = self._entry(room)
        self._check_write(room)
        await self._started(room, entry)
        state = message.get("state")
        if not isinstance(state, dict):
            raise ProtocolError("BAD_REQUEST", "state must be an object", room=room)
        if _json_size(state) > MAX_STATE_BYTES:
            raise ProtocolError(
                "TOO_LARGE", f"presence state is larger than {MAX_STATE_BYTES} bytes", room=room
            )
        # Joins and updates are batched: their failures arrive as ProtocolError.
        if entry.presence is None:
            entry.joining = True
            await self.edge.presence.join(room, self.peer(state))
        else:
            try:
                await self.edge.presence.update(room, self.session_id, state)
            except ProtocolError as error:
                if error.code != "NOT_SUBSCRIBED":
                    raise
                # Presence forgot the session (its store restarted): join again.
                await self.edge.presence.join(room, self.peer(state))
        entry.presence = state

    async def on_broadcast(self, message: dict[str, Any], request_id: int | None) -> None:
        room = _room_of(message)
        self._entry(room)
        self._check_write(room)
        if "data" not in message:
            raise ProtocolError("BAD_REQUEST", "broadcast needs data", room=room)
        data = message["data"]
        if _json_size(data) > MAX_BROADCAST_BYTES:
            raise ProtocolError(
                "TOO_LARGE", f"broadcast data is larger than {MAX_BROADCAST_BYTES} bytes", room=room
            )
        channel = message.get("channel", "")
        if not isinstance(channel, str) or (channel and not CHANNEL_RE.match(channel)):
            raise ProtocolError(
                "BAD_REQUEST", "channel must be 1-64 characters of [A-Za-z0-9_.:-]", room=room
            )
        try:
            await self.edge.presence.broadcast(room, self.session_id, data, channel)
        except grpc.aio.AioRpcError as error:
            raise to_protocol_error(error, room) from None

    async def rejoin(self) -> list[str]:
        """Join presence again after the presence service forgot this session."""
        rooms = []
        for room, entry in list(self.rooms.items()):
            if entry.presence is not None:
                await self.edge.presence.join(room, self.peer(entry.presence))
                rooms.append(room)
        return rooms

    async def on_presence_list(self, message: dict[str, Any], request_id: int | None) -> None:
        room = _room_of(message)
        self._entry(room)
        cursor = message.get("cursor", "")
        limit = message.get("limit", self.settings.presence_sync_limit)
        counts_only = message.get("counts_only", False)
        if not isinstance(cursor, str) or len(cursor) > 256:
            raise ProtocolError("BAD_REQUEST", "cursor must be a string", room=room)
        if not _int(limit) or not 1 <= limit <= 1000:
            raise ProtocolError("BAD_REQUEST", "limit must be an integer from 1 to 1000", room=room)
        if not isinstance(counts_only, bool):
            raise ProtocolError("BAD_REQUEST", "counts_only must be a boolean", room=room)
        try:
            page = await self.edge.presence.list(
                room, limit=limit, cursor=cursor, counts_only=counts_only
            )
        except grpc.aio.AioRpcError as error:
            raise to_protocol_error(error, room) from None
        self.reply({"type": "presence_page", "room": room, **page}, request_id)


Handler = Callable[[Session, dict[str, Any], "int | None"], Awaitable[None]]

HANDLERS: dict[str, Handler] = {
    "hello": Session.on_hello,
    "ping": Session.on_ping,
    "refresh": Session.on_refresh,
    "subscribe": Session.on_subscribe,
    "unsubscribe": Session.on_unsubscribe,
    "push": Session.on_push,
    "presence": Session.on_presence,
    "broadcast": Session.on_broadcast,
    "presence_list": Session.on_presence_list,
}

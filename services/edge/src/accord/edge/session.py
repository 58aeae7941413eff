"""One client session: the protocol of docs/protocol.md over any ``Transport``.

The reader handles one message at a time, in order, through the context's
handler table; replies and fan-out go through the session's ``Outbound``
queue, so a slow socket never blocks a room's fan-out, and a session that
cannot keep up is cut (4009).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import grpc
from accord.api.presence.v1 import presence_pb2 as ppb
from accord.common.tasks import set_within, spawn
from accord.edge import metrics
from accord.edge.auth import AuthError, Identity
from accord.edge.backends import to_protocol_error
from accord.edge.codes import (
    ABUSE_LIMIT,
    CLOSE_HEARTBEAT,
    CLOSE_POLICY,
    CLOSE_RESTART,
    CLOSE_SLOW_CONSUMER,
    CLOSE_TIMEOUT,
    CLOSE_TOO_BIG,
    CLOSE_UNAUTHENTICATED,
    FLUSH_TIMEOUT,
)
from accord.edge.context import SessionContext
from accord.edge.frames import check_id, parse_binary, parse_json, request_id_of
from accord.edge.hello import greet
from accord.edge.hooks import connection_of_session
from accord.edge.limits import TokenBucket
from accord.edge.outbound import Outbound
from accord.edge.protocol import Out, ProtocolError, error_message
from accord.edge.signal import Signal
from accord.edge.subscriptions import Subscriptions
from accord.edge.transport import Incoming, Kind, Transport
from accord.extensions import Connection

log = logging.getLogger(__name__)

_AUDITED_CLOSES = {CLOSE_SLOW_CONSUMER: "session.slow_consumer", CLOSE_POLICY: "session.abuse"}


class Session:
    # Slots: one of these per connection (memory per idle connection).
    __slots__ = (
        "_closer",
        "_expiry",
        "_idle",
        "bucket",
        "client_id",
        "close_code",
        "close_reason",
        "closing",
        "connection",
        "ctx",
        "ended_rooms",
        "identity",
        "last_seen",
        "outbound",
        "session_id",
        "subscriptions",
        "transport",
        "user",
        "violations",
    )

    def __init__(
        self, ctx: SessionContext, transport: Transport, connection: Connection | None = None
    ) -> None:
        self.ctx = ctx
        self.transport = transport
        self.connection = connection  # as extensions see it: kept only when some are installed
        self.ended_rooms: tuple[str, ...] = ()
        self.session_id = f"s-{uuid.uuid4().hex[:16]}"
        self.identity: Identity | None = None
        self.client_id = ""
        self.user: dict[str, Any] = {}
        self.subscriptions = Subscriptions(ctx, self)
        self.outbound = Outbound(transport, ctx.queue_limits, ctx.budget, self._cut)
        self.last_seen = time.monotonic()
        settings = ctx.settings
        self.bucket = TokenBucket(settings.rate_limit, settings.rate_burst)
        self.violations = 0
        self.closing = False
        self.close_code: int | None = None
        self.close_reason = ""
        self._expiry: asyncio.TimerHandle | None = None
        self._closer: asyncio.Task[None] | None = None
        self._idle = Signal(True)

    # -- outbound ---------------------------------------------------------

    @property
    def remote(self) -> str | None:
        return self.transport.remote

    @property
    def binary(self) -> bool:
        return self.outbound.binary

    @property
    def queued(self) -> int:
        return self.outbound.queued

    def send(self, out: Out) -> None:
        self.outbound.send(out)

    def reply(self, message: dict[str, Any], request_id: int | None) -> None:
        if request_id is not None:
            message["id"] = request_id
        self.send(Out(message))

    def send_error(self, error: ProtocolError, request_id: int | None) -> None:
        metrics.ERRORS.labels(error.code).inc()
        self.send(Out(error_message(error, request_id)))

    def audit(self, event: str, **fields: Any) -> None:
        """An audit event about this session (its user, id and client IP filled in)."""
        self.ctx.audit.emit(
            event,
            actor=self.identity.user_id if self.identity is not None else None,
            session_id=self.session_id,
            ip=self.remote,
            **fields,
        )

    def _cut(self, reason: str) -> None:
        log.warning("closing slow consumer: %s", reason, extra={"session_id": self.session_id})
        self.close_soon(CLOSE_SLOW_CONSUMER, reason, flush=False)

    def close_soon(self, code: int, reason: str, *, flush: bool = True) -> None:
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        if code in _AUDITED_CLOSES:
            self.audit(_AUDITED_CLOSES[code], code=code, reason=reason)
        self._closer = spawn(self._close(code, reason, flush))

    async def _close(self, code: int, reason: str, flush: bool) -> None:
        if flush:
            await self.outbound.flush(FLUSH_TIMEOUT)
        self.closing = True
        self.outbound.close()
        try:
            # A stalled peer never takes the close frame off a full socket: the
            # frame stays queued behind the data, and the transport is closed
            # (flushing what it can) instead of waiting for the handshake.
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.transport.close(code, reason)
        except TimeoutError:
            log.info(
                "close handshake timed out", extra={"session_id": self.session_id, "code": code}
            )

    async def drain(self, timeout: float) -> None:
        """Finish the message in hand and its reply, then close with 1012."""
        await set_within(self._idle, timeout)
        self.close_soon(CLOSE_RESTART, "server restarting")

    # -- lifecycle --------------------------------------------------------

    async def run(self) -> None:
        try:
            if await greet(self):
                await self._read_loop()
        finally:
            if self._closer is not None:
                await asyncio.shield(self._closer)
            self.closing = True
            if self.ctx.extensions.on_disconnect_active:
                self.ended_rooms = tuple(sorted(self.subscriptions))
            await self._cleanup()
            self.outbound.cancel()

    async def authenticate(
        self,
        token: str | None,
        client_id: str | None = None,
        user: dict[str, Any] | None = None,
        *,
        via: str = "hello",
    ) -> Identity:
        try:
            identity = await self.ctx.auth.authenticate(token, client_id)
        except AuthError as error:
            self.audit("auth.failed", via=via, code=error.code, reason=error.message)
            raise ProtocolError(error.code, error.message) from None
        hooks = self.ctx.extensions
        if hooks.on_authenticate.active:
            connection = connection_of_session(self)
            client_id = client_id or self.client_id
            identity = await hooks.authenticated(identity, connection, client_id, user or self.user)
        return identity

    @property
    def user_id(self) -> str:
        assert self.identity is not None
        return self.identity.user_id

    def schedule_expiry(self) -> None:
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

    def decode(self, msg: Incoming) -> dict[str, Any]:
        data = msg.data
        size = len(data)
        metrics.BYTES_IN.inc(size)
        binary = self.outbound.binary = msg.kind == Kind.BINARY
        settings = self.ctx.settings
        if size > settings.max_message_size:
            raise ProtocolError(
                "TOO_LARGE",
                f"frame of {size} bytes is over the {settings.max_message_size}-byte limit",
            )
        if binary:
            return parse_binary(data, settings.max_json_depth)
        return parse_json(data, settings.max_json_depth)

    async def _read_loop(self) -> None:
        transport = self.transport
        while not self.closing:
            msg = await transport.receive()
            self.last_seen = time.monotonic()
            kind = msg.kind
            if kind == Kind.TEXT or kind == Kind.BINARY:
                self._idle.clear()
                try:
                    await self._handle_frame(msg)
                finally:
                    self._idle.set()
            elif kind == Kind.PING:
                await transport.pong(msg.data)
            elif kind == Kind.PONG:
                continue
            else:
                if kind == Kind.TOO_BIG:
                    self.close_code = CLOSE_TOO_BIG
                return

    async def _handle_frame(self, msg: Incoming) -> None:
        request_id: int | None = None
        kind: object = None
        try:
            # Every frame costs a token, malformed ones included; the id is read
            # first so that a RATE_LIMITED reply can echo it.
            wait_ms = self.bucket.take()
            try:
                message = self.decode(msg)
                request_id = request_id_of(message)
                check_id(message)
            except ProtocolError as error:
                if error.request_id is not None:
                    request_id = error.request_id
                self._count_violation(wait_ms)
                raise
            if not wait_ms and self.identity is not None:
                wait_ms = self.ctx.user_limits.take(self.identity.user_id)
            self._count_violation(wait_ms)
            if wait_ms:
                raise ProtocolError("RATE_LIMITED", "too many messages", retry_after_ms=wait_ms)
            kind = message.get("type")
            if not isinstance(kind, str):
                raise ProtocolError("BAD_REQUEST", "type must be a string")
            handler = self.ctx.handlers.get(kind)
            metrics.count_in(kind if handler is not None else "unknown")
            if handler is None:
                raise ProtocolError("UNSUPPORTED", f"unsupported message type {kind!r}")
            await handler(self, message, request_id)
        except ProtocolError as error:
            if error.code == "FORBIDDEN" and error.room is not None:
                self.audit("access.denied", room=error.room, via=str(kind), reason=error.message)
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
        joined = self.subscriptions.end_all()
        if self.identity is not None:
            self.ctx.user_limits.release(self.identity.user_id)
        if joined:
            reason = (
                ppb.LEAVE_REASON_TIMEOUT
                if self.close_code == CLOSE_HEARTBEAT
                else ppb.LEAVE_REASON_DISCONNECT
            )
            try:
                await self.ctx.presence.leave("", self.session_id, reason)
            except grpc.aio.AioRpcError as error:
                log.warning("presence leave failed: %s (the TTL will expire it)", error.code().name)
        log.info("session closed", extra={"session_id": self.session_id, "code": self.close_code})

    # -- access -----------------------------------------------------------

    def can_read(self, room: str) -> bool:
        assert self.identity is not None
        return self.identity.can_read(room) and not self.ctx.revocations.denies(
            self.identity.user_id, room, "read"
        )

    def can_write(self, room: str) -> bool:
        assert self.identity is not None
        return (
            self.can_read(room)
            and self.identity.can_write(room)
            and not self.ctx.revocations.denies(self.identity.user_id, room, "write")
        )

    def check_write(self, room: str) -> None:
        if not self.can_write(room):
            raise ProtocolError("FORBIDDEN", f"no write access to room {room}", room=room)

    async def enforce_access(self) -> int:
        """End the subscriptions this session may no longer read; how many ended."""
        return await self.subscriptions.enforce_access()

    async def rejoin(self) -> list[str]:
        return await self.subscriptions.rejoin()

    def peer(self, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "user_id": self.user_id,
            "client_id": self.client_id,
            "user": self.user,
            "state": state,
        }

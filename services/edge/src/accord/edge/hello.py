"""The hello handshake of a session: the first message, its check, the welcome.

``Session.run`` calls ``greet`` first; only a session it welcomed reads on.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from accord.edge import requests
from accord.edge.auth import Identity
from accord.edge.codes import CLOSE_UNAUTHENTICATED, FEATURES, PROTOCOL_VERSION, VERSION
from accord.edge.context import SessionContext
from accord.edge.frames import check_id, request_id_of
from accord.edge.protocol import ProtocolError
from accord.edge.transport import Incoming, Kind, Transport

# The session opens under its own logger name, as before the handshake had a module.
log = logging.getLogger("accord.edge.session")


class HelloSession(Protocol):
    """What the handshake uses of a ``Session``."""

    transport: Transport
    ctx: SessionContext
    session_id: str
    last_seen: float
    identity: Identity | None
    client_id: str
    user: dict[str, Any]

    @property
    def user_id(self) -> str: ...

    def decode(self, msg: Incoming) -> dict[str, Any]: ...

    def reply(self, message: dict[str, Any], request_id: int | None) -> None: ...

    def send_error(self, error: ProtocolError, request_id: int | None) -> None: ...

    def close_soon(self, code: int, reason: str, *, flush: bool = True) -> None: ...

    async def authenticate(
        self,
        token: str | None,
        client_id: str | None = None,
        user: dict[str, Any] | None = None,
        *,
        via: str = "hello",
    ) -> Identity: ...

    def schedule_expiry(self) -> None: ...


async def _first_message(session: HelloSession) -> Incoming | None:
    """The first data message, within the hello timeout; None when the peer left or was late.

    Control frames may come at any time (RFC 6455): pings are answered and
    pongs (the answers to the heartbeat) ignored, within the same deadline.
    """
    transport = session.transport
    deadline = time.monotonic() + session.ctx.settings.hello_timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            msg = await transport.receive(timeout=remaining)
        except TimeoutError:
            _fail_hello(
                session, ProtocolError("UNAUTHENTICATED", "no hello within the hello timeout"), None
            )
            return None
        session.last_seen = time.monotonic()
        if msg.kind in (Kind.TEXT, Kind.BINARY):
            return msg
        if msg.kind == Kind.PING:
            await transport.pong(msg.data)
        elif msg.kind != Kind.PONG:
            return None


async def greet(session: HelloSession) -> bool:
    """The hello handshake: welcome and True, or an error, the close (4001) and False."""
    msg = await _first_message(session)
    if msg is None:
        return False
    request_id: int | None = None
    try:
        message = session.decode(msg)
        request_id = request_id_of(message)
        if message.get("type") != "hello":
            raise ProtocolError("UNAUTHENTICATED", "the first message must be hello")
        check_id(message)
        await _accept_hello(session, message)
    except ProtocolError as error:
        _fail_hello(session, error, request_id if error.request_id is None else error.request_id)
        return False
    settings = session.ctx.settings
    welcome: dict[str, Any] = {
        "type": "welcome",
        "session_id": session.session_id,
        "user_id": session.user_id,
        "server": {
            "version": VERSION,
            "protocol": PROTOCOL_VERSION,
            "heartbeat_ms": int(settings.heartbeat_interval * 1000),
            "max_message_bytes": settings.max_message_size,
            "features": list(FEATURES),
            "max_batch": settings.max_batch_changes,
        },
    }
    info = session.transport.info
    if info is not None:
        welcome["transport"] = info
    session.reply(welcome, request_id)
    log.info("session opened", extra={"session_id": session.session_id, "user_id": session.user_id})
    return True


def _fail_hello(session: HelloSession, error: ProtocolError, request_id: int | None) -> None:
    session.send_error(error, request_id)
    session.close_soon(CLOSE_UNAUTHENTICATED, error.message)


async def _accept_hello(session: HelloSession, message: dict[str, Any]) -> None:
    hello = requests.hello(message)
    session.identity = await session.authenticate(hello.token, hello.client_id, hello.user)
    session.ctx.user_limits.hold(session.identity.user_id)
    session.client_id = hello.client_id
    session.user = hello.user
    session.schedule_expiry()

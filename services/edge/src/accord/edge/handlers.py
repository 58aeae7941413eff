"""The handlers of client messages, one small function per type, and their table.

Each takes the session, the decoded message and its request id. The table is
built here, outside the session, and handed to sessions through their
context. The extension hooks run where they belong (``on_subscribe`` before a
subscription starts, ``before_push`` per change) when any is installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from accord.api.presence.v1 import presence_pb2 as ppb
from accord.api.sync.v1 import sync_pb2 as spb
from accord.edge import requests
from accord.edge.backends import to_protocol_error
from accord.edge.context import Handler
from accord.edge.hooks import session_of
from accord.edge.ops import parse_change
from accord.edge.protocol import ProtocolError
from accord.edge.results import push_results
from accord.edge.session import Session


async def on_hello(session: Session, message: dict[str, Any], request_id: int | None) -> None:
    raise ProtocolError("BAD_REQUEST", "already authenticated")


async def on_ping(session: Session, message: dict[str, Any], request_id: int | None) -> None:
    session.reply({"type": "pong"}, request_id)


async def on_refresh(session: Session, message: dict[str, Any], request_id: int | None) -> None:
    identity = await session.authenticate(requests.refresh_token(message), via="refresh")
    if identity.user_id != session.user_id:
        session.audit("auth.failed", via="refresh", code="FORBIDDEN", reason="a different user")
        raise ProtocolError("FORBIDDEN", "the new token is for a different user")
    old = session.identity
    if old is not None and (old.read, old.write) != (identity.read, identity.write):
        session.audit("token.refreshed", read=identity.read, write=identity.write)
    session.identity = identity
    session.schedule_expiry()
    session.reply({"type": "refreshed"}, request_id)
    await session.enforce_access()


async def on_subscribe(session: Session, message: dict[str, Any], request_id: int | None) -> None:
    request = requests.subscribe(message)
    room = request.room
    if not session.can_read(room):
        raise ProtocolError("FORBIDDEN", f"no read access to room {room}", room=room)
    if request.presence is not None:
        session.check_write(room)
    subscriptions = session.subscriptions
    if room in subscriptions:
        raise ProtocolError("BAD_REQUEST", f"already subscribed to room {room}", room=room)
    limit = session.ctx.settings.max_rooms_per_session
    if len(subscriptions) >= limit:
        raise ProtocolError(
            "BAD_REQUEST", f"subscribed to too many rooms (limit {limit})", room=room
        )
    hooks = session.ctx.extensions
    if hooks.on_subscribe.active:
        await hooks.subscribing(session_of(session), room, request.since, request.presence)
    subscriptions.open(request, request_id)


async def on_unsubscribe(session: Session, message: dict[str, Any], request_id: int | None) -> None:
    room = requests.room_of(message)
    session.subscriptions.entry(room)
    await session.subscriptions.drop(room, ppb.LEAVE_REASON_UNSUBSCRIBE)
    session.reply({"type": "unsubscribed", "room": room}, request_id)


async def on_push(session: Session, message: dict[str, Any], request_id: int | None) -> None:
    room = requests.room_of(message)
    entry = session.subscriptions.entry(room)
    session.check_write(room)
    await session.subscriptions.answered(room, entry)
    changes = requests.push_changes(message, room, session.ctx.settings.max_batch_changes)
    request = spb.PushRequest(
        room=room,
        user_id=session.user_id,
        client_id=session.client_id,
        changes=[parse_change(c, room, i) for i, c in enumerate(changes)],
    )
    hooks = session.ctx.extensions
    if hooks.before_push.active:
        results = await hooks.push(session.ctx.sync, session_of(session), request, changes)
    else:
        results = push_results(await session.ctx.sync.push(request))
    session.reply({"type": "ack", "room": room, "results": results}, request_id)


async def on_presence(session: Session, message: dict[str, Any], request_id: int | None) -> None:
    room = requests.room_of(message)
    entry = session.subscriptions.entry(room)
    session.check_write(room)
    await session.subscriptions.started(room, entry)
    state = requests.presence_state(message, room)
    presence = session.ctx.presence
    # Joins and updates are batched: their failures arrive as ProtocolError.
    if entry.presence is None:
        entry.joining = True
        await presence.join(room, session.peer(state))
    else:
        try:
            await presence.update(room, session.session_id, state)
        except ProtocolError as error:
            if error.code != "NOT_SUBSCRIBED":
                raise
            # Presence forgot the session (its store restarted): join again.
            await presence.join(room, session.peer(state))
    entry.presence = state


async def on_broadcast(session: Session, message: dict[str, Any], request_id: int | None) -> None:
    room = requests.room_of(message)
    session.subscriptions.entry(room)
    session.check_write(room)
    request = requests.broadcast(message, room)
    try:
        await session.ctx.presence.broadcast(
            room, session.session_id, request.data, request.channel
        )
    except grpc.aio.AioRpcError as error:
        raise to_protocol_error(error, room) from None


async def on_presence_list(
    session: Session, message: dict[str, Any], request_id: int | None
) -> None:
    room = requests.room_of(message)
    session.subscriptions.entry(room)
    request = requests.presence_list(message, room, session.ctx.settings.presence_sync_limit)
    try:
        page = await session.ctx.presence.list(
            room, limit=request.limit, cursor=request.cursor, counts_only=request.counts_only
        )
    except grpc.aio.AioRpcError as error:
        raise to_protocol_error(error, room) from None
    session.reply({"type": "presence_page", "room": room, **page}, request_id)


HANDLERS: Mapping[str, Handler] = {
    "hello": on_hello,
    "ping": on_ping,
    "refresh": on_refresh,
    "subscribe": on_subscribe,
    "unsubscribe": on_unsubscribe,
    "push": on_push,
    "presence": on_presence,
    "broadcast": on_broadcast,
    "presence_list": on_presence_list,
}

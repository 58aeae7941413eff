"""The edge's heartbeat: ping every socket, end silent ones, refresh presence TTLs in one batch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import grpc
from accord.edge import metrics
from accord.edge.codes import CLOSE_HEARTBEAT
from accord.edge.context import SessionContext
from accord.edge.limits import SharedBuckets
from accord.edge.protocol import ProtocolError
from accord.edge.registry import Sessions
from accord.edge.session import Session

log = logging.getLogger(__name__)


async def beat(
    ctx: SessionContext, sessions: Sessions[Session], connect_limits: SharedBuckets
) -> None:
    """One heartbeat."""
    interval = ctx.settings.heartbeat_interval
    now = time.monotonic()
    connect_limits.prune()
    ctx.user_limits.prune()
    for session in sessions:
        if now - session.last_seen > 2 * interval:
            session.close_soon(CLOSE_HEARTBEAT, "no heartbeat", flush=False)
        elif not session.transport.closed:
            metrics.SEND_QUEUE.observe(session.queued)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await session.transport.ping()
    ctx.roster.retry_resyncs()
    joined = [s.session_id for s in sessions if s.subscriptions.joined()]
    if not joined:
        return
    try:
        unknown = await ctx.presence.heartbeat(joined)
    except grpc.aio.AioRpcError as error:
        log.warning("presence heartbeat failed: %s", error.code().name)
        return
    for session_id in unknown:
        forgotten = sessions.get(session_id)
        if forgotten is not None:
            try:
                rooms = await forgotten.rejoin()
            except ProtocolError as error:
                log.warning("presence re-join failed: %s", error.code)
                continue
            # A sync listed while this session was forgotten lacks it.
            ctx.roster.resync(rooms)


async def heartbeat_loop(
    ctx: SessionContext, sessions: Sessions[Session], connect_limits: SharedBuckets
) -> None:
    while True:
        await asyncio.sleep(ctx.settings.heartbeat_interval)
        await beat(ctx, sessions, connect_limits)

"""A joined room's side of the connection: subscribe (retrying), push the queue, apply what comes.

The client drives a ``RoomLink``: ``attach`` on every welcome, ``handle`` for each
message naming the room, ``detach`` when the connection ends. The ``Room`` the
app holds is its public face.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from accord.client.changes import RecordChange
from accord.client.cipher import FieldCipher
from accord.client.codes import MAX_PUSH
from accord.client.connection import Connection
from accord.client.encryption import Encryption
from accord.client.errors import (
    AccordError,
    ConnectionLost,
    Internal,
    NotSubscribed,
    RateLimited,
    RejectedChange,
    Unavailable,
    error_from_message,
)
from accord.client.events import Callbacks, ChangeStream, Pulse
from accord.client.host import RoomHost
from accord.client.patch import Record
from accord.client.presence import Broadcast, Peer, PresenceView
from accord.client.replica import Applied, PendingChange, Replica

__all__ = ["RoomLink"]

log = logging.getLogger(__name__)

RETRYABLE = (Unavailable, Internal, RateLimited)


class RoomLink:
    def __init__(
        self,
        host: RoomHost,
        name: str,
        replica: Replica,
        presence: dict[str, Any] | None,
        users: bool,
        encryption: Encryption | None = None,
    ) -> None:
        self.host = host
        self.name = name
        self.replica = replica
        self.presence_state = presence
        """This session's presence state, sent with every subscribe (``None``: not joined)."""
        self.users = users
        self.cipher: FieldCipher | None = None
        """Seals and opens the room's encrypted fields (``None``: nothing is encrypted)."""
        self.encrypt(encryption)
        self.presence = PresenceView()
        self.on_change: Callbacks[[RecordChange]] = Callbacks("change")
        self.on_presence: Callbacks[[str, Peer | None]] = Callbacks("presence")
        self.on_broadcast: Callbacks[[Broadcast]] = Callbacks("broadcast")
        self.streams: list[ChangeStream] = []
        self.pulse = Pulse()
        self.conn: Connection | None = None
        self.subscribed = False
        self.left = False
        self._since_sent = 0
        self._task: asyncio.Task[None] | None = None
        self._push_wanted = asyncio.Event()

    @property
    def pending(self) -> int:
        return len(self.replica.pending)

    @property
    def synced(self) -> bool:
        return self.subscribed and self.replica.caught_up and not self.replica.pending

    def encrypt(self, encryption: Encryption | None) -> None:
        self.cipher = (
            None if encryption is None else FieldCipher(self.name, encryption, self.host.report)
        )

    def want_push(self) -> None:
        self._push_wanted.set()

    def emit(self, events: list[RecordChange]) -> None:
        """Tell the change callbacks and streams about ``events`` (encrypted fields opened)."""
        cipher = self.cipher
        for event in events:
            if cipher is not None:
                event = cipher.present_change(event)
            self.on_change(event)
            for stream in self.streams:
                stream.put(event)
        if events:
            self._changed()

    # Driven by the client

    def attach(self, conn: Connection, joined: asyncio.Future[None] | None = None) -> None:
        """Subscribe on ``conn``; ``joined`` settles with the subscribe's outcome."""
        self.conn = conn
        self._task = asyncio.create_task(self._sync(conn, joined), name=f"accord-room-{self.name}")

    async def detach(self) -> None:
        task, self._task = self._task, None
        self.conn = None
        self.subscribed = False
        self.presence.clear()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._changed()

    async def leave(self) -> None:
        if self.left:
            return
        conn, subscribed = self.conn, self.subscribed
        self.left = True
        await self.detach()
        if conn is not None and subscribed:
            with contextlib.suppress(ConnectionLost, NotSubscribed, TimeoutError):
                await conn.request({"type": "unsubscribe", "room": self.name})
        self.host.forget(self.name)

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribed":
            self.subscribed = True
            await self._commit(
                self.replica.subscribed(
                    self._since_sent, int(message.get("head", 0)), str(message.get("epoch") or "")
                )
            )
        elif kind == "snapshot":
            chunk = self.replica.snapshot_chunk(
                message.get("records") or [],
                int(message.get("seq", 0)),
                bool(message.get("last")),
                str(message.get("epoch") or ""),
            )
            await self._commit(chunk)
            if chunk.replaced:
                self.want_push()  # changes whose acks belonged to the old history go again
        elif kind == "changes":
            changes = message.get("changes") or []
            for change in changes:
                self._observe(change)
            await self._commit(self.replica.apply_changes(changes))
        elif kind == "presence":
            self.on_presence(*self.presence.apply(message))
        elif kind == "broadcast":
            self.on_broadcast(Broadcast.from_wire(message))
        elif kind == "error":
            if message.get("code") == "FORBIDDEN":
                # A refreshed token lost read access: the server ended the subscription.
                self.subscribed = False
            self.host.report(error_from_message(message))
        self._changed()

    # Subscribing and pushing

    async def _sync(self, conn: Connection, joined: asyncio.Future[None] | None) -> None:
        """Subscribe on ``conn`` (retrying while the service is unavailable), then push."""
        attempt = 0
        while True:
            message: dict[str, Any] = {
                "type": "subscribe",
                "room": self.name,
                "since": self.replica.seq,
            }
            if self.presence_state is not None:
                message["presence"] = self.presence_state
            if self.users:
                message["users"] = True
            if self.replica.epoch:
                message["epoch"] = self.replica.epoch
            self._since_sent = self.replica.seq
            try:
                await conn.request(message)
                break
            except RETRYABLE as error:
                if joined is not None:
                    _settle(joined, error)
                    return
                delay = _retry_delay(error, self.host.backoff.delay(attempt))
                attempt += 1
                log.info("subscribe to %s failed (%r); retrying in %.1fs", self.name, error, delay)
                await asyncio.sleep(delay)
            except AccordError as error:
                if joined is not None:
                    _settle(joined, error)
                else:
                    self.host.report(error)
                return
            except (ConnectionLost, TimeoutError):
                if joined is not None:
                    _settle(joined, None)
                return
        if joined is not None:
            _settle(joined, None)
        await self._push_loop(conn)

    async def _push_loop(self, conn: Connection) -> None:
        solo_until = 0
        attempt = 0
        self._push_wanted.set()
        while True:
            await self._push_wanted.wait()
            self._push_wanted.clear()
            while self.subscribed and (unsent := self.replica.unsent()):
                size = 1 if unsent[0].client_seq <= solo_until else MAX_PUSH
                batch = unsent[:size]
                try:
                    ack = await conn.request(
                        {"type": "push", "room": self.name, "changes": [c.wire() for c in batch]}
                    )
                except RETRYABLE as error:
                    await asyncio.sleep(_retry_delay(error, self.host.backoff.delay(attempt)))
                    attempt += 1
                    continue
                except (ConnectionLost, NotSubscribed):
                    return
                except TimeoutError:
                    # Replies are never skipped: the connection is broken. Retrying is safe.
                    await conn.close()
                    return
                except AccordError as error:
                    if len(batch) > 1:
                        # A push is one transaction: find the refused change by pushing one by one.
                        solo_until = batch[-1].client_seq
                        continue
                    await self._reject(batch[0], error)
                    continue
                attempt = 0
                results = ack.get("results") or []
                for result in results:
                    self._observe(result)
                await self._refused([r for r in results if r.get("status") == "error"])
                await self._commit(self.replica.ack(results))

    async def _refused(self, results: list[dict[str, Any]]) -> None:
        """Changes of an ack with ``"status":"error"`` (refused by an extension or a record
        schema, or their hook failed): final, like a refused push."""
        by_seq = {change.client_seq: change for change in self.replica.pending}
        for result in results:
            change = by_seq.get(int(result.get("client_seq", 0)))
            if change is not None:
                error = result.get("error") or {}
                await self._reject(change, error_from_message({**error, "room": self.name}))

    async def _reject(self, change: PendingChange, error: AccordError) -> None:
        applied = self.replica.reject([change.client_seq])
        self.host.report(RejectedChange(self.name, change, error))
        await self._commit(applied)

    async def _commit(self, applied: Applied) -> None:
        """Emit ``applied``'s events, then persist what it changed."""
        self.emit(applied.events)
        if applied.replaced:
            records: dict[tuple[str, str], Record | None] = dict(self.replica.confirmed_items())
        else:
            records = {key: self.replica.confirmed_record(key) for key in applied.changed}
        if records or applied.dropped or applied.replaced or applied.epoch_changed:
            await asyncio.shield(
                self.host.save(
                    self.name,
                    self.replica.seq,
                    records,
                    applied.dropped,
                    replace=applied.replaced,
                    epoch=self.replica.epoch,
                )
            )
        if applied.dropped or applied.events:
            self.host.changed()

    def _observe(self, item: dict[str, Any]) -> None:
        ts = item.get("ts")
        if isinstance(ts, int):
            self.host.observe(ts)

    def _changed(self) -> None:
        self.pulse.fire()
        self.host.changed()


def _retry_delay(error: AccordError, fallback: float) -> float:
    if isinstance(error, RateLimited) and error.retry_after_ms > 0:
        return error.retry_after_ms / 1000
    return fallback


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)

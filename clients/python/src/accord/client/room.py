"""A joined room: its replica, writes, change events, presence and broadcast."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accord.client.connection import Connection
from accord.client.errors import (
    AccordError,
    ClientError,
    ConnectionLost,
    Internal,
    NotSubscribed,
    RateLimited,
    RejectedChange,
    SlowConsumer,
    Unavailable,
    error_from_message,
)
from accord.client.patch import Record, element_id
from accord.client.replica import Applied, PendingChange, RecordChange, Replica

if TYPE_CHECKING:
    from accord.client.client import Client

__all__ = ["Broadcast", "Peer", "PresencePage", "Room"]

log = logging.getLogger(__name__)

MAX_PUSH = 1000
MAX_NAME = 256

ChangeCallback = Callable[[RecordChange], None]
PresenceCallback = Callable[[str, "Peer | None"], None]
BroadcastCallback = Callable[["Broadcast"], None]


@dataclass(frozen=True)
class Peer:
    """One session in the room's presence."""

    session_id: str
    user_id: str
    client_id: str
    user: dict[str, Any]
    state: dict[str, Any]

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Peer:
        return cls(
            str(raw.get("session_id", "")),
            str(raw.get("user_id", "")),
            str(raw.get("client_id", "")),
            dict(raw.get("user") or {}),
            dict(raw.get("state") or {}),
        )


@dataclass(frozen=True)
class Broadcast:
    """An ephemeral message from another session of the room."""

    data: Any
    sender: str
    channel: str | None = None


@dataclass(frozen=True)
class PresencePage:
    """One page of a room's presence (``presence_list``); ``next_cursor`` when there is more."""

    peers: list[Peer]
    count: int
    users: int
    next_cursor: str | None


class Room:
    """Made by ``Client.join``. Reads are synchronous and show local writes at once."""

    def __init__(
        self,
        client: Client,
        name: str,
        replica: Replica,
        presence: dict[str, Any] | None,
        users: bool = False,
    ) -> None:
        self.client = client
        self.name = name
        self.replica = replica
        self.peers: dict[str, Peer] = {}
        """Sessions present, by session id: the first page of ``sync`` plus the events since."""
        self.presence_count = 0
        """Sessions present, as of the last ``sync``."""
        self.presence_users = 0
        """Distinct users present, as of the last ``sync``."""
        self.presence_cursor: str | None = None
        """Set when ``sync`` listed only the first page of peers: go on with ``list_presence``."""
        self._presence = presence
        self._users = users
        self._conn: Connection | None = None
        self._subscribed = False
        self._since_sent = 0
        self._task: asyncio.Task[None] | None = None
        self._push_wanted = asyncio.Event()
        self._left = False
        self._change_callbacks: list[ChangeCallback] = []
        self._presence_callbacks: list[PresenceCallback] = []
        self._broadcast_callbacks: list[BroadcastCallback] = []
        self._streams: list[_ChangeStream] = []
        self._tick = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Room {self.name} seq={self.seq} pending={self.pending}>"

    # Reading

    def records(self, collection: str) -> dict[str, Record]:
        """The visible records of ``collection`` by key: confirmed state, pending writes on top."""
        return self.replica.records(collection)

    def get(self, collection: str, key: str) -> Record | None:
        record = self.replica.visible((collection, key))
        return None if record is None else dict(record)

    def collections(self) -> list[str]:
        return self.replica.collections()

    @property
    def seq(self) -> int:
        """The last server seq applied to the confirmed state."""
        return self.replica.seq

    @property
    def pending(self) -> int:
        """Local changes not yet confirmed by the server."""
        return len(self.replica.pending)

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    @property
    def synced(self) -> bool:
        """Subscribed, caught up with the server, and nothing pending."""
        return self._subscribed and self.replica.caught_up and not self.replica.pending

    # Writing

    async def set(self, collection: str, key: str, **fields: Any) -> int:
        """Set fields (last writer wins per field); returns the ``client_seq``."""
        return await self.update(collection, key, fields)

    async def update(self, collection: str, key: str, fields: Mapping[str, Any]) -> int:
        """``set`` for field names that are not Python identifiers."""
        if not fields:
            raise ValueError("set needs at least one field")
        return await self.apply(collection, key, {"kind": "set", "fields": dict(fields)})

    async def delete(self, collection: str, key: str) -> int:
        return await self.apply(collection, key, {"kind": "delete"})

    async def incr(self, collection: str, key: str, field: str, by: int = 1) -> int:
        """Add ``by`` to a counter field; concurrent increments all count."""
        if not isinstance(by, int) or isinstance(by, bool):
            raise TypeError("incr takes an integer")
        return await self.apply(collection, key, {"kind": "incr", "field": field, "by": by})

    async def add(self, collection: str, key: str, field: str, *values: Any) -> int:
        """Add values to the add-wins set in ``field`` (a concurrent add beats a remove)."""
        return await self.apply(
            collection, key, {"kind": "add", "field": field, "values": list(values)}
        )

    async def remove(
        self, collection: str, key: str, field: str, *values: Any, seen: int | None = None
    ) -> int:
        """Remove values from the set in ``field``: the adds this replica has seen.

        ``seen`` defaults to the room's current ``seq``, so adds this client has
        not seen yet survive (add wins).
        """
        op: dict[str, Any] = {"kind": "remove", "field": field, "values": list(values)}
        op["seen"] = self.replica.seq if seen is None else seen
        return await self.apply(collection, key, op)

    async def insert(
        self, collection: str, key: str, field: str, *values: Any, after: str | None = None
    ) -> list[str]:
        """Insert values into the list in ``field`` after element ``after`` (None: at the
        start); returns the new elements' ids, known before the server confirms them."""
        op: dict[str, Any] = {
            "kind": "insert",
            "field": field,
            "after": after,
            "values": list(values),
        }
        client_seq = await self.apply(collection, key, op)
        return [element_id(self.client.client_id, client_seq, n) for n in range(len(values))]

    async def remove_items(self, collection: str, key: str, field: str, *ids: str) -> int:
        """Remove the list elements ``ids`` from the list in ``field``."""
        return await self.apply(
            collection, key, {"kind": "remove_items", "field": field, "ids": list(ids)}
        )

    async def apply(self, collection: str, key: str, op: Mapping[str, Any]) -> int:
        """Queue any op (``{"kind": …}``), the hook for op kinds without a helper.

        The change is stored in the offline queue and shown locally before this
        returns; it is pushed when connected. Returns its ``client_seq``.
        """
        if self._left:
            raise ClientError(f"room {self.name} was left")
        for what, value in (("collection", collection), ("key", key)):
            if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME:
                raise ValueError(f"{what} must be a string of 1 to {MAX_NAME} characters")
        client_seq, events = await self.client._queue(self, collection, key, dict(op))
        self._emit(events)
        self._push_wanted.set()
        return client_seq

    # Events

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(change)`` on every change of a visible record; returns its remover."""
        self._change_callbacks.append(callback)
        return lambda: _remove(self._change_callbacks, callback)

    async def changes(self, maxsize: int = 10_000) -> AsyncIterator[RecordChange]:
        """Iterate over changes of visible records from now on.

        Raises ``SlowConsumer`` when more than ``maxsize`` are waiting unread.
        """
        stream = _ChangeStream(maxsize)
        self._streams.append(stream)
        try:
            while True:
                yield await stream.get()
        finally:
            _remove(self._streams, stream)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checking after every event of this room.

        Bound it with ``asyncio.timeout``.
        """
        while not predicate():
            await self._tick.wait()

    async def wait_synced(self) -> None:
        """Wait until subscribed, caught up, and nothing of this room is pending."""
        await self.wait_until(lambda: self.synced)

    def on_presence(self, callback: PresenceCallback) -> Callable[[], None]:
        """``callback(event, peer)``: ``sync`` (peer None), ``join``, ``update``, ``leave``,
        and with ``join(users=True)`` also ``user_online`` / ``user_offline``."""
        self._presence_callbacks.append(callback)
        return lambda: _remove(self._presence_callbacks, callback)

    def on_broadcast(self, callback: BroadcastCallback) -> Callable[[], None]:
        """``callback(broadcast)`` for every broadcast from another session."""
        self._broadcast_callbacks.append(callback)
        return lambda: _remove(self._broadcast_callbacks, callback)

    # Presence and broadcast

    @property
    def presence(self) -> dict[str, Any] | None:
        """This session's presence state (``None``: not joined to presence)."""
        return self._presence

    async def set_presence(self, state: Mapping[str, Any]) -> None:
        """Join or update presence; kept and re-sent on every reconnect."""
        self._presence = dict(state)
        conn = self._conn
        if conn is not None and self._subscribed:
            with contextlib.suppress(ConnectionLost):
                await conn.send({"type": "presence", "room": self.name, "state": self._presence})

    async def broadcast(self, data: Any, *, channel: str | None = None) -> bool:
        """Send ephemeral ``data`` to the other sessions; ``False`` when offline (not queued).

        On a ``channel`` the server coalesces a flood to the newest message
        (cursor positions); without one, a flood gets ``RATE_LIMITED``.
        """
        conn = self._conn
        if conn is None or not self._subscribed:
            return False
        message: dict[str, Any] = {"type": "broadcast", "room": self.name, "data": data}
        if channel is not None:
            message["channel"] = channel
        try:
            await conn.send(message)
        except ConnectionLost:
            return False
        return True

    async def list_presence(
        self, *, cursor: str | None = None, limit: int = 100, counts_only: bool = False
    ) -> PresencePage:
        """A page of the room's presence from the server (needs a connection)."""
        conn = self._conn
        if conn is None or not self._subscribed:
            raise ConnectionLost(None)
        message: dict[str, Any] = {"type": "presence_list", "room": self.name, "limit": limit}
        if cursor is not None:
            message["cursor"] = cursor
        if counts_only:
            message["counts_only"] = True
        reply = await conn.request(message)
        return PresencePage(
            [Peer.from_wire(p) for p in reply.get("peers") or []],
            int(reply.get("count", 0)),
            int(reply.get("users", 0)),
            reply.get("next_cursor") or None,
        )

    async def leave(self) -> None:
        """Unsubscribe. Pending changes stay in the offline queue until the room is joined again."""
        conn, subscribed = self._conn, self._subscribed
        self._left = True
        await self._detach()
        if conn is not None and subscribed:
            with contextlib.suppress(ConnectionLost, NotSubscribed, TimeoutError):
                await conn.request({"type": "unsubscribe", "room": self.name})
        self.client._forget(self)

    # Driven by the client

    def _attach(self, conn: Connection, joined: asyncio.Future[None] | None = None) -> None:
        self._conn = conn
        self._task = asyncio.create_task(self._sync(conn, joined), name=f"accord-room-{self.name}")

    async def _detach(self) -> None:
        task, self._task = self._task, None
        self._conn = None
        self._subscribed = False
        self.peers = {}
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._pulse()

    async def _sync(self, conn: Connection, joined: asyncio.Future[None] | None) -> None:
        """Subscribe on ``conn`` (retrying while the service is unavailable), then push."""
        attempt = 0
        while True:
            message: dict[str, Any] = {
                "type": "subscribe",
                "room": self.name,
                "since": self.replica.seq,
            }
            if self._presence is not None:
                message["presence"] = self._presence
            if self._users:
                message["users"] = True
            self._since_sent = self.replica.seq
            try:
                await conn.request(message)
                break
            except (Unavailable, Internal, RateLimited) as error:
                if joined is not None:
                    _settle(joined, error)
                    return
                delay = _retry_delay(error, self.client.backoff.delay(attempt))
                attempt += 1
                log.info("subscribe to %s failed (%r); retrying in %.1fs", self.name, error, delay)
                await asyncio.sleep(delay)
            except AccordError as error:
                if joined is not None:
                    _settle(joined, error)
                else:
                    self.client._report(error)
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
            while self._subscribed and (unsent := self.replica.unsent()):
                size = 1 if unsent[0].client_seq <= solo_until else MAX_PUSH
                batch = unsent[:size]
                try:
                    ack = await conn.request(
                        {"type": "push", "room": self.name, "changes": [c.wire() for c in batch]}
                    )
                except (Unavailable, Internal, RateLimited) as error:
                    await asyncio.sleep(_retry_delay(error, self.client.backoff.delay(attempt)))
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
                    ts = result.get("ts")
                    if isinstance(ts, int):
                        self.client._clock.observe(ts)
                await self._commit(self.replica.ack(results))

    async def _reject(self, change: PendingChange, error: AccordError) -> None:
        applied = self.replica.reject([change.client_seq])
        self.client._report(RejectedChange(self.name, change, error))
        await self._commit(applied)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribed":
            self._subscribed = True
            await self._commit(
                self.replica.subscribed(self._since_sent, int(message.get("head", 0)))
            )
        elif kind == "snapshot":
            chunk = self.replica.snapshot_chunk(
                message.get("records") or [], int(message.get("seq", 0)), bool(message.get("last"))
            )
            await self._commit(chunk)
        elif kind == "changes":
            changes = message.get("changes") or []
            for change in changes:
                ts = change.get("ts")
                if isinstance(ts, int):
                    self.client._clock.observe(ts)
            await self._commit(self.replica.apply_changes(changes))
        elif kind == "presence":
            self._handle_presence(message)
        elif kind == "broadcast":
            channel = message.get("channel")
            broadcast = Broadcast(
                message.get("data"),
                str(message.get("from", "")),
                channel if isinstance(channel, str) else None,
            )
            for broadcast_cb in list(self._broadcast_callbacks):
                _call(broadcast_cb, broadcast)
        elif kind == "error":
            error_code = message.get("code")
            if error_code == "FORBIDDEN":
                # A refreshed token lost read access: the server ended the subscription.
                self._subscribed = False
            self.client._report(error_from_message(message))
        self._pulse()

    def _handle_presence(self, message: dict[str, Any]) -> None:
        event = str(message.get("event", ""))
        peer: Peer | None = None
        if event == "sync":
            self.peers = {p.session_id: p for p in map(Peer.from_wire, message.get("peers") or [])}
            self.presence_count = int(message.get("count", len(self.peers)))
            self.presence_users = int(
                message.get("users", len({p.user_id for p in self.peers.values()}))
            )
            self.presence_cursor = message.get("next_cursor") or None
        elif event in ("user_online", "user_offline"):
            if isinstance(message.get("peer"), dict):
                peer = Peer.from_wire(message["peer"])
        elif isinstance(message.get("peer"), dict):
            peer = Peer.from_wire(message["peer"])
            if event == "leave":
                if self.peers.pop(peer.session_id, None) is not None:
                    self.presence_count = max(0, self.presence_count - 1)
            else:
                if peer.session_id not in self.peers:
                    self.presence_count += 1
                self.peers[peer.session_id] = peer
        for callback in list(self._presence_callbacks):
            _call(callback, event, peer)

    async def _commit(self, applied: Applied) -> None:
        """Emit ``applied``'s events, then persist what it changed."""
        self._emit(applied.events)
        if applied.replaced:
            records: dict[tuple[str, str], Record | None] = dict(self.replica.confirmed_items())
        else:
            records = {key: self.replica.confirmed_record(key) for key in applied.changed}
        if records or applied.dropped or applied.replaced:
            await asyncio.shield(
                self.client._store.save(
                    self.name, self.replica.seq, records, applied.dropped, replace=applied.replaced
                )
            )
        if applied.dropped or applied.events:
            self.client._update_status()

    def _emit(self, events: list[RecordChange]) -> None:
        for event in events:
            for callback in list(self._change_callbacks):
                _call(callback, event)
            for stream in self._streams:
                stream.put(event)
        if events:
            self._pulse()

    def _pulse(self) -> None:
        self._tick.set()
        self._tick = asyncio.Event()
        self.client._update_status()


class _ChangeStream:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: collections.deque[RecordChange] = collections.deque()
        self.ready = asyncio.Event()
        self.overflowed = False

    def put(self, item: RecordChange) -> None:
        if len(self.items) >= self.maxsize:
            self.overflowed = True
        else:
            self.items.append(item)
        self.ready.set()

    async def get(self) -> RecordChange:
        while not self.items:
            if self.overflowed:
                raise SlowConsumer(f"more than {self.maxsize} changes were left unread")
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()


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


def _remove(items: list[Any], item: Any) -> None:
    with contextlib.suppress(ValueError):
        items.remove(item)


def _call(callback: Callable[..., None], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:
        log.exception("an Accord callback raised")

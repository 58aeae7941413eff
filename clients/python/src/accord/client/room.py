"""A joined room, as the app sees it: reads, writes, change events, presence and broadcast."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

from accord.client.changes import RecordChange
from accord.client.codes import MAX_NAME
from accord.client.encryption import Encryption
from accord.client.errors import ClientError, ConnectionLost
from accord.client.events import ChangeStream
from accord.client.link import RoomLink
from accord.client.patch import Record, element_id
from accord.client.presence import Broadcast, Peer, PresencePage

__all__ = ["Broadcast", "Peer", "PresencePage", "Room"]


ChangeCallback = Callable[[RecordChange], None]
PresenceCallback = Callable[[str, Peer | None], None]
BroadcastCallback = Callable[[Broadcast], None]


class Room:
    """Made by ``Client.join``. Reads are synchronous and show local writes at once."""

    def __init__(self, link: RoomLink) -> None:
        self.name = link.name
        self.replica = link.replica
        self._link = link

    def __repr__(self) -> str:
        return f"<Room {self.name} seq={self.seq} pending={self.pending}>"

    # Reading

    def records(self, collection: str) -> dict[str, Record]:
        """The visible records of ``collection`` by key: confirmed state, pending writes on top.

        Encrypted fields show their values, or an ``Undecryptable`` marker.
        """
        records = self.replica.records(collection)
        cipher = self._link.cipher
        return records if cipher is None else cipher.present_all(collection, records)

    def get(self, collection: str, key: str) -> Record | None:
        record = self.replica.visible((collection, key))
        cipher = self._link.cipher
        if cipher is not None:
            return cipher.present(collection, key, record)
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
        return self._link.subscribed

    @property
    def synced(self) -> bool:
        """Subscribed, caught up with the server, and nothing pending."""
        return self._link.synced

    @property
    def peers(self) -> dict[str, Peer]:
        """Sessions present, by session id: the first page of ``sync`` plus the events since."""
        return self._link.presence.peers

    @property
    def presence_count(self) -> int:
        """Sessions present, as of the last ``sync``."""
        return self._link.presence.count

    @property
    def presence_users(self) -> int:
        """Distinct users present, as of the last ``sync``."""
        return self._link.presence.users

    @property
    def presence_cursor(self) -> str | None:
        """Set when ``sync`` listed only the first page of peers: go on with ``list_presence``."""
        return self._link.presence.cursor

    @property
    def encryption(self) -> Encryption | None:
        cipher = self._link.cipher
        return None if cipher is None else cipher.encryption

    def set_encryption(self, encryption: Encryption | None) -> None:
        """Replace the room's keys and encrypted fields, e.g. to rotate keys:
        ``room.set_encryption(room.encryption.rotated("k2", new_key))``."""
        self._link.encrypt(encryption)

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
        return [element_id(self._link.host.client_id, client_seq, n) for n in range(len(values))]

    async def remove_items(self, collection: str, key: str, field: str, *ids: str) -> int:
        """Remove the list elements ``ids`` from the list in ``field``."""
        return await self.apply(
            collection, key, {"kind": "remove_items", "field": field, "ids": list(ids)}
        )

    async def apply(self, collection: str, key: str, op: Mapping[str, Any]) -> int:
        """Queue any op (``{"kind": …}``), the hook for op kinds without a helper.

        The change is stored in the offline queue and shown locally before this
        returns; it is pushed when connected. Returns its ``client_seq``. Encrypted
        fields are sealed here; an op other than set/delete on one raises
        ``EncryptedFieldError`` and queues nothing.
        """
        if self._link.left:
            raise ClientError(f"room {self.name} was left")
        for what, value in (("collection", collection), ("key", key)):
            if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME:
                raise ValueError(f"{what} must be a string of 1 to {MAX_NAME} characters")
        cipher = self._link.cipher
        sealed = dict(op) if cipher is None else cipher.seal_op(collection, key, op)
        host = self._link.host
        client_seq, events = await host.queue(self.name, self.replica, collection, key, sealed)
        self._link.emit(events)
        self._link.want_push()
        return client_seq

    # Events

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(change)`` on every change of a visible record; returns its remover."""
        return self._link.on_change.add(callback)

    async def changes(self, maxsize: int = 10_000) -> AsyncGenerator[RecordChange, None]:
        """Iterate over changes of visible records from now on.

        Raises ``SlowConsumer`` when more than ``maxsize`` are waiting unread.
        """
        stream = ChangeStream(maxsize)
        self._link.streams.append(stream)
        try:
            while True:
                yield await stream.get()
        finally:
            self._link.streams.remove(stream)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checking after every event of this room.

        Bound it with ``asyncio.timeout``.
        """
        while not predicate():
            await self._link.pulse.wait()

    async def wait_synced(self) -> None:
        """Wait until subscribed, caught up, and nothing of this room is pending."""
        await self.wait_until(lambda: self.synced)

    def on_presence(self, callback: PresenceCallback) -> Callable[[], None]:
        """``callback(event, peer)``: ``sync`` (peer None), ``join``, ``update``, ``leave``,
        and with ``join(users=True)`` also ``user_online`` / ``user_offline``."""
        return self._link.on_presence.add(callback)

    def on_broadcast(self, callback: BroadcastCallback) -> Callable[[], None]:
        """``callback(broadcast)`` for every broadcast from another session."""
        return self._link.on_broadcast.add(callback)

    # Presence and broadcast

    @property
    def presence(self) -> dict[str, Any] | None:
        """This session's presence state (``None``: not joined to presence)."""
        return self._link.presence_state

    async def set_presence(self, state: Mapping[str, Any]) -> None:
        """Join or update presence; kept and re-sent on every reconnect."""
        presence = self._link.presence_state = dict(state)
        conn = self._link.conn
        if conn is not None and self._link.subscribed:
            with contextlib.suppress(ConnectionLost):
                await conn.send({"type": "presence", "room": self.name, "state": presence})

    async def broadcast(self, data: Any, *, channel: str | None = None) -> bool:
        """Send ephemeral ``data`` to the other sessions; ``False`` when offline (not queued).

        On a ``channel`` the server coalesces a flood to the newest message
        (cursor positions); without one, a flood gets ``RATE_LIMITED``.
        """
        conn = self._link.conn
        if conn is None or not self._link.subscribed:
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
        conn = self._link.conn
        if conn is None or not self._link.subscribed:
            raise ConnectionLost(None)
        message: dict[str, Any] = {"type": "presence_list", "room": self.name, "limit": limit}
        if cursor is not None:
            message["cursor"] = cursor
        if counts_only:
            message["counts_only"] = True
        return PresencePage.from_wire(await conn.request(message))

    async def leave(self) -> None:
        """Unsubscribe. Pending changes stay in the offline queue until the room is joined again."""
        await self._link.leave()

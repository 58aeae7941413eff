"""The client's joined rooms, and what each may ask of its client (a ``RoomHost``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from accord.client.backoff import Backoff
from accord.client.changes import RecordChange, RecordKey
from accord.client.connection import Connection
from accord.client.encryption import Encryption
from accord.client.errors import AccordError, ClientClosed
from accord.client.link import RoomLink
from accord.client.outbox import Outbox
from accord.client.patch import Record
from accord.client.replica import Replica
from accord.client.room import Room

__all__ = ["Rooms"]


class Rooms:
    """Joins rooms, drives their links on each connection, routes messages to them.

    ``running`` is the client's: changes are refused (``ClientClosed``) while it is false.
    """

    def __init__(
        self,
        outbox: Outbox,
        backoff: Callable[[], Backoff],
        report: Callable[[Exception], None],
        changed: Callable[[], None],
    ) -> None:
        self.outbox = outbox
        self.running = False
        self._client_id = ""
        self._backoff = backoff
        self._report = report
        self._changed = changed
        self._rooms: dict[str, Room] = {}
        self._links: dict[str, RoomLink] = {}
        self._conn: Connection | None = None

    # For the client

    def get(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def all(self) -> dict[str, Room]:
        return dict(self._rooms)

    @property
    def pending(self) -> int:
        return sum(link.pending for link in self._links.values())

    @property
    def synced(self) -> bool:
        return all(link.synced for link in self._links.values())

    async def open(self, client_id: str | None, default: str) -> str:
        """Open the offline store and start taking changes; this replica's client_id."""
        self._client_id = await self.outbox.open(client_id, default)
        self.running = True
        return self._client_id

    async def join(
        self,
        name: str,
        presence: dict[str, Any] | None,
        users: bool,
        encryption: Encryption | None = None,
    ) -> Room:
        """Load ``name`` from the store and, when connected, subscribe."""
        if name in self._rooms:
            raise ValueError(f"already joined {name}")
        state = await self.outbox.store.load_room(name)
        if name in self._rooms:
            raise ValueError(f"already joined {name}")
        replica = Replica(
            name,
            self._client_id,
            seq=state.seq,
            epoch=state.epoch,
            records=state.records,
            pending=state.pending,
        )
        link = RoomLink(self, name, replica, presence, users, encryption)
        room = Room(link)
        self._rooms[name], self._links[name] = room, link
        conn = self._conn
        if conn is not None:
            subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            link.attach(conn, subscribed)
            try:
                await subscribed
            except AccordError:
                await link.detach()
                self.forget(name)
                raise
        self._changed()
        return room

    def attach(self, conn: Connection) -> None:
        """Connected: subscribe every room on ``conn``, and rooms joined from now on."""
        self._conn = conn
        for link in list(self._links.values()):
            link.attach(conn)

    async def detach(self) -> None:
        self._conn = None
        for link in list(self._links.values()):
            await link.detach()

    async def close(self) -> None:
        """Detach every room and close the offline store (``running`` is already false)."""
        await self.detach()
        await self.outbox.store.close()

    async def dispatch(self, message: dict[str, Any]) -> bool:
        """Hand ``message`` to the room it names; ``False`` when it names none joined."""
        name = message.get("room")
        link = self._links.get(name) if isinstance(name, str) else None
        if link is None:
            return False
        await link.handle(message)
        return True

    # RoomHost

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def backoff(self) -> Backoff:
        return self._backoff()

    async def queue(
        self, room: str, replica: Replica, collection: str, key: str, op: dict[str, Any]
    ) -> tuple[int, list[RecordChange]]:
        if not self.running:
            raise ClientClosed("the client is not running")
        queued = await self.outbox.queue(room, replica, collection, key, op)
        self._changed()
        return queued

    def observe(self, ts: int) -> None:
        self.outbox.clock.observe(ts)

    async def save(
        self,
        room: str,
        seq: int,
        records: Mapping[RecordKey, Record | None],
        dropped: Sequence[int],
        *,
        replace: bool,
        epoch: str,
    ) -> None:
        await self.outbox.store.save(room, seq, records, dropped, replace=replace, epoch=epoch)

    def report(self, error: Exception) -> None:
        self._report(error)

    def changed(self) -> None:
        self._changed()

    def forget(self, room: str) -> None:
        self._rooms.pop(room, None)
        self._links.pop(room, None)
        self._changed()

"""The client: one connection to the edge (WebSocket, or the HTTP fallback), kept open, and the
rooms joined over it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from accord.client.backoff import Backoff
from accord.client.codes import CLIENT_ID, KICKED, ROOM, UNAUTHORIZED
from accord.client.connection import Connection
from accord.client.encryption import Encryption
from accord.client.errors import (
    AccordError,
    ClientClosed,
    ConnectionLost,
    Disconnected,
    SequenceGap,
    Unauthenticated,
    error_from_message,
)
from accord.client.events import Callbacks, Pulse
from accord.client.outbox import Outbox
from accord.client.patch import UnknownPatch
from accord.client.room import Room
from accord.client.rooms import Rooms
from accord.client.status import State, Status
from accord.client.store import OfflineStore, store_for
from accord.client.tokens import TokenProvider, TokenSource, token_expiry
from accord.client.transports import Fallback, Transports

__all__ = ["Client", "TokenProvider", "connect", "token_expiry"]

log = logging.getLogger(__name__)

StatusCallback = Callable[[Status], None]
ErrorCallback = Callable[[Exception], None]


class Client:
    """A connection to Accord that keeps itself open. Use ``async with connect(...)``.

    - ``token`` or ``token_provider`` (called, sync or async, for the first token
      when ``token`` is absent, after the server refuses one, and shortly
      before the current one expires). Neither: anonymous, if the edge allows it.
    - ``client_id`` names this replica (stable across restarts: it scopes
      ``client_seq``). Absent: the offline store's, or a new random one.
    - ``offline_path``: an SQLite file (``~`` expanded; unusable: ``OfflineStoreError``) for
      the offline queue, the ``client_seq`` counter and each room's confirmed state.
      Absent: kept in memory only (``store`` takes any ``OfflineStore``).
    - ``fallback``: when to use the HTTP fallback instead of the WebSocket (``Fallback``).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        client_id: str | None = None,
        user: Mapping[str, Any] | None = None,
        offline_path: str | Path | None = None,
        store: OfflineStore | None = None,
        backoff: Backoff | None = None,
        heartbeat: float = 15.0,
        request_timeout: float = 30.0,
        on_status: StatusCallback | None = None,
        on_error: ErrorCallback | None = None,
        session: aiohttp.ClientSession | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        if client_id is not None and not CLIENT_ID.fullmatch(client_id):
            raise ValueError("client_id must be 1-64 characters of [A-Za-z0-9_.:-]")
        if store is not None and offline_path is not None:
            raise ValueError("give offline_path or store, not both")
        self.url = url
        self.user = dict(user) if user is not None else None
        self.backoff = backoff or Backoff()
        self.heartbeat = heartbeat
        self.request_timeout = request_timeout
        self.welcome: dict[str, Any] = {}
        self.error: Exception | None = None
        self._tokens = TokenSource(token, token_provider)
        self._requested_client_id = client_id
        self._client_id = client_id or ""
        outbox = Outbox(store or store_for(offline_path))
        self._rooms = Rooms(outbox, lambda: self.backoff, self._report, self._update_status)
        self._http = session
        self._own_http = session is None
        self._conn: Connection | None = None
        self._connecting = False
        self._offline_requested = False
        self._closed = False
        self._started = False
        self._attempt = 0
        self._auth_error: AccordError | None = None
        self._wake = asyncio.Event()
        self._ready: asyncio.Future[None] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._status = Status(State.OFFLINE)
        self._status_callbacks: Callbacks[[Status]] = Callbacks("status", on_status)
        self._error_callbacks: Callbacks[[Exception]] = Callbacks("error", on_error)
        self._tick = Pulse()
        self._transports = Transports(url, fallback or Fallback(), heartbeat, self._report)

    # Lifecycle

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, *, wait: bool = True) -> None:
        """Open the offline store and start connecting.

        ``wait``: return once the server welcomed this client, raising the typed
        error (``Unauthenticated``, ``TokenExpired``, …) if it never will.
        Without it, return at once and work offline until connected.
        """
        if self._started:
            raise RuntimeError("the client was already started")
        self._started = True
        default = f"py-{uuid.uuid4().hex[:16]}"
        self._client_id = await self._rooms.open(self._requested_client_id, default)
        if self._http is None:
            self._http = aiohttp.ClientSession()
        self._ready = asyncio.get_running_loop().create_future()
        self._run_task = asyncio.create_task(self._run(), name="accord-client")
        if wait:
            await asyncio.shield(self._ready)

    async def close(self) -> None:
        """Disconnect. Pending changes stay in the offline store for the next start."""
        if self._closed:
            return
        self._closed = True
        self._rooms.running = False
        self._wake.set()
        conn = self._conn
        if conn is not None:
            await conn.close()
        if self._run_task is not None:
            self._run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
        await self._rooms.close()
        if self._own_http and self._http is not None:
            await self._http.close()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ClientClosed("the client was closed"))
            self._ready.exception()
        self._update_status()

    # State

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def token_provider(self) -> TokenProvider | None:
        return self._tokens.provider

    @token_provider.setter
    def token_provider(self, provider: TokenProvider | None) -> None:
        self._tokens.provider = provider

    @property
    def status(self) -> Status:
        return self._status

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def rooms(self) -> dict[str, Room]:
        return self._rooms.all()

    def on_status(self, callback: StatusCallback) -> Callable[[], None]:
        """Call ``callback(status)`` whenever the state or the pending count changes."""
        return self._status_callbacks.add(callback)

    def on_error(self, callback: ErrorCallback) -> Callable[[], None]:
        """Errors no call is waiting for: refused changes (``RejectedChange``), errors the
        server sent unasked (lost access, presence or broadcast refused), a ``hello``
        refused for now (``Internal``, ``Unavailable``, ``RateLimited``: it reconnects with
        backoff), and the fatal error that ends the client."""
        return self._error_callbacks.add(callback)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checking on every status change and room event.

        Bound it with ``asyncio.timeout``.
        """
        while not predicate():
            if self.error is not None:
                raise self.error
            if self._closed:
                raise ClientClosed("the client was closed")
            await self._tick.wait()

    async def wait_synced(self) -> None:
        """Wait until connected, caught up in every room, with nothing pending."""
        await self.wait_until(lambda: self._status.state == State.SYNCED)

    # Rooms

    async def join(
        self,
        room: str,
        *,
        presence: Mapping[str, Any] | None = None,
        users: bool = False,
        encryption: Encryption | None = None,
    ) -> Room:
        """Join ``room``: its replica from the offline store, subscribed (resuming with
        ``since``) now if connected, else on connect.

        ``presence``: join the room's presence with this state. ``users``: also get
        ``user_online`` / ``user_offline`` presence events. ``encryption``: the
        room's end-to-end encrypted fields and their keys (docs/encryption.md).

        Raises the server's refusal (``Forbidden``, ``Unavailable``, …) when connected.
        """
        if self.error is not None:
            raise self.error
        if self._closed or not self._started:
            raise ClientClosed("the client is not running")
        if not ROOM.fullmatch(room):
            raise ValueError("room names are 1-128 characters of [A-Za-z0-9_.:-]")
        state = dict(presence) if presence is not None else None
        return await self._rooms.join(room, state, users, encryption)

    def room(self, name: str) -> Room | None:
        return self._rooms.get(name)

    # Connection control

    async def go_offline(self) -> None:
        """Disconnect and stay offline (changes queue up) until ``go_online()``."""
        self._offline_requested = True
        conn = self._conn
        if conn is not None:
            await conn.close()
        await self.wait_until(lambda: self._conn is None)
        self._update_status()

    def go_online(self) -> None:
        self._offline_requested = False
        self._attempt = 0
        self._wake.set()

    async def request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Send a raw protocol request and wait for its reply; errors come back typed."""
        conn = self._conn
        if conn is None:
            raise ConnectionLost(None)
        return await conn.request(dict(message))

    # Status and errors

    def _report(self, error: Exception) -> None:
        if isinstance(error, Unauthenticated):
            self._auth_error = error
        log.info("accord: %r", error)
        self._error_callbacks(error)

    def _update_status(self) -> None:
        conn = self._conn
        if self.error is not None or self._closed:
            state = State.FAILED if self.error is not None else State.CLOSED
        elif conn is None:
            state = State.CONNECTING if self._connecting else State.OFFLINE
        else:
            state = State.SYNCED if self._rooms.synced else State.SYNCING
        status = Status(state, self._rooms.pending, None if conn is None else conn.transport)
        self._tick.fire()
        if status == self._status:
            return
        self._status = status
        self._status_callbacks(status)

    # The connection loop

    async def _run(self) -> None:
        force_refresh = False
        while not self._closed:
            if self._offline_requested:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._connecting = True
            self._update_status()
            close_code: int | None = None
            retry_after = 0.0
            try:
                close_code = await self._session(force_refresh)
                force_refresh = False
            except Unauthenticated as error:
                if self._tokens.provider is None or force_refresh:
                    self._fail(error)
                    return
                force_refresh = True
            except (AccordError, UnknownPatch) as error:
                if not getattr(error, "retryable", False):
                    self._fail(error)
                    return
                self._report(error)  # a hello refused for now: INTERNAL, UNAVAILABLE, RATE_LIMITED
                retry_after = getattr(error, "retry_after_ms", 0) / 1000
            except SequenceGap as error:
                log.warning("resubscribing: %s", error)
                continue
            except (OSError, aiohttp.ClientError, ConnectionLost, TimeoutError) as error:
                log.info("accord: connection to %s failed: %r", self.url, error)
                close_code = getattr(error, "close_code", None)
            except Exception:
                # A bug or a malformed message: drop this session, keep the client alive.
                log.exception("accord: the session to %s failed", self.url)
            finally:
                self._connecting = False
            if self._closed:
                return
            if close_code == KICKED:
                self._fail(Disconnected("disconnected by an operator (close 4003)"))
                return
            if close_code == UNAUTHORIZED and not self._offline_requested:
                if self._tokens.provider is None:
                    self._fail(self._auth_error or Unauthenticated("the server closed with 4001"))
                    return
                force_refresh = True
            self._update_status()
            if self._offline_requested:
                continue
            delay = self.backoff.after(self._attempt, close_code, retry_after)
            self._attempt += 1
            log.info("accord: reconnecting in %.2fs (close code %s)", delay, close_code)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _session(self, force_refresh: bool) -> int | None:
        token = await self._tokens.current(force_refresh)
        assert self._http is not None
        conn = await self._transports.open(self._http, self._on_message, self.request_timeout)
        reader = asyncio.create_task(conn.run(), name="accord-reader")
        refresher: asyncio.Task[None] | None = None
        try:
            hello = dict(type="hello", client_id=self._client_id, token=token, user=self.user)
            self.welcome = await self._transports.greet(conn, hello, self._http)
            self._auth_error = None
            self._attempt = 0
            self._conn = conn
            self._connecting = False
            self._rooms.attach(conn)
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            if self._tokens.provider is not None:
                refresher = asyncio.create_task(
                    self._tokens.keep_fresh(conn, self._report), name="accord-refresh"
                )
            self._update_status()
            return await reader
        finally:
            self._conn = None
            self._transports.detach()
            if refresher is not None:
                refresher.cancel()
            await self._rooms.detach()
            if not reader.done():
                await conn.close()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.request_timeout):
                        await reader
                reader.cancel()

    async def _on_message(self, message: dict[str, Any]) -> None:
        if not await self._rooms.dispatch(message) and message.get("type") == "error":
            self._report(error_from_message(message))

    def _fail(self, error: Exception) -> None:
        self.error = error
        self._report(error)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
            self._ready.exception()
        self._update_status()


connect = Client
"""``async with connect(url, token=…, client_id=…) as client:`` — ``Client`` under its verb."""

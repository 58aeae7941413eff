"""``after_commit``: every committed change, to each extension, in seq order per room.

Each extension with an ``after_commit`` has a durable cursor per room (the
``extension_cursors`` table): the last seq its hook returned from. Its feed
reads the room's log after the cursor, calls the hook with the next run of
changes (at most ``PAGE`` of them), and moves the cursor once the hook has
returned — so a change is delivered again only if the process stops between
the hook's return and that write (or when two replicas deliver one room at
once); the extension dedupes by seq. The feed learns of new commits from the
committer (``notify``), and at start and every ``SCAN_INTERVAL`` it asks the
store for every room whose head is past its cursor: so it resumes from the
log after a restart, and picks up the rooms another replica left behind.

A hook that fails (raises, times out, or the store is unreachable) is retried
for that room with exponential backoff, the room's later changes waiting
behind it (order is kept); commits never wait for it, and its other rooms go
on. Compaction keeps every change a configured extension has not passed
(``Holds``); a room compacted before an extension was installed starts at the
oldest change its log still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field

from accord.common import jsontext
from accord.common.tasks import set_within, spawn
from accord.extensions import AfterCommit, Committed, Extension, Failed, HookRunner, Refuse
from accord.sync import metrics
from accord.sync.model import LoggedChange
from accord.sync.store import RoomTransaction, Store

log = logging.getLogger(__name__)

PAGE = 500
"""Changes per ``after_commit`` call, at most."""
SCAN_INTERVAL = 30.0
"""Seconds between scans of every room for changes an extension has not seen."""
SCAN_PAGE = 1000
MAX_CURSORS = 100_000
"""Cursors a feed remembers (beyond: read again from the store)."""
STOP_GRACE = 1.0
"""Seconds beyond the hook timeout a stopping dispatcher waits for a delivery under way."""
FIRST_RETRY = 0.1
LAST_RETRY = 30.0


def committed(change: LoggedChange) -> Committed:
    return Committed(
        seq=change.seq,
        user_id=change.user_id,
        client_id=change.client_id,
        client_seq=change.client_seq,
        collection=change.collection,
        key=change.key,
        ts=change.ts,
        op=jsontext.loads(change.op_json),
        patch=jsontext.loads(change.patch_json),
    )


class Holds:
    """What compaction must keep: the changes past the lowest cursor of the extensions."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = tuple(names)

    async def floor(self, tx: RoomTransaction, room: str) -> int:
        return await tx.cursor_floor(room, self._names)


@dataclass
class _Feed:
    name: str
    runner: HookRunner[AfterCommit]
    pending: dict[str, None] = field(default_factory=dict)
    """Rooms with changes it may not have seen, oldest first."""
    cursors: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    retry_at: dict[str, float] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        extensions: Sequence[Extension],
        timeout: float,
        *,
        scan_interval: float = SCAN_INTERVAL,
    ) -> None:
        self._store = store
        self._scan_interval = scan_interval
        self._timeout = timeout
        self._stopping = asyncio.Event()
        self._feeds: list[_Feed] = []
        for extension in extensions:
            runner: HookRunner[AfterCommit] = HookRunner(
                [extension], "after_commit", timeout, metrics.EXTENSION_ERRORS
            )
            if runner.active:
                self._feeds.append(_Feed(extension.name, runner))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(feed.name for feed in self._feeds)

    def holds(self) -> Holds | None:
        return Holds(self.names) if self._feeds else None

    def notify(self, rooms: Iterable[str]) -> None:
        """Rooms just committed to: each feed delivers them next."""
        rooms = list(rooms)
        for feed in self._feeds:
            feed.pending.update(dict.fromkeys(rooms))
            feed.wake.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Dispatcher]:
        tasks = [spawn(self._run(feed), name=f"after_commit {feed.name}") for feed in self._feeds]
        try:
            yield self
        finally:
            # Let a delivery under way record its cursor (so a clean stop repeats nothing),
            # waiting at most as long as one more hook call may take.
            self._stopping.set()
            for feed in self._feeds:
                feed.wake.set()
            if tasks:
                await asyncio.wait(tasks, timeout=self._timeout + STOP_GRACE)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self, feed: _Feed) -> None:
        next_scan = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= next_scan:
                if await self._scan(feed):
                    next_scan = now + self._scan_interval
                else:
                    next_scan = now + FIRST_RETRY * 10
            ready = [r for r in feed.pending if feed.retry_at.get(r, 0.0) <= now]
            if not ready:
                feed.wake.clear()
                due = min((feed.retry_at[r] for r in feed.pending), default=next_scan)
                await set_within(feed.wake, max(0.0, min(due, next_scan) - now))
                continue
            for room in ready:
                if self._stopping.is_set():
                    return
                del feed.pending[room]
                if not await self._deliver(feed, room):
                    feed.pending[room] = None
            metrics.EXTENSION_BEHIND.labels(feed.name).set(len(feed.pending))

    async def _scan(self, feed: _Feed) -> bool:
        after = ""
        try:
            while True:
                rooms = await self._store.behind(feed.name, after, SCAN_PAGE)
                for room, cursor in rooms:
                    feed.cursors[room] = cursor
                    feed.pending[room] = None
                if len(rooms) < SCAN_PAGE:
                    return True
                after = rooms[-1][0]
        except Exception as error:
            log.warning("after_commit %s: cannot scan the rooms: %s", feed.name, error)
            return False

    async def _deliver(self, feed: _Feed, room: str) -> bool:
        """Deliver what the room's log holds past the cursor; False: retry later."""
        try:
            cursor = feed.cursors.get(room)
            if cursor is None:
                cursor = await self._store.cursor(feed.name, room)
            head = await self._store.head(room)
            while cursor < head and not self._stopping.is_set():
                changes = await self._store.changes(room, cursor, head, PAGE)
                if not changes:
                    break
                if changes[0].seq != cursor + 1:
                    log.warning(
                        "after_commit %s: room %s's log starts at seq %d, after its cursor %d "
                        "(compacted before the extension was installed)",
                        feed.name,
                        room,
                        changes[0].seq,
                        cursor,
                    )
                reply = await feed.runner.run(AfterCommit(room, tuple(map(committed, changes))))
                if isinstance(reply, Failed):
                    return self._failed(feed, room)
                if isinstance(reply, Refuse):
                    log.warning("after_commit %s cannot refuse (ignored)", feed.name)
                if await self._store.advance(feed.name, room, cursor, changes[-1].seq):
                    metrics.EXTENSION_DELIVERED.labels(feed.name).inc(len(changes))
                    cursor = changes[-1].seq
                else:  # another replica moved it meanwhile: go on from where it is
                    cursor = await self._store.cursor(feed.name, room)
                if len(feed.cursors) >= MAX_CURSORS:
                    feed.cursors.clear()
                feed.cursors[room] = cursor
        except Exception as error:
            log.warning("after_commit %s: room %s: %s", feed.name, room, error)
            return self._failed(feed, room)
        feed.failures.pop(room, None)
        feed.retry_at.pop(room, None)
        return True

    def _failed(self, feed: _Feed, room: str) -> bool:
        failures = feed.failures[room] = feed.failures.get(room, 0) + 1
        delay = min(LAST_RETRY, FIRST_RETRY * 2 ** (failures - 1))
        feed.retry_at[room] = time.monotonic() + delay
        return False

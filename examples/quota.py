"""Per-user quota: at most N records per user in each collection of a room.

    SYNC_EXTENSIONS=examples.quota:factory
    QUOTA_LIMIT=100                    # records per (room, collection, user)
    QUOTA_COLLECTIONS=todos,notes      # comma-separated (default: every collection)
    QUOTA_STATE_FILE=/var/lib/accord/quota.json   # optional: keeps the counts across restarts

A record belongs to the user whose change created it. ``before_commit`` sees
whether the record exists (``record is None``: this change would create it)
and refuses a creation beyond the limit with ``FORBIDDEN``. The counts come
from ``after_commit`` — the log, in seq order — and are saved with the last
seq seen per room, so a change delivered again (after a crash between the
hook and the cursor write) is skipped by its seq. Creations ``before_commit``
let through but ``after_commit`` has not seen yet count as pending, so a burst
of pushes cannot slip past the limit; pending entries are keyed by the change
(``before_commit`` may run more than once for one change) and forgotten after
``PENDING_SECONDS`` if their change was never committed (refused further on).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from accord.extensions import AfterCommit, BeforeCommit, BeforeCommitReply, ExtensionContext, Refuse

PENDING_SECONDS = 60.0

Scope = tuple[str, str, str]
"""(room, collection, user_id)"""


class Quota:
    def __init__(
        self, limit: int, collections: frozenset[str] | None, state_file: Path | None
    ) -> None:
        self._limit = limit
        self._collections = collections
        self._state_file = state_file
        self._seen: dict[str, int] = {}
        """room -> the last seq counted."""
        self._owners: dict[tuple[str, str], dict[str, str]] = {}
        """(room, collection) -> key -> the user who created the live record."""
        self._pending: dict[Scope, dict[str, float]] = {}
        """Creations let through, not yet seen committed: scope -> key -> when."""
        if state_file is not None and state_file.exists():
            saved = json.loads(state_file.read_text(encoding="utf-8"))
            self._seen = {room: int(seq) for room, seq in saved["seen"].items()}
            for entry in saved["owners"]:
                self._owners.setdefault((entry["room"], entry["collection"]), {}).update(
                    entry["keys"]
                )

    def _counted(self, collection: str) -> bool:
        return self._collections is None or collection in self._collections

    def _used(self, scope: Scope) -> set[str]:
        room, collection, user = scope
        owned = {
            k for k, owner in self._owners.get((room, collection), {}).items() if owner == user
        }
        pending = self._pending.get(scope, {})
        now = time.monotonic()
        for key in [k for k, since in pending.items() if now - since > PENDING_SECONDS]:
            del pending[key]
        return owned | set(pending)

    async def before_commit(self, change: BeforeCommit) -> BeforeCommitReply:
        if change.record is not None or change.op["kind"] == "delete":
            return None  # not a creation
        if not self._counted(change.collection):
            return None
        scope = (change.room, change.collection, change.user_id)
        used = self._used(scope)
        if change.key not in used and len(used) >= self._limit:
            return Refuse(
                "FORBIDDEN",
                f"quota: at most {self._limit} {change.collection} records per user",
            )
        self._pending.setdefault(scope, {})[change.key] = time.monotonic()
        return None

    async def after_commit(self, committed: AfterCommit) -> None:
        room = committed.room
        for change in committed.changes:
            if change.seq <= self._seen.get(room, 0):
                continue  # delivered again: counted already
            self._seen[room] = change.seq
            if not self._counted(change.collection):
                continue
            owners = self._owners.setdefault((room, change.collection), {})
            self._pending.get((room, change.collection, change.user_id), {}).pop(change.key, None)
            if change.patch.get("deleted"):
                owners.pop(change.key, None)
            elif change.key not in owners:
                owners[change.key] = change.user_id
        if self._state_file is not None:
            await asyncio.to_thread(self._save)

    def _save(self) -> None:
        assert self._state_file is not None
        state: dict[str, Any] = {
            "seen": self._seen,
            "owners": [
                {"room": room, "collection": collection, "keys": keys}
                for (room, collection), keys in self._owners.items()
            ],
        }
        temporary = self._state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state), encoding="utf-8")
        temporary.replace(self._state_file)


def factory(context: ExtensionContext) -> Quota:
    raw = os.environ.get("QUOTA_LIMIT", "").strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"QUOTA_LIMIT={raw!r} must be a positive integer")
    names = os.environ.get("QUOTA_COLLECTIONS", "").strip()
    collections = frozenset(c.strip() for c in names.split(",") if c.strip()) or None
    state = os.environ.get("QUOTA_STATE_FILE", "").strip()
    context.logger.info("quota: %s records per user and collection", raw)
    return Quota(int(raw), collections, Path(state) if state else None)

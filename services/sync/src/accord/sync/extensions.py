"""The sync service's side of ``accord.extensions``: ``before_commit`` and record schemas.

``Screen`` is what the engine asks about each fresh change when any
``before_commit`` extension is installed or any record schema loaded: first
the extensions, in order (each may pass, refuse, or rewrite the op), then —
the service's own check, the last word — the record schemas against the
record as the change would leave it. Without either the engine never calls
it (its plain path is unchanged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from accord.common import jsontext
from accord.extensions import BeforeCommit, Extension, Failed, HookRunner, Refuse, Rewriting
from accord.sync import wire
from accord.sync.batchmerge import Check
from accord.sync.metrics import EXTENSION_ERRORS
from accord.sync.model import ChangeError, IncomingChange, Limits, PushBatch
from accord.sync.schemas import SchemaSet, SchemaWatcher


class Screen:
    def __init__(
        self,
        extensions: Sequence[Extension],
        timeout: float,
        limits: Limits,
        schemas: SchemaWatcher | None = None,
    ) -> None:
        self._limits = limits
        self._schemas = schemas
        self._before: HookRunner[BeforeCommit] = HookRunner(
            extensions,
            "before_commit",
            timeout,
            EXTENSION_ERRORS,
            Rewriting("op", lambda raw: wire.checked_op(raw, limits)[1]),
        )

    @property
    def active(self) -> bool:
        return self._before.active or bool(self._current())

    def _current(self) -> SchemaSet:
        return self._schemas.current if self._schemas is not None else SchemaSet()

    async def judge(
        self, batch: PushBatch, change: IncomingChange, record: Mapping[str, Any] | None
    ) -> IncomingChange | ChangeError:
        """The change as the extensions let it through (rewritten or not), or why not."""
        if not self._before.active:
            return change
        payload = BeforeCommit(
            room=batch.room,
            user_id=batch.user_id,
            client_id=batch.client_id,
            client_seq=change.client_seq,
            collection=change.collection,
            key=change.key,
            op=jsontext.loads(change.op_json),
            record=record,
        )
        result = await self._before.run(payload)
        if isinstance(result, Refuse):
            return ChangeError(result.code, result.message, result.json_path)
        if isinstance(result, Failed):
            return ChangeError(result.code, result.message)
        if result.op is payload.op:
            return change
        op, _, op_json = wire.checked_op(result.op, self._limits)
        return IncomingChange(
            change.client_seq, change.collection, change.key, change.ts, op, op_json
        )

    def checker(self, room: str) -> Check | None:
        """The record schemas' check for ``room``'s records (None: no schema at all)."""
        schemas = self._current()
        if not schemas:
            return None

        def check(collection: str, key: str, value: Mapping[str, Any] | None) -> ChangeError | None:
            return schemas.check(room, collection, key, value)

        return check

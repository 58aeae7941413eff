"""Chat moderation: refuse, or mask, messages that contain a blocked word.

    SYNC_EXTENSIONS=examples.moderation:factory    # or EDGE_EXTENSIONS=…, or both
    MODERATION_WORDS=darn,heck             # or MODERATION_WORDS_FILE=/etc/accord/words.txt
    MODERATION_MODE=mask                   # or refuse (the default)
    MODERATION_COLLECTIONS=messages        # comma-separated (default: messages)

Every string a ``set`` writes (any field) and every string an ``insert`` adds
to a list is checked, whole words, ignoring case. ``refuse`` answers that
change ``BAD_REQUEST``; ``mask`` rewrites each blocked word to asterisks and
lets the change through. A pure judgement of the change: no state.

It implements both ``before_commit`` (sync: after the merge checks, on every
change that reaches the log, whoever sent it) and ``before_push`` (edge: each
pushed change as the client sent it, before it leaves the edge); each service
calls only its own hook, so one factory serves in either setting.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accord.extensions import (
    BeforeCommit,
    BeforeCommitReply,
    BeforePush,
    BeforePushReply,
    ExtensionContext,
    Refuse,
    Rewrite,
)


class Moderation:
    def __init__(
        self, words: list[str], mask: bool, collections: frozenset[str], context: ExtensionContext
    ) -> None:
        if not words:
            raise ValueError("no blocked words: set MODERATION_WORDS or MODERATION_WORDS_FILE")
        alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        self._pattern = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)
        self._mask = mask
        self._collections = collections
        self._log = context.logger

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._pattern.sub(lambda m: "*" * len(m.group()), value)
        return value

    def _blocked(self, value: Any) -> bool:
        return isinstance(value, str) and self._pattern.search(value) is not None

    async def before_commit(self, change: BeforeCommit) -> BeforeCommitReply:
        return self._judge(change.collection, change.key, change.user_id, change.op)

    async def before_push(self, push: BeforePush) -> BeforePushReply:
        change = push.change
        user_id = push.session.identity.user_id
        reply = self._judge(change["collection"], change["key"], user_id, change["op"])
        if isinstance(reply, Rewrite):
            return Rewrite({**change, "op": reply.value})
        return reply

    def _judge(
        self, collection: str, key: str, user_id: str, op: Mapping[str, Any]
    ) -> Refuse | Rewrite[Mapping[str, Any]] | None:
        if collection not in self._collections:
            return None
        if op["kind"] == "set":
            values: Mapping[str, Any] = op["fields"]
            texts = list(values.values())
        elif op["kind"] == "insert":
            texts = list(op["values"])
        else:
            return None
        if not any(self._blocked(t) for t in texts):
            return None
        if not self._mask:
            self._log.info("refused %s/%s from %s", collection, key, user_id)
            return Refuse("BAD_REQUEST", "the message contains a blocked word")
        if op["kind"] == "set":
            fields = {name: self._clean(v) for name, v in op["fields"].items()}
            return Rewrite({"kind": "set", "fields": fields})
        return Rewrite({**op, "values": [self._clean(v) for v in op["values"]]})


def _words() -> list[str]:
    path = os.environ.get("MODERATION_WORDS_FILE", "").strip()
    raw = Path(path).read_text(encoding="utf-8") if path else os.environ.get("MODERATION_WORDS", "")
    return [w.strip() for w in re.split(r"[,\n]", raw) if w.strip()]


def factory(context: ExtensionContext) -> Moderation:
    mode = os.environ.get("MODERATION_MODE", "refuse").strip() or "refuse"
    if mode not in ("refuse", "mask"):
        raise ValueError(f"MODERATION_MODE={mode!r} must be refuse or mask")
    collections = os.environ.get("MODERATION_COLLECTIONS", "messages")
    return Moderation(
        _words(),
        mode == "mask",
        frozenset(c.strip() for c in collections.split(",") if c.strip()),
        context,
    )

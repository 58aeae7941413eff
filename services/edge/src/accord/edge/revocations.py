"""Rooms an operator revoked for a user, whatever the user's token says.

This is the edge's local view: ``revocation_store`` keeps it up to date, in
memory alone (one edge) or from Redis (every edge, surviving restarts). A rule
may carry an expiry (Unix seconds); an expired rule denies nothing, and the
store's sweep lifts it.
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any

from accord.common.audit import rfc3339

ACCESS = ("read", "write")

Rule = tuple[str, str, str]
"""(user_id, room pattern, access)."""


class Revocations:
    """Rooms (glob patterns) a user may no longer read or write, whatever the token says."""

    def __init__(self) -> None:
        self._rules: dict[str, dict[tuple[str, str], float | None]] = {}

    def add(self, user_id: str, pattern: str, access: str, expires_at: float | None = None) -> None:
        self._rules.setdefault(user_id, {})[(pattern, access)] = expires_at

    def remove(self, user_id: str, pattern: str, access: str) -> bool:
        rules = self._rules.get(user_id)
        if not rules or (pattern, access) not in rules:
            return False
        del rules[(pattern, access)]
        if not rules:
            del self._rules[user_id]
        return True

    def rules(self) -> dict[Rule, float | None]:
        return {
            (user, pattern, access): expires
            for user, held in self._rules.items()
            for (pattern, access), expires in held.items()
        }

    def replace(self, rules: dict[Rule, float | None]) -> set[str]:
        """Hold exactly ``rules``; the users whose rules changed."""
        before = self.rules()
        self._rules = {}
        for (user, pattern, access), expires in rules.items():
            self.add(user, pattern, access, expires)
        return {rule[0] for rule, _ in set(before.items()) ^ set(rules.items())}

    def denies(self, user_id: str, room: str, access: str, now: float | None = None) -> bool:
        rules = self._rules.get(user_id)
        if not rules:
            return False
        now = time.time() if now is None else now
        # Revoking read also revokes write.
        return any(
            fnmatch.fnmatchcase(room, pattern)
            and (kind == access or kind == "read")
            and (expires is None or expires > now)
            for (pattern, kind), expires in rules.items()
        )

    def expired(self, now: float | None = None) -> list[Rule]:
        now = time.time() if now is None else now
        return [
            (user, pattern, access)
            for user, rules in self._rules.items()
            for (pattern, access), expires in rules.items()
            if expires is not None and expires <= now
        ]

    def listing(self) -> list[dict[str, Any]]:
        return [
            {
                "user_id": user,
                "room": pattern,
                "access": access,
                "expires_at": None if expires is None else rfc3339(expires),
            }
            for user, rules in sorted(self._rules.items())
            for (pattern, access), expires in sorted(rules.items())
        ]

"""Rooms an operator revoked for a user, whatever the user's token says.

They live in this edge's memory until lifted or the process restarts.
"""

from __future__ import annotations

import fnmatch

ACCESS = ("read", "write")


class Revocations:
    """Rooms (glob patterns) a user may no longer read or write, whatever the token says."""

    def __init__(self) -> None:
        self._rules: dict[str, set[tuple[str, str]]] = {}

    def add(self, user_id: str, pattern: str, access: str) -> None:
        self._rules.setdefault(user_id, set()).add((pattern, access))

    def remove(self, user_id: str, pattern: str, access: str) -> bool:
        rules = self._rules.get(user_id)
        if not rules or (pattern, access) not in rules:
            return False
        rules.discard((pattern, access))
        if not rules:
            del self._rules[user_id]
        return True

    def denies(self, user_id: str, room: str, access: str) -> bool:
        rules = self._rules.get(user_id)
        if not rules:
            return False
        # Revoking read also revokes write.
        return any(
            fnmatch.fnmatchcase(room, pattern) and (kind == access or kind == "read")
            for pattern, kind in rules
        )

    def listing(self) -> list[dict[str, str]]:
        return [
            {"user_id": user, "room": pattern, "access": access}
            for user, rules in sorted(self._rules.items())
            for pattern, access in sorted(rules)
        ]

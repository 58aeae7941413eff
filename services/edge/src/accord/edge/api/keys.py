"""API keys for the server API: a file of named keys, stored as hashes, each with the room
patterns it may read and write (``API_KEYS_FILE``, docs/server-api.md "API keys").

    {"keys": [{"name": "billing", "hash": "sha256:<hex>",
               "rooms": ["todo-*"], "write": ["todo-*"]}]}

A key is ``ak_`` and 43 URL-safe characters (32 random bytes): that much
entropy makes one SHA-256 of it as safe to store as any slow password hash,
and lets a request's key be found by its hash at once. ``write`` absent: as
``rooms``; ``[]``: read only. The file is read again when it changes; a
file that no longer parses leaves the last good keys in force.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.common.config import ConfigError
from accord.common.grpc_files import WatchedFiles
from accord.common.grpc_tokens import HASH_PREFIX, hashed_entries
from accord.edge.auth import Identity

log = logging.getLogger(__name__)

PREFIX = "ak_"


@dataclass(frozen=True)
class ApiKey:
    name: str
    hash: str
    rooms: tuple[str, ...]
    write: tuple[str, ...]

    def identity(self) -> Identity:
        return Identity(self.name, None, self.rooms, self.write)


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def entry(name: str, key: str, rooms: list[str], write: list[str] | None) -> dict[str, Any]:
    """The file entry of ``key`` (what ``accord api-key`` prints)."""
    item: dict[str, Any] = {"name": name, "hash": hash_key(key), "rooms": rooms}
    if write is not None:
        item["write"] = write
    return item


def _patterns(item: Mapping[str, Any], field: str, where: str) -> tuple[str, ...]:
    value = item[field]
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise ConfigError(f"{where}: {field!r} must be a list of room patterns")
    return tuple(value)


def parse_keys(text: str, path: str) -> tuple[ApiKey, ...]:
    """The keys of an API keys file; raises ``ConfigError`` naming what is wrong."""
    keys: list[ApiKey] = []
    for entry in hashed_entries(text, "API_KEYS_FILE", path, "keys", "key"):
        if "rooms" not in entry.item:
            raise ConfigError(f"{entry.where}: 'rooms' is required (['*'] for every room)")
        rooms = _patterns(entry.item, "rooms", entry.where)
        write = _patterns(entry.item, "write", entry.where) if "write" in entry.item else rooms
        keys.append(ApiKey(entry.name, entry.hash, rooms, write))
    return tuple(keys)


def read_keys(path: str) -> tuple[ApiKey, ...]:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(f"API_KEYS_FILE={path!r} cannot be read: {reason}") from None
    return parse_keys(text, path)


class KeyRing:
    """The keys in force: those of the file as last read well, checked for changes at
    most every ``interval`` seconds when a key is looked up."""

    def __init__(self, path: str | None, keys: tuple[ApiKey, ...], interval: float) -> None:
        self._path = path
        self._by_hash = {k.hash: k for k in keys}
        self._watch = WatchedFiles((path,), interval) if path else None

    def __len__(self) -> int:
        return len(self._by_hash)

    def identity(self, key: str) -> Identity | None:
        """The identity of ``key``, or None when no key in force has its hash."""
        self._reload()
        found = self._by_hash.get(hash_key(key))
        return None if found is None else found.identity()

    def _reload(self) -> None:
        # Judged once per change: a bad file is logged once.
        if self._path is None or self._watch is None or not self._watch.changed():
            return
        try:
            keys = read_keys(self._path)
        except ConfigError as error:
            log.warning("API keys not reloaded, the last good ones stay: %s", error)
            return
        self._by_hash = {k.hash: k for k in keys}
        log.info("API keys reloaded: %d keys", len(keys))

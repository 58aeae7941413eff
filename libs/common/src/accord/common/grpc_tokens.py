"""Service tokens: how internal callers (the edge, other backends) prove who they are to
sync and presence (``SERVICE_TOKENS_FILE`` on a server, ``SERVICE_TOKEN`` on a caller).

    {"tokens": [{"name": "edge", "hash": "sha256:<hex>",
                 "scopes": ["rooms:read", "rooms:write"]}]}

A server holds only hashes: reading its file (or its Secret) gives no one a
token, and each caller has a name of its own that refusals and audit events
carry. Tokens are long random strings (at least 32 characters), which makes
one SHA-256 of them as safe to store as a slow password hash and lets a call's
token be found by its hash at once. Removing an entry revokes that token: the
file is read again when it changes, and a file that no longer parses leaves
the last good tokens in force.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from accord.common import jsontext
from accord.common.config import ConfigError
from accord.common.grpc_files import WatchedFiles, read_bytes

log = logging.getLogger(__name__)

SETTING = "SERVICE_TOKENS_FILE"
HASH_PREFIX = "sha256:"
MIN_TOKEN_LENGTH = 32
NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class Scope(enum.StrEnum):
    READ = "rooms:read"
    WRITE = "rooms:write"
    ADMIN = "admin"


@dataclass(frozen=True)
class ServiceToken:
    name: str
    hash: str
    scopes: frozenset[Scope]


def new_token() -> str:
    return "st_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def entry(name: str, token: str, scopes: list[Scope]) -> dict[str, Any]:
    """The file entry of ``token``."""
    return {"name": name, "hash": hash_token(token), "scopes": [str(s) for s in scopes]}


def is_hash(value: object) -> TypeGuard[str]:
    """Whether ``value`` is ``sha256:`` and 64 lowercase hex digits (a stored token or key)."""
    return (
        isinstance(value, str)
        and value.startswith(HASH_PREFIX)
        and len(value) == len(HASH_PREFIX) + 64
        and all(c in "0123456789abcdef" for c in value[len(HASH_PREFIX) :])
    )


def _scopes(value: object, where: str) -> frozenset[Scope]:
    known = {str(s) for s in Scope}
    if not isinstance(value, list) or not value or not all(v in known for v in value):
        raise ConfigError(f"{where}: 'scopes' must be a non-empty list of {', '.join(known)}")
    return frozenset(Scope(v) for v in value)


@dataclass(frozen=True)
class Entry:
    """One entry of a file of named, hashed credentials, its name and hash checked."""

    where: str
    name: str
    hash: str
    item: Mapping[str, Any]


def hashed_entries(text: str, setting: str, path: str, array: str, noun: str) -> list[Entry]:
    """The entries of ``{"<array>": [{"name", "hash", ...}]}`` (service tokens, API keys):
    valid JSON, each a unique name of 1-64 ``[A-Za-z0-9_.:-]`` and a unique ``sha256:`` hash;
    raises ``ConfigError`` naming the file, the entry and what is wrong."""
    try:
        raw = jsontext.loads(text)
    except ValueError:
        raise ConfigError(f"{setting}={path!r} is not valid JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get(array), list):
        raise ConfigError(f'{setting}={path!r} must be an object {{"{array}": [...]}}')
    entries: list[Entry] = []
    names: set[str] = set()
    hashes: set[str] = set()
    for index, item in enumerate(raw[array]):
        where = f"{setting}={path!r} {array}[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be an object")
        name, digest = item.get("name"), item.get("hash")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ConfigError(f"{where}: 'name' must be 1-64 characters of [A-Za-z0-9_.:-]")
        if not is_hash(digest):
            raise ConfigError(f"{where}: 'hash' must be sha256:<64 lowercase hex digits>")
        assert isinstance(digest, str)
        if name in names or digest in hashes:
            raise ConfigError(f"{where}: the name or hash of {noun} {name!r} appears twice")
        names.add(name)
        hashes.add(digest)
        entries.append(Entry(where, name, digest, item))
    return entries


def parse_tokens(text: str, path: str) -> tuple[ServiceToken, ...]:
    """The tokens of a service tokens file; raises ``ConfigError`` naming what is wrong."""
    return tuple(
        ServiceToken(e.name, e.hash, _scopes(e.item.get("scopes"), e.where))
        for e in hashed_entries(text, SETTING, path, "tokens", "token")
    )


def read_tokens(path: str) -> tuple[ServiceToken, ...]:
    data = read_bytes(SETTING, path)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{SETTING}={path!r} is not UTF-8 text") from None
    return parse_tokens(text, path)


def check_token(setting: str, token: str) -> str:
    """``token`` when it may be a service token (long, printable); else ``ConfigError``."""
    if len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token:
        raise ConfigError(
            f"{setting} must be at least {MIN_TOKEN_LENGTH} printable characters without spaces "
            "(a random string, e.g. `openssl rand -base64 33`)"
        )
    return token


class TokenRing:
    """The tokens in force: those of the file as last read well, checked for changes at
    most every ``interval`` seconds when a token is looked up."""

    def __init__(self, path: str | None, tokens: tuple[ServiceToken, ...], interval: float) -> None:
        self._path = path
        self._by_hash = {t.hash: t for t in tokens}
        self._watch = WatchedFiles((path,), interval) if path else None

    def __len__(self) -> int:
        return len(self._by_hash)

    def find(self, token: str) -> ServiceToken | None:
        self._reload()
        return self._by_hash.get(hash_token(token))

    def _reload(self) -> None:
        if self._path is None or self._watch is None or not self._watch.changed():
            return
        try:
            tokens = read_tokens(self._path)
        except ConfigError as error:
            log.warning(
                "service tokens not reloaded, the last good ones stay: %s",
                error,
                extra={"event": "service_tokens_reload_failed"},
            )
            return
        self._by_hash = {t.hash: t for t in tokens}
        log.info(
            "service tokens reloaded: %d tokens",
            len(tokens),
            extra={"event": "service_tokens_reloaded"},
        )

"""Record schemas: JSON Schema (draft 2020-12) per collection, for rooms matched by glob.

``SCHEMAS_FILE`` (JSON, or YAML when it ends in ``.yaml``/``.yml``) holds
``{"rules": [{"rooms": ["glob", …], "collection": "name", "schema": {…}}, …]}``.
A record of a collection in a matching room must validate against every rule
that matches it, as it would be after each change (its visible value, the one
clients see: sets as arrays, lists as arrays of values); a deleted record is
always fine. ``SchemaWatcher`` re-reads the file when its mtime changes and
keeps the last good rules when the new ones do not load.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import yaml
from accord.common.config import ConfigError
from accord.common.tasks import spawn, stop
from accord.sync.model import ChangeError
from jsonschema import Draft202012Validator

log = logging.getLogger(__name__)

RELOAD_INTERVAL = 1.0
"""Seconds between checks of ``SCHEMAS_FILE``'s mtime."""
CACHE_SIZE = 10_000
"""(room, collection) pairs whose matching validators are remembered."""


@dataclass(frozen=True)
class Rule:
    rooms: tuple[str, ...]
    collection: str
    validator: Draft202012Validator

    def matches(self, room: str, collection: str) -> bool:
        return collection == self.collection and any(
            fnmatch.fnmatchcase(room, pattern) for pattern in self.rooms
        )


class SchemaSet:
    """The loaded rules, and which of them apply to a room's collection (cached)."""

    def __init__(self, rules: tuple[Rule, ...] = ()) -> None:
        self.rules = rules
        self._collections = frozenset(r.collection for r in rules)
        self._cache: dict[tuple[str, str], tuple[Rule, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def applying(self, room: str, collection: str) -> tuple[Rule, ...]:
        if collection not in self._collections:
            return ()
        found = self._cache.get((room, collection))
        if found is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            found = tuple(r for r in self.rules if r.matches(room, collection))
            self._cache[(room, collection)] = found
        return found

    def check(
        self, room: str, collection: str, key: str, value: Mapping[str, Any] | None
    ) -> ChangeError | None:
        """Why ``value`` (a record's visible value; None: deleted) breaks a schema."""
        if value is None:
            return None
        for rule in self.applying(room, collection):
            error = jsonschema.exceptions.best_match(rule.validator.iter_errors(value))
            if error is not None:
                return ChangeError(
                    "BAD_REQUEST",
                    f"record {collection}/{key} would not match its schema at "
                    f"{error.json_path}: {error.message[:300]}",
                    error.json_path,
                )
        return None


def _parse(text: str, path: str) -> Any:
    if path.endswith((".yaml", ".yml")):
        return yaml.safe_load(text)
    return json.loads(text)


def _rule(index: int, raw: Any) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be an object")
    unknown = set(raw) - {"rooms", "collection", "schema"}
    if unknown:
        raise ValueError(f"{where} has unknown keys {sorted(unknown)}")
    rooms, collection, schema = raw.get("rooms"), raw.get("collection"), raw.get("schema")
    if not isinstance(rooms, list) or not rooms or not all(isinstance(r, str) and r for r in rooms):
        raise ValueError(f"{where}.rooms must be a non-empty list of glob patterns")
    if not isinstance(collection, str) or not collection:
        raise ValueError(f"{where}.collection must be a collection name")
    if not isinstance(schema, dict | bool):
        raise ValueError(f"{where}.schema must be a JSON Schema (an object)")
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise ValueError(
            f"{where}.schema is not a valid draft 2020-12 schema at {error.json_path}: "
            f"{error.message[:200]}"
        ) from None
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return Rule(tuple(rooms), collection, validator)


def load_schemas(path: str) -> SchemaSet:
    """The rules of the file at ``path``; ``ConfigError`` (one line) when it is bad."""
    try:
        with open(path, encoding="utf-8") as file:
            document = _parse(file.read(), path)
        if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
            raise ValueError('it must be an object with a "rules" list')
        unknown = set(document) - {"rules"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        rules = tuple(_rule(i, raw) for i, raw in enumerate(document["rules"]))
    except (OSError, ValueError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())
        raise ConfigError(f"SCHEMAS_FILE={path!r}: {reason}") from None
    return SchemaSet(rules)


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return None


class SchemaWatcher:
    """The current rules of a ``SCHEMAS_FILE``, re-read when it changes (see the module)."""

    def __init__(self, path: str | None, interval: float = RELOAD_INTERVAL) -> None:
        self._path = path
        self._interval = interval
        self._mtime = _mtime(path) if path else None
        self.current = load_schemas(path) if path else SchemaSet()

    def reload(self) -> bool:
        """Re-read the file if its mtime changed; whether the rules were replaced."""
        if self._path is None:
            return False
        mtime = _mtime(self._path)
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            self.current = load_schemas(self._path)
        except ConfigError as error:
            log.warning("kept the previous record schemas: %s", error)
            return False
        log.info("record schemas reloaded: %d rules", len(self.current.rules))
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await asyncio.to_thread(self.reload)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SchemaWatcher]:
        task = spawn(self._poll(), name="schemas") if self._path else None
        try:
            yield self
        finally:
            await stop(task)

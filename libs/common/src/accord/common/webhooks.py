"""Webhook endpoints: ``WEBHOOKS_FILE`` parsed, validated, and reloaded while a service runs.

Both services that deliver webhooks read the same file: sync delivers the
``changes`` events (durably, from its database), presence the ``presence``
events (in memory). The ``WEBHOOK_*`` settings they share are in
:class:`WebhookSettings`.

The file is JSON::

    {"endpoints": [{"id": "billing", "url": "https://hooks.example.com/accord",
                    "rooms": ["invoice:*"], "events": ["changes"],
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    "timeout": 10, "max_attempts": 10}]}

``id`` (default: the url) names the endpoint's backlog in the database, the
metrics and ``accord webhooks``; ``rooms`` are glob patterns (as in token
grants); ``timeout`` and ``max_attempts`` default to ``WEBHOOK_TIMEOUT`` and
``WEBHOOK_MAX_ATTEMPTS``. A secret never appears in a log line, a repr or an
error message.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from accord.common import config as env_config
from accord.common.audit import NULL, AuditLog
from accord.common.config import ConfigError
from accord.common.rules import NAME_CHARS, is_room
from accord.common.tasks import repeating

log = logging.getLogger(__name__)

CHANGES = "changes"
PRESENCE = "presence"
EVENTS = (CHANGES, PRESENCE)
SECRET_PREFIX = "whsec_"
SECRET_BYTES = (24, 64)
"""The decoded secret's length, as Standard Webhooks asks."""
MAX_ENDPOINTS = 100
MAX_TIMEOUT = 300.0
MAX_ATTEMPTS = 1000
ROUTE_CACHE = 100_000
"""Rooms whose matching endpoints are remembered (cleared on each reload)."""
_FIELDS = {"id", "url", "rooms", "events", "secret", "timeout", "max_attempts"}


@dataclass(frozen=True)
class EndpointDefaults:
    timeout: float = 10.0
    max_attempts: int = 10


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    rooms: tuple[str, ...]
    events: frozenset[str]
    secret: bytes = field(repr=False)
    timeout: float = 10.0
    max_attempts: int = 10

    def wants(self, room: str, event: str = CHANGES) -> bool:
        return event in self.events and any(fnmatch.fnmatchcase(room, p) for p in self.rooms)

    @property
    def shown_url(self) -> str:
        """The url without credentials or query (which may hold a token)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass(frozen=True)
class WebhookConfig:
    endpoints: tuple[Endpoint, ...] = ()

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.id == endpoint_id), None)

    def routes(self, room: str, event: str = CHANGES) -> tuple[str, ...]:
        """The ids of the endpoints that want the ``event``s (by default the committed
        changes) of ``room``."""
        return tuple(e.id for e in self.endpoints if e.wants(room, event))


def parse_secret(text: object, where: str) -> bytes:
    if not isinstance(text, str) or not text.startswith(SECRET_PREFIX):
        raise ConfigError(f"{where}: secret must be a string 'whsec_<base64>'")
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: secret is not valid base64 after 'whsec_'") from None
    low, high = SECRET_BYTES
    if not low <= len(key) <= high:
        raise ConfigError(f"{where}: secret must decode to {low}-{high} bytes, not {len(key)}")
    return key


def _number(raw: dict[str, Any], name: str, default: float, high: float, where: str) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise ConfigError(f"{where}: {name} must be a number in (0, {high:g}]")
    return float(value)


def _endpoint(raw: object, index: int, defaults: EndpointDefaults) -> Endpoint:
    where = f"endpoints[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}")
    url = raw.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: url must be an http:// or https:// URL")
    assert isinstance(url, str)
    endpoint_id = raw.get("id", url)
    if not isinstance(endpoint_id, str) or not (endpoint_id == url or is_room(endpoint_id)):
        raise ConfigError(f"{where}: id must be 1-128 chars of {NAME_CHARS}")
    where = f"endpoint {endpoint_id!r}" if endpoint_id != url else where
    rooms = raw.get("rooms")
    if not isinstance(rooms, list) or not rooms or not all(isinstance(r, str) and r for r in rooms):
        raise ConfigError(f"{where}: rooms must be a non-empty list of room patterns")
    events = raw.get("events", [CHANGES])
    if not isinstance(events, list) or not events or not set(events) <= set(EVENTS):
        raise ConfigError(f"{where}: events must be a non-empty list of {', '.join(EVENTS)}")
    attempts = raw.get("max_attempts", defaults.max_attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise ConfigError(f"{where}: max_attempts must be an integer")
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise ConfigError(f"{where}: max_attempts must be in [1, {MAX_ATTEMPTS}]")
    return Endpoint(
        id=endpoint_id,
        url=url,
        rooms=tuple(rooms),
        events=frozenset(events),
        secret=parse_secret(raw.get("secret"), where),
        timeout=_number(raw, "timeout", defaults.timeout, MAX_TIMEOUT, where),
        max_attempts=attempts,
    )


def parse_config(text: str, defaults: EndpointDefaults, source: str) -> WebhookConfig:
    """The endpoints in ``text``; a ``ConfigError`` naming ``source`` when it is not valid."""
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("endpoints"), list):
        raise ConfigError(f'{source} must be a JSON object {{"endpoints": [...]}}')
    listed = raw["endpoints"]
    if len(listed) > MAX_ENDPOINTS:
        raise ConfigError(f"{source}: more than {MAX_ENDPOINTS} endpoints")
    try:
        endpoints = tuple(_endpoint(e, i, defaults) for i, e in enumerate(listed))
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    ids = [e.id for e in endpoints]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate is not None:
        raise ConfigError(f"{source}: endpoint id {duplicate!r} appears twice")
    return WebhookConfig(endpoints)


def load_config(path: str, defaults: EndpointDefaults) -> WebhookConfig:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        raise ConfigError(f"WEBHOOKS_FILE={path!r} cannot be read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"WEBHOOKS_FILE={path!r} is not UTF-8 text") from None
    return parse_config(text, defaults, f"WEBHOOKS_FILE={path!r}")


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class WebhookRouter:
    """The endpoints in force, which rooms they want, and the file they come from.

    ``reload`` re-reads the file when it changed (a new inode, size or mtime: an
    edit, or a ConfigMap's swapped link); a file that no longer parses is logged
    and the endpoints in force stay. The engine asks ``routes`` at each commit
    (answered from a cache for known rooms) and calls ``written`` after a commit
    that owes endpoints changes, which wakes the delivery loop. ``event`` is the
    kind this router routes (sync: ``changes``, presence: ``presence``); ``actor``
    names the service in the audit log."""

    def __init__(
        self,
        config: WebhookConfig,
        path: str | None = None,
        defaults: EndpointDefaults | None = None,
        on_reload: Callable[[bool], None] = lambda ok: None,
        audit: AuditLog = NULL,
        *,
        event: str = CHANGES,
        actor: str = "sync",
    ) -> None:
        self._config = config
        self._path = path
        self._defaults = defaults or EndpointDefaults()
        self._stamp = _stamp(path) if path else None
        self._routes: dict[str, tuple[str, ...]] = {}
        self._listeners: list[Callable[[], None]] = []
        self._on_reload = on_reload
        self._audit = audit
        self._event = event
        self._actor = actor

    @property
    def config(self) -> WebhookConfig:
        return self._config

    def endpoints(self, room: str) -> tuple[str, ...]:
        found = self._routes.get(room)
        if found is None:
            if len(self._routes) >= ROUTE_CACHE:
                self._routes.clear()
            found = self._routes[room] = self._config.routes(room, self._event)
        return found

    def listen(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def written(self) -> None:
        for callback in self._listeners:
            callback()

    def replace(self, config: WebhookConfig) -> None:
        self._config = config
        self._routes = {}
        wanted = [e.id for e in config.endpoints if self._event in e.events]
        log.info("webhook endpoints in force (%s): %s", self._event, ", ".join(wanted) or "none")

    def reload(self) -> bool:
        """Re-read the file if it changed; True when new endpoints are in force."""
        if self._path is None:
            return False
        stamp = _stamp(self._path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            config = load_config(self._path, self._defaults)
        except ConfigError as error:
            log.error("webhook endpoints not reloaded (the previous ones stay): %s", error)
            self._audit.emit(
                "webhooks.reloaded", actor=self._actor, result="error", error=str(error)
            )
            self._on_reload(False)
            return False
        self._on_reload(True)
        if config == self._config:
            return False
        self.replace(config)
        ids = [e.id for e in config.endpoints]
        self._audit.emit("webhooks.reloaded", actor=self._actor, result="ok", endpoints=ids)
        return True

    @asynccontextmanager
    async def watching(self, interval: float) -> AsyncIterator[WebhookRouter]:
        """Check the file for changes every ``interval`` seconds for the block's duration."""
        async with repeating(interval, self.reload, "webhooks-file"):
            yield self


@dataclass(frozen=True)
class WebhookSettings:
    """``WEBHOOKS_FILE`` and the ``WEBHOOK_*`` delivery settings both services read."""

    file: str | None = None
    config: WebhookConfig = field(default_factory=WebhookConfig)
    """The endpoints in ``file`` at start-up (re-read while running)."""
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    timeout: float = 10.0
    max_attempts: int = 10
    poll_interval: float = 1.0

    @property
    def defaults(self) -> EndpointDefaults:
        return EndpointDefaults(self.timeout, self.max_attempts)

    @classmethod
    def from_env(cls, env: env_config.Env) -> WebhookSettings:
        defaults = EndpointDefaults(
            timeout=env_config.get_float(env, "WEBHOOK_TIMEOUT", 10.0, minimum=0.1, maximum=300.0),
            max_attempts=env_config.get_int(
                env, "WEBHOOK_MAX_ATTEMPTS", 10, minimum=1, maximum=1000
            ),
        )
        backoff_base = env_config.get_float(
            env, "WEBHOOK_BACKOFF_BASE", 1.0, minimum=0.001, maximum=3600.0
        )
        backoff_max = env_config.get_float(
            env, "WEBHOOK_BACKOFF_MAX", 300.0, minimum=0.001, maximum=86400.0
        )
        if backoff_max < backoff_base:
            raise ConfigError(
                f"WEBHOOK_BACKOFF_MAX={backoff_max:g} is below "
                f"WEBHOOK_BACKOFF_BASE={backoff_base:g}"
            )
        path = env_config.get_optional(env, "WEBHOOKS_FILE")
        return cls(
            file=path,
            config=load_config(path, defaults) if path else WebhookConfig(),
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            timeout=defaults.timeout,
            max_attempts=defaults.max_attempts,
            poll_interval=env_config.get_float(
                env, "WEBHOOK_POLL_INTERVAL", 1.0, minimum=0.01, maximum=60.0
            ),
        )

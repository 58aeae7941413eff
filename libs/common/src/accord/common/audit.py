"""The audit log: security events as JSON lines on a sink of their own.

Every service that has security events builds one ``AuditLog`` from its
``AuditSettings`` (``AUDIT_LOG``: ``stdout`` by default, ``file:PATH`` or
``off``) and calls ``emit(event, **fields)``. Each event is one JSON object:

    {"time": "2026-01-02T03:04:05.678Z", "event": "auth.failed", "service": "edge",
     "actor": "u-1", "session_id": "s-…", "ip": "203.0.113.7", "room": null, …}

``time`` (RFC 3339, UTC), ``event``, ``service``, ``actor``, ``session_id``,
``ip`` and ``room`` are always present (``null`` when they do not apply); the
event's own fields follow. Other sinks (an extension's, a test's) subscribe with
``add_sink``: a sink is any callable taking the event's mapping.

Secrets never reach a sink: the value of a field whose name says it carries one
(``token``, ``secret``, ``password``, ``authorization``, ``*_token``, ``*_key``,
…) is replaced by ``"[redacted]"``, at any depth, and so is any string that
looks like a credential (a JWT, an ``ak_`` API key, a ``whsec_`` secret).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from accord.common import config
from accord.common.config import ConfigError, Env

log = logging.getLogger(__name__)

Sink = Callable[[Mapping[str, Any]], None]
"""Takes one event (already redacted); must not block for long."""

REDACTED = "[redacted]"
COMMON_FIELDS = ("actor", "session_id", "ip", "room")
SECRET_NAMES = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "authorization",
        "credential",
        "credentials",
        "cookie",
        "api_key",
        "key",
        "private_key",
        "signature",
    }
)
SECRET_SUFFIXES = ("_token", "_secret", "_password", "_key", "_credential", "_signature")
_CREDENTIAL = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"  # a JWT (JWS compact form)
    r"|ak_[A-Za-z0-9_-]{20,}"  # an API key
    r"|whsec_[A-Za-z0-9+/=]{8,}"  # a webhook signing secret
)
REOPEN_CHECK_SECONDS = 1.0


def secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_NAMES or lowered.endswith(SECRET_SUFFIXES)


def redact(value: Any) -> Any:
    """``value`` with every secret-bearing field and credential-looking string replaced."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED if secret_name(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _CREDENTIAL.sub(REDACTED, value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _CREDENTIAL.sub(REDACTED, str(value))


def rfc3339(at: float) -> str:
    whole = int(at)
    millis = int((at - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


@dataclass(frozen=True)
class AuditSettings:
    """Where the audit log goes: ``AUDIT_LOG`` = ``stdout`` (default), ``file:PATH``, ``off``."""

    target: str = "stdout"
    path: str | None = None

    @classmethod
    def from_env(cls, env: Env) -> AuditSettings:
        raw = config.get_str(env, "AUDIT_LOG", "stdout").strip()
        if raw in ("stdout", "off"):
            return cls(raw)
        scheme, sep, path = raw.partition(":")
        if scheme != "file" or not sep or not path:
            raise ConfigError(f"AUDIT_LOG={raw!r} must be stdout, off or file:PATH")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
            raise ConfigError(f"AUDIT_LOG={raw!r}: directory {directory!r} is not writable")
        if os.path.isdir(path):
            raise ConfigError(f"AUDIT_LOG={raw!r} is a directory")
        return cls("file", path)


class StreamSink:
    """JSON lines on a text stream (standard output)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: Mapping[str, Any]) -> None:
        self._stream.write(json.dumps(event, default=str) + "\n")
        self._stream.flush()


class FileSink:
    """JSON lines appended to a file, reopened when the file is moved away (log rotation)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._file: IO[str] | None = None
        self._inode: int | None = None
        self._checked = 0.0

    def __call__(self, event: Mapping[str, Any]) -> None:
        file = self._current()
        file.write(json.dumps(event, default=str) + "\n")
        file.flush()

    def _current(self) -> IO[str]:
        now = time.monotonic()
        if self._file is not None and now - self._checked < REOPEN_CHECK_SECONDS:
            return self._file
        self._checked = now
        try:
            inode: int | None = os.stat(self._path).st_ino
        except OSError:
            inode = None
        if self._file is None or inode != self._inode:
            self.close()
            self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 - held open
            self._inode = os.fstat(self._file.fileno()).st_ino
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class AuditLog:
    """Emits audit events to its sinks; a failing sink is logged, never raised to the caller."""

    def __init__(self, service: str, sinks: list[Sink] | None = None) -> None:
        self.service = service
        self._sinks: list[Sink] = list(sinks or ())
        self._files: list[FileSink] = []

    @classmethod
    def from_settings(cls, settings: AuditSettings, service: str) -> AuditLog:
        audit = cls(service)
        if settings.target == "stdout":
            audit.add_sink(StreamSink(sys.stdout))
        elif settings.target == "file" and settings.path is not None:
            sink = FileSink(settings.path)
            audit._files.append(sink)
            audit.add_sink(sink)
        return audit

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    @property
    def enabled(self) -> bool:
        return bool(self._sinks)

    def emit(
        self,
        event: str,
        *,
        actor: str | None = None,
        session_id: str | None = None,
        ip: str | None = None,
        room: str | None = None,
        **fields: Any,
    ) -> None:
        if not self._sinks:
            return
        record: dict[str, Any] = {
            "time": rfc3339(time.time()),
            "event": event,
            "service": self.service,
            "actor": actor,
            "session_id": session_id,
            "ip": ip,
            "room": room,
        }
        for name, value in fields.items():
            if name not in record:
                record[name] = value
        safe = redact(record)
        for sink in list(self._sinks):
            try:
                sink(safe)
            except Exception:
                log.exception("audit sink failed (event %s)", event)

    def close(self) -> None:
        for sink in self._files:
            sink.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


NULL = AuditLog("none")
"""An audit log without sinks: the default of code that is given none."""

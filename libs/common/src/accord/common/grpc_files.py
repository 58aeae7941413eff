"""Files a service watches while it runs (TLS material, service tokens).

A file's signature is its (mtime, size, inode) as ``stat`` reports it through
symlinks, so both an in-place rewrite and a Kubernetes Secret volume's atomic
``..data`` symlink swap (how cert-manager's renewals arrive) count as changes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from accord.common.config import ConfigError

Signature = tuple[tuple[int, int, int] | None, ...]


def signature(paths: tuple[str, ...]) -> Signature:
    found: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            found.append(None)
        else:
            found.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return tuple(found)


def read_bytes(setting: str, path: str) -> bytes:
    """The content of the file named by ``setting``; ``ConfigError`` naming both when unreadable."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{setting}={path!r} cannot be read: {error.strerror}") from None


class WatchedFiles:
    """Tells when any of ``paths`` changed since last asked, looking at most every ``interval``
    seconds (0: at every call)."""

    def __init__(self, paths: tuple[str, ...], interval: float = 1.0) -> None:
        self.paths = paths
        self._interval = interval
        self._seen = signature(paths)
        self._checked = time.monotonic()

    def changed(self) -> bool:
        """True once per change: the caller reloads, and a bad file is judged only once."""
        now = time.monotonic()
        if now - self._checked < self._interval:
            return False
        self._checked = now
        seen = signature(self.paths)
        if seen == self._seen:
            return False
        self._seen = seen
        return True

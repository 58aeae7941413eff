"""The offline store's file: ``~`` expanded, and refused early when it cannot work.

``offline_file`` runs when the ``Client`` (or ``SqliteStore``) is made and creates
nothing; ``SqliteStore.open`` then creates the missing directories and turns the
operating system's or SQLite's refusal into the same ``OfflineStoreError``.
"""

from __future__ import annotations

import os
from pathlib import Path

from accord.client.errors import OfflineStoreError

__all__ = ["offline_file"]


def offline_file(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``~`` / ``~user`` expanded, or ``OfflineStoreError`` saying why not."""
    raw = os.fspath(path)
    if not raw.strip():
        raise OfflineStoreError(raw, "is empty")
    file = Path(os.path.expanduser(raw))
    if file.parts and file.parts[0].startswith("~"):
        raise OfflineStoreError(raw, "cannot expand ~ (no such user, or no home directory)")
    if file.is_dir():
        raise OfflineStoreError(
            file, f"is a directory; give a file in it, e.g. {file / 'accord.db'}"
        )
    if file.exists() and not file.is_file():
        raise OfflineStoreError(file, "exists and is not a regular file")
    ancestor = file.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OfflineStoreError(file, f"{ancestor} is a file, not a directory")
    # SQLite writes its -wal and -shm files next to the database: the directory must be
    # writable even when the file exists (or, when it does not exist yet, the nearest ancestor).
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OfflineStoreError(file, f"{ancestor} is not writable")
    if file.exists() and not os.access(file, os.R_OK | os.W_OK):
        raise OfflineStoreError(file, "is not readable and writable")
    return file

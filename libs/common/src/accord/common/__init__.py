"""Shared plumbing for Accord's services: nothing service-specific lives here."""

from accord.common import native
from accord.common.version import __version__

# Before any hot module is imported: ACCORD_PURE_PYTHON=1 loads them from their .py sources.
if native.pure_requested():
    native.force_pure()

__all__ = ["__version__"]

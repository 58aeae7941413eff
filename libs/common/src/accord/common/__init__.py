"""Shared plumbing for Accord's services: nothing service-specific lives here."""

from accord.common.version import __version__

__all__ = ["__version__"]

"""Shared plumbing for Accord's services: nothing service-specific lives here."""

__version__ = "0.1.0"

"""Registers the hypothesis profiles of the sync property tests (see profiles.py)."""

from tests.unit.sync import profiles as profiles

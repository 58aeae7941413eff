"""Fixtures for the sync integration tests: every store and bus implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from accord.sync.app import open_store
from accord.sync.engine import Engine
from accord.sync.hlc import HybridClock
from accord.sync.model import Limits
from accord.sync.settings import Settings, parse_database_url
from accord.sync.store import Store

from tests.integration.sync.sync_helpers import OpenStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def sync_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A DATABASE_URL for each store: an SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sync.db'}"
    return str(request.getfixturevalue("database_url"))


@pytest.fixture
def reopen(sync_database_url: str) -> OpenStore:
    """Opens (again) the store behind ``sync_database_url``."""
    settings = Settings(database=parse_database_url(sync_database_url))
    return lambda: open_store(settings)


@pytest.fixture
async def store(reopen: OpenStore) -> AsyncIterator[Store]:
    async with reopen() as opened:
        yield opened


@pytest.fixture
def engine(store: Store) -> Engine:
    return Engine(store, HybridClock(max_skew_us=60_000_000), Limits())

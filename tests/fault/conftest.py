from __future__ import annotations

import shutil

import pytest

from tests.fault.procs import postgres_available


@pytest.fixture
def postgres_binaries() -> None:
    """The fault runs start their own PostgreSQL cluster and redis-server."""
    if not postgres_available():
        pytest.fail("the PostgreSQL server binaries (initdb, pg_ctl) are needed: `make services`")
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed: `make services`")

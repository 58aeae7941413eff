"""Fixtures for the deployment tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (`make test` runs scripts/ensure-tools.sh)")
    return path

"""``accord epoch``: the database's epoch basis, which every room's epoch is made of.

``accord epoch renew`` replaces the database's incarnation: from then on every room
has a new epoch, and a client resuming with a ``since`` from before gets a snapshot
instead of changes. It is the step after restoring a backup into the same database
cluster (or copying an SQLite file back); see docs/operations.md. ``accord epoch
show`` prints the basis. Both read ``DATABASE_URL`` as sync does, and migrate first.
"""

from __future__ import annotations

import asyncio
import sys

from accord.common import config
from accord.common.lifecycle import load_settings
from accord.sync.app import open_store
from accord.sync.epoch import Basis
from accord.sync.errors import Unavailable
from accord.sync.settings import Settings

ACTIONS = ("show", "renew")


def describe(basis: Basis) -> str:
    cluster = basis.cluster or "(none: SQLite, or not readable)"
    return f"incarnation {basis.incarnation}, cluster {cluster}"


async def _run(settings: Settings, action: str) -> Basis:
    async with open_store(settings) as store:
        return await (store.renew() if action == "renew" else store.basis())


def run(action: str) -> int:
    """Run ``accord epoch <action>``; returns the exit status."""
    settings = load_settings(lambda: Settings.from_env(config.environ()))
    try:
        basis = asyncio.run(_run(settings, action))
    except Unavailable as error:
        print(f"accord epoch: {error}", file=sys.stderr)
        return 1
    if action == "renew":
        print(f"epoch renewed: every room has a new epoch ({describe(basis)})")
        print("restart the sync replicas now (see docs/operations.md, Restoring a backup)")
    else:
        print(describe(basis))
    return 0

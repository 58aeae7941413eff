"""``python -m accord.sync`` serves; ``python -m accord.sync migrate`` migrates and exits."""

from __future__ import annotations

import argparse
import asyncio
import sys

from accord.common import config, lifecycle
from accord.common.logs import setup_logging
from accord.sync.app import serve
from accord.sync.errors import Unavailable
from accord.sync.migrations import migrate_target
from accord.sync.settings import Settings


def main(argv: list[str] | None = None) -> None:
    args = argparse.ArgumentParser(
        prog="accord-sync",
        description="Accord sync service. Configured by environment variables "
        "(docs/operations.md).",
    )
    args.add_argument("command", nargs="?", choices=["migrate"], help="migrate and exit")
    command = args.parse_args(argv).command
    settings = lifecycle.load_settings(lambda: Settings.from_env(config.environ()))
    if command == "migrate":
        setup_logging("sync", settings.log_level, settings.log_format)
        try:
            asyncio.run(migrate_target(settings.database))
        except Unavailable as error:
            print(f"sync: {error}", file=sys.stderr)
            sys.exit(1)
        return
    try:
        lifecycle.serve_until_stopped("sync", settings, serve)
    except Unavailable as error:
        print(f"sync: cannot start: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

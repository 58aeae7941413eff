"""``python -m accord.sync`` serves; ``python -m accord.sync migrate`` migrates and exits."""

from __future__ import annotations

import asyncio
import sys

from accord.common import config
from accord.common.lifecycle import load_settings, run
from accord.common.logs import setup_logging
from accord.sync.app import serve
from accord.sync.errors import Unavailable
from accord.sync.migrations import migrate_target
from accord.sync.settings import Settings

USAGE = "usage: python -m accord.sync [migrate]"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["migrate"]):
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    settings = load_settings(lambda: Settings.from_env(config.environ()))
    setup_logging("sync", settings.log_level, settings.log_format)
    if args == ["migrate"]:
        try:
            asyncio.run(migrate_target(settings.database))
        except Unavailable as error:
            print(f"sync: {error}", file=sys.stderr)
            sys.exit(1)
        return

    async def serve_until(stop: asyncio.Event) -> None:
        async with serve(settings):
            await stop.wait()

    try:
        run(serve_until)
    except Unavailable as error:
        print(f"sync: cannot start: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

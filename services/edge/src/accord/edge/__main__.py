"""``python -m accord.edge``: run the edge until SIGTERM or SIGINT."""

from __future__ import annotations

from accord.common import lifecycle
from accord.common.logs import setup_logging
from accord.edge.app import main_async
from accord.edge.settings import Settings


def main(argv: list[str] | None = None) -> None:
    settings = lifecycle.load_settings(Settings.from_env)
    setup_logging("edge", settings.log_level, settings.log_format)
    lifecycle.run(lambda stop: main_async(settings, stop))


if __name__ == "__main__":
    main()

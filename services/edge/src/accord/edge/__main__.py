"""``python -m accord.edge``: run the edge until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse

from accord.common import lifecycle
from accord.edge.app import serve
from accord.edge.settings import Settings


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="accord-edge",
        description="Accord edge: the WebSocket gateway. Configured by environment variables "
        "(docs/operations.md).",
    ).parse_args(argv)
    settings = lifecycle.load_settings(Settings.from_env)
    lifecycle.serve_until_stopped("edge", settings, serve)


if __name__ == "__main__":
    main()

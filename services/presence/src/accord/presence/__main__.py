"""``python -m accord.presence``: run the presence service until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse

from accord.common import lifecycle
from accord.common.config import environ
from accord.presence.app import serve
from accord.presence.settings import Settings


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="accord-presence",
        description="Accord presence service. Configured by environment variables "
        "(PRESENCE_ADDR, METRICS_ADDR, REDIS_URL, REDIS_PREFIX, HEARTBEAT_INTERVAL, "
        "PRESENCE_TTL, SWEEP_INTERVAL, MAX_STATE_BYTES, MAX_ROOMS_PER_SESSION, "
        "WATCH_QUEUE_SIZE, BROADCAST_RATE, BROADCAST_BURST, BROADCAST_WINDOW, "
        "SHUTDOWN_GRACE, LOG_LEVEL, LOG_FORMAT).",
    ).parse_args(argv)
    settings = lifecycle.load_settings(lambda: Settings.from_env(environ()))
    lifecycle.serve_until_stopped("presence", settings, serve)


if __name__ == "__main__":
    main()

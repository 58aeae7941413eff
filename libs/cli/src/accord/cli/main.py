"""``accord``: run the whole suite on one machine, or one service.

accord dev        edge, sync and presence as three child processes
accord edge       the WebSocket gateway
accord sync       the sync service
accord presence   the presence service
accord migrate    apply PostgreSQL migrations and exit
accord epoch      show or renew the database's epoch (renew: after restoring a backup)
accord token      print a development token signed with JWT_SECRET
accord api-key    create a server API key and its API_KEYS_FILE entry
accord webhooks   list webhook endpoints and their backlog, or resume a parked one
accord --version  print Accord's version
"""

from __future__ import annotations

import argparse
import sys

from accord.cli import api_keys, dev, epoch, token, webhooks
from accord.common.version import __version__


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="accord",
        description="Accord: real-time sync and presence backend.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Configuration comes from the environment; see docs/operations.md.",
    )
    parser.add_argument("--version", action="version", version=f"accord {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    dev_parser = commands.add_parser(
        "dev", help="run edge, sync and presence together on this machine"
    )
    dev_parser.add_argument(
        "--one-process",
        action="store_true",
        help="all three in this one process (one core, fewer wake-ups), not as children",
    )
    commands.add_parser("edge", help="run the WebSocket gateway")
    commands.add_parser("sync", help="run the sync service")
    commands.add_parser("presence", help="run the presence service")
    commands.add_parser("migrate", help="apply the PostgreSQL schema migrations and exit")
    epoch_parser = commands.add_parser(
        "epoch", help="show or renew the database's epoch (renew: after restoring a backup)"
    )
    epoch_parser.add_argument("action", choices=epoch.ACTIONS)
    token.add_parser(commands)
    api_keys.add_parser(commands)
    webhooks_parser = commands.add_parser(
        "webhooks", help="list webhook endpoints and their backlog, or resume a parked one"
    )
    webhooks_parser.add_argument("action", choices=webhooks.ACTIONS)
    webhooks_parser.add_argument("endpoint", nargs="?", help="the endpoint's id (for resume)")
    webhooks_parser.add_argument("--addr", help="a sync replica (default: SYNC_ADDR)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    if args.command == "dev":
        sys.exit(dev.run(one_process=args.one_process))
    if args.command == "epoch":
        sys.exit(epoch.run(args.action))
    if args.command == "token":
        sys.exit(token.run(args))
    if args.command == "api-key":
        sys.exit(api_keys.run(args))
    if args.command == "webhooks":
        sys.exit(webhooks.run(args.action, args.endpoint, args.addr))
    if args.command == "edge":
        from accord.edge.__main__ import main as edge_main

        edge_main([])
    elif args.command == "sync":
        from accord.sync.__main__ import main as sync_main

        sync_main([])
    elif args.command == "presence":
        from accord.presence.__main__ import main as presence_main

        presence_main([])
    elif args.command == "migrate":
        from accord.sync.__main__ import main as sync_main

        sync_main(["migrate"])

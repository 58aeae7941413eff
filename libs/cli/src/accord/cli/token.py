"""``accord token``: an HS256 token signed with ``JWT_SECRET``, for development and scripts.

    accord token --sub ada --rooms 'todo-*' --write 'todo-ada' --ttl 8h

``--rooms`` and ``--write`` take room glob patterns (absent: every room, as the
protocol says; ``--write`` with no pattern: no write access at all).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

import jwt
from accord.common.config import ConfigError, environ
from accord.edge.auth import MAX_SUB, MIN_SECRET_BYTES

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_SECONDS = 366 * 86400


def parse_ttl(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``8h`` or ``30d`` as seconds."""
    match = _TTL.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 15m, 8h or 30d")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 1 <= seconds <= MAX_TTL_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r}: a token lives from 1 second to 366 days")
    return seconds


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "token",
        help="print an HS256 client token signed with JWT_SECRET (development, scripts)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sub", required=True, help="the user id (the token's sub claim)")
    parser.add_argument(
        "--rooms", nargs="*", metavar="GLOB", help="rooms the user may read (default: every room)"
    )
    parser.add_argument(
        "--write",
        nargs="*",
        metavar="GLOB",
        help="rooms the user may write (default: as --rooms; no GLOB: none)",
    )
    parser.add_argument("--ttl", type=parse_ttl, default=3600, help="lifetime (default 1h)")
    parser.add_argument("--aud", action="append", help="an audience (repeatable)")
    parser.add_argument("--iss", help="the issuer")


def run(args: argparse.Namespace) -> int:
    env = environ()
    secret = env.get("JWT_SECRET")
    try:
        if not secret:
            raise ConfigError("accord token needs JWT_SECRET (the edge's HS256 key) to sign with")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"JWT_SECRET is too short: use at least {MIN_SECRET_BYTES} bytes")
        if not 0 < len(args.sub) <= MAX_SUB:
            raise ConfigError(f"--sub must be 1-{MAX_SUB} characters")
    except ConfigError as error:
        print(f"accord token: {error}", file=sys.stderr)
        return 2
    now = int(time.time())
    claims: dict[str, Any] = {"sub": args.sub, "iat": now, "exp": now + args.ttl}
    if args.rooms is not None:
        claims["rooms"] = args.rooms
    if args.write is not None:
        claims["write"] = args.write
    if args.aud:
        claims["aud"] = args.aud if len(args.aud) > 1 else args.aud[0]
    if args.iss:
        claims["iss"] = args.iss
    print(jwt.encode(claims, secret, algorithm="HS256"))
    return 0

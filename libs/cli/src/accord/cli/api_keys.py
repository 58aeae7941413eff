"""``accord api-key``: a new key for the server API, printed once, and its API_KEYS_FILE entry.

    accord api-key --name billing --rooms 'todo-*' [--write 'todo-*'] [--file keys.json]

The key is printed once and never stored: the file keeps only its hash.
With ``--file`` the entry is written into that file (created when absent; an
entry of the same name is replaced), which a running edge picks up by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from accord.common.config import ConfigError
from accord.edge.api.keys import entry, new_key, parse_keys
from accord.edge.auth import CLIENT_ID_RE


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "api-key",
        help="create a server API key (printed once) and its API_KEYS_FILE entry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", required=True, help="the key's name (its user id in Accord)")
    parser.add_argument(
        "--rooms", nargs="+", required=True, metavar="GLOB", help="rooms it may read ('*': all)"
    )
    parser.add_argument(
        "--write",
        nargs="*",
        metavar="GLOB",
        help="rooms it may write (default: as --rooms; no GLOB: read only)",
    )
    parser.add_argument("--file", help="write the entry into this API_KEYS_FILE")


def _write_entry(path: Path, item: dict[str, Any]) -> None:
    document: dict[str, Any] = {"keys": []}
    if path.exists():
        text = path.read_text()
        parse_keys(text, str(path))
        document = json.loads(text)
    document["keys"] = [k for k in document["keys"] if k.get("name") != item["name"]]
    document["keys"].append(item)
    # Written whole and renamed into place: an edge reloading it never reads half a file.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        json.dump(document, out, indent=2)
        out.write("\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def run(args: argparse.Namespace) -> int:
    if not CLIENT_ID_RE.match(args.name):
        print("accord api-key: --name must be 1-64 characters of [A-Za-z0-9_.:-]", file=sys.stderr)
        return 2
    key = new_key()
    item = entry(args.name, key, list(args.rooms), None if args.write is None else list(args.write))
    if args.file:
        try:
            _write_entry(Path(args.file), item)
        except (ConfigError, OSError) as error:
            print(f"accord api-key: {error}", file=sys.stderr)
            return 2
    print(key)
    print(json.dumps(item), file=sys.stderr if args.file else sys.stdout)
    return 0

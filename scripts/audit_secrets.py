"""Secret scan for `make audit`: detect-secrets over the tree against `.secrets.baseline`.

Every file git knows of (tracked, or new and not ignored) is scanned with the plugins and
filters the baseline records. The baseline is the allow-list: each entry in it is a reviewed
false positive or test key (``"is_secret": false``). The scan fails on a potential secret that
is not in the baseline and on a baseline entry nobody has reviewed.

    python scripts/audit_secrets.py            # check
    python scripts/audit_secrets.py --update   # rescan and rewrite the baseline, keeping reviews;
                                               # then review new entries (detect-secrets audit)

A line may also be allow-listed where it stands with a ``pragma: allowlist secret`` comment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from detect_secrets.core import baseline
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ".secrets.baseline"

Key = tuple[str, str, str]  # file, hashed secret, plugin type


def files_to_scan(root: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],  # noqa: S607 - git from PATH
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    names = sorted({name for name in listed.split("\0") if name})
    return [name for name in names if name != BASELINE and (root / name).is_file()]


def scan(root: Path, files: list[str]) -> SecretsCollection:
    """Scan ``files`` (relative to ``root``: the baseline names them so)."""
    here = Path.cwd()
    os.chdir(root)
    try:
        found = SecretsCollection()
        found.scan_files(*files)
    finally:
        os.chdir(here)
    return found


def entries(collection: SecretsCollection) -> dict[Key, tuple[int, bool | None]]:
    """(file, hash, type) -> (line, is_secret) for every potential secret."""
    return {
        (name, secret.secret_hash, secret.type): (secret.line_number, secret.is_secret)
        for name, secret in collection
    }


def check(root: Path) -> int:
    path = root / BASELINE
    if not path.exists():
        print(f"secrets: FAILED: {BASELINE} is missing (python scripts/audit_secrets.py --update)")
        return 1
    known = entries(baseline.load(baseline.load_from_file(str(path)), str(path)))
    found = entries(scan(root, files_to_scan(root)))
    new = sorted(key for key in found if key not in known)
    unreviewed = sorted(key for key, (_, is_secret) in known.items() if is_secret is not False)
    stale = [key for key in known if key not in found]
    for name, _, kind in new:
        print(f"  {name}:{found[(name, _, kind)][0]}: {kind} (not in {BASELINE})")
    for name, _, kind in unreviewed:
        print(f"  {name}:{known[(name, _, kind)][0]}: {kind} (in {BASELINE}, not reviewed)")
    if new or unreviewed:
        print(
            f"secrets: FAILED: {len(new)} new potential secret(s), {len(unreviewed)} unreviewed;"
            " remove real secrets, or allow-list false positives: --update, then"
            f" `detect-secrets audit {BASELINE}`"
        )
        return 1
    note = f"; {len(stale)} baseline entries no longer found (--update drops them)" if stale else ""
    print(f"secrets: ok: nothing beyond the {len(known)} allow-listed entries{note}")
    return 0


def update(root: Path) -> int:
    path = root / BASELINE
    reviewed: dict[Key, tuple[int, bool | None]] = {}
    settings: contextlib.AbstractContextManager[object] = default_settings()
    if path.exists():
        # Loading the baseline configures detect-secrets with its plugins and filters.
        reviewed = entries(baseline.load(baseline.load_from_file(str(path)), str(path)))
        settings = contextlib.nullcontext()
    with settings:
        found = scan(root, files_to_scan(root))
        for name, secret in found:
            key = (name, secret.secret_hash, secret.type)
            if key in reviewed:
                secret.is_secret = reviewed[key][1]
        output = baseline.format_for_output(found)
    path.write_text(json.dumps(output, indent=2) + "\n")
    unreviewed = [key for key, (_, is_secret) in entries(found).items() if is_secret is not False]
    print(f"wrote {BASELINE}: {len(entries(found))} entries, {len(unreviewed)} to review")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite the baseline")
    parser.add_argument("--root", type=Path, default=ROOT, help="the tree (a git work tree)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    return update(root) if args.update else check(root)


if __name__ == "__main__":
    sys.exit(main())

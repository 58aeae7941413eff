"""``make soak``: the long crash-consistency run; prints one summary line.

    python -m tests.fault.soak --clients 20 --changes 10000 --faults 12 --seed 1

Exit status 0 when nothing was lost, duplicated, out of order or diverged; 1 otherwise
(the problems and the processes' last log lines are printed, and the logs are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from tests.fault.chaos import Config, run
from tests.fault.cluster import FAULTS


def parse(argv: list[str]) -> tuple[Config, Path | None]:
    parser = argparse.ArgumentParser(prog="python -m tests.fault.soak", description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--faults", "--kills", type=int, default=14, dest="faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--syncs", type=int, default=2, help="sync replicas (default 2)")
    parser.add_argument("--edges", type=int, default=2, help="edges (default 2)")
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument(
        "--kinds", default=",".join(FAULTS), help=f"fault kinds, of {', '.join(FAULTS)}"
    )
    parser.add_argument("--logs", type=Path, help="keep the processes' logs here")
    args = parser.parse_args(argv)
    try:
        config = Config(
            clients=args.clients,
            changes=args.changes,
            faults=args.faults,
            seed=args.seed,
            syncs=args.syncs,
            edges=args.edges,
            rooms=args.rooms,
            kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()),
        )
    except ValueError as error:
        parser.error(str(error))
    return config, args.logs


def main(argv: list[str] | None = None) -> int:
    config, keep = parse(sys.argv[1:] if argv is None else argv)
    logs = keep or Path(tempfile.mkdtemp(prefix="accord-soak-"))
    report = asyncio.run(run(config, logs))
    for fault in report.faults:
        print(f"  fault: {fault}")
    for problem in report.problems[:50]:
        print(f"  problem: {problem}")
    print(report.summary())
    if report.ok and keep is None:
        shutil.rmtree(logs, ignore_errors=True)
    elif not report.ok:
        print(f"logs: {logs}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

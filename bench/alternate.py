"""Before/after CPU per delivery, from alternated runs of two checkouts.

    python -m bench.alternate BEFORE AFTER [--scenario S1] [--rate 0.2] [--seconds 30]
                              [--runs 3] [--system accord/durable]

BEFORE and AFTER are checkouts of Accord, each with its own installed ``.venv``
(for example a ``git worktree`` of the older commit with ``make install`` run in
it); the same one twice with ``--before-env`` / ``--after-env`` compares settings
(``--before-env ACCORD_PURE_PYTHON=1``: pure Python against compiled). Runs
``python -m bench.profile --cpu-only`` in each in turn, BEFORE first,
``--runs`` times, so that a machine getting slower or faster during the session
affects both alike. Prints each run's CPU (cores) per process and the whole
system's CPU per offered delivery (another client of the room receiving an
update: rate x clients x (room size - 1) per second), then a Markdown table of
the pairs for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from pathlib import Path

from bench.scenarios import FULL

_CPU = re.compile(r"^(\S+)\s+user ([\d.]+)\s+system ([\d.]+)\s+cores", re.MULTILINE)


def parse_cores(output: str) -> dict[str, float]:
    """``bench.profile --cpu-only``'s lines ``NAME user U system S cores`` as NAME -> U + S."""
    return {m[1]: float(m[2]) + float(m[3]) for m in _CPU.finditer(output)}


def run_once(checkout: Path, args: argparse.Namespace, env: list[str]) -> dict[str, float]:
    """Cores per process (user + system) over one step of ``bench.profile --cpu-only``."""
    command = [
        str(checkout / ".venv" / "bin" / "python"),
        "-m",
        "bench.profile",
        "--cpu-only",
        "--system",
        args.system,
        "--scenario",
        args.scenario,
        "--rate",
        str(args.rate),
        "--seconds",
        str(args.seconds),
    ]
    done = subprocess.run(
        command,
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=args.seconds + 300,
        env={**os.environ, **dict(item.split("=", 1) for item in env)},
    )
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: bench.profile failed:\n{done.stdout}\n{done.stderr}")
    cores = parse_cores(done.stdout)
    if not cores:
        raise SystemExit(f"{checkout}: no CPU lines in bench.profile's output:\n{done.stdout}")
    return cores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--system", default="accord/durable")
    ap.add_argument("--scenario", default="S1")
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--before-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set for BEFORE's run and the services it starts (e.g. ACCORD_PURE_PYTHON=1)",
    )
    ap.add_argument("--after-env", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    load = next(s for s in FULL.loads if s.name == args.scenario)
    # Per delivery where the scenario fans out; per push (ack) where it does not (W1).
    deliveries = args.rate * load.clients * max(load.room_size - 1, 1)
    unit = "delivery" if load.room_size > 1 else "push"
    results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for run in range(args.runs):
        for label, checkout, env in (
            ("before", args.before, args.before_env),
            ("after", args.after, args.after_env),
        ):
            cores = run_once(checkout.resolve(), args, env)
            results[label].append(cores)
            total = sum(cores.values())
            shown = "  ".join(f"{k} {v:.3f}" for k, v in sorted(cores.items()) if v >= 0.005)
            print(
                f"run {run + 1} {label:6} {shown}  total {total:.3f} cores, "
                f"{total / deliveries * 1e6:.0f} µs per {unit}",
                flush=True,
            )
    print()
    print(
        f"{args.scenario} at {args.rate:g} updates/s per client ({deliveries:,.0f} {unit}s/s), "
        f"{args.system}, {args.runs} alternated runs of {args.seconds:g} s"
    )
    print()
    processes = sorted({p for rows in results.values() for r in rows for p in r})
    processes = [
        p for p in processes if max(r.get(p, 0) for rs in results.values() for r in rs) >= 0.005
    ]
    print("| run | " + " | ".join(f"{p} (cores)" for p in processes) + f" | µs per {unit} |")
    print("|---|" + "---:|" * (len(processes) + 1))
    for label, rows in results.items():
        for index, cores in enumerate(rows):
            total = sum(cores.values())
            cells = " | ".join(f"{cores.get(p, 0.0):.3f}" for p in processes)
            print(f"| {label} {index + 1} | {cells} | {total / deliveries * 1e6:.0f} |")


if __name__ == "__main__":
    main()

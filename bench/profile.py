"""Profile a system under one load step with py-spy (flame graphs of every Python process).

    python -m bench.profile [--system accord/durable] [--scenario S1] [--rate 1] [--seconds 10]
                            [--cpu-only]
                            [--out docs/bench/profiles]

Starts the system pinned as in a benchmark run, connects the scenario's
clients, runs one step at the given rate for ``--seconds`` and meanwhile
records each Python process of the system (for Accord: edge, sync, presence)
with ``py-spy record`` into OUT/<system>-<scenario>-<process>.svg, plus a
text summary of the hottest functions (OUT/...-top.txt).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import time
from pathlib import Path

from bench import systems
from bench.run import ROOT, Workers, connect, gen_cores
from bench.scenarios import FULL
from bench.schedule import split_clients


def top_functions(raw: Path, limit: int = 25) -> str:
    """Self and total sample counts per function from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    out = [f"{samples} samples", "", "self%  total%  function"]
    for f, n in own.most_common(limit):
        out.append(f"{100 * n / samples:5.1f}  {100 * total[f] / samples:5.1f}  {f}")
    return "\n".join(out)


def start_spies(
    pids: dict[int, str], seconds: float, out: Path, base: str, native: bool
) -> list[tuple[str, str, subprocess.Popen[bytes]]]:
    """One ``py-spy record`` per process and format (flame graph, raw for the summary)."""
    spies = []
    for pid, label in pids.items():
        for fmt, ext in (("flamegraph", "svg"), ("raw", "txt")):
            spy = subprocess.Popen(
                [
                    str(systems.VENV_BIN / "py-spy"),
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(seconds)),
                    "--rate",
                    "200",
                    "--format",
                    fmt,
                    # --native cannot sample without pausing the process
                    *(["--native"] if native else ["--nonblocking"]),
                    "-o",
                    str(out / f"{base}-{label}.{ext}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            spies.append((label, ext, spy))
    return spies


def summarize(
    spies: list[tuple[str, str, subprocess.Popen[bytes]]], out: Path, base: str, keep_raw: bool
) -> None:
    for label, ext, _ in spies:
        raw = out / f"{base}-{label}.txt"
        if ext == "txt" and raw.exists():
            (out / f"{base}-{label}-top.txt").write_text(top_functions(raw) + "\n")
            if not keep_raw:
                raw.unlink()
            print(f"== {label}\n" + (out / f"{base}-{label}-top.txt").read_text())


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far; zeros once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def print_cpu(procs: dict[int, str], before: dict[int, tuple[float, float]], window: float) -> None:
    used: dict[str, list[float]] = {}
    for pid, label in procs.items():
        user0, sys0 = before.get(pid, (0.0, 0.0))
        user1, sys1 = cpu_times(pid)
        total = used.setdefault(label, [0.0, 0.0])
        total[0] += (user1 - user0) / window
        total[1] += (sys1 - sys0) / window
    for label, (user, system) in sorted(used.items()):
        print(f"{label:12} user {user:.3f}  system {system:.3f}  cores")


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.profile")
    ap.add_argument("--system", default="accord/durable")
    ap.add_argument("--scenario", default="S1")
    ap.add_argument("--rate", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument(
        "--native", action="store_true", help="include C frames (py-spy --native; slower)"
    )
    ap.add_argument(
        "--connect",
        action="store_true",
        help="profile the scenario's clients connecting (hello + subscribe), not a load step",
    )
    ap.add_argument(
        "--cpu-only",
        action="store_true",
        help="no py-spy: print each process's CPU (user and system, cores) over the step",
    )
    ap.add_argument(
        "--keep-raw",
        action="store_true",
        help="keep py-spy's collapsed stacks (OUT/<...>-<process>.txt) next to the summary",
    )
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench" / "profiles"))
    args = ap.parse_args()
    load = next(s for s in FULL.loads if s.name == args.scenario)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, {int(c) for c in gen_cores().split(",")})
    system = systems.make(args.system)
    system.prepare()
    system.start()
    spies: list[tuple[str, str, subprocess.Popen[bytes]]] = []
    what = "connect" if args.connect else f"r{args.rate:g}"
    base = f"{system.name}-{system.profile}-{load.name}-{what}"
    try:
        spec = {
            "protocol": system.protocol,
            "url": system.url + ("/ws" if system.protocol == "accord" else ""),
            "room_size": load.room_size,
            "room_prefix": f"prof-{os.getpid()}",
            "run_id": str(os.getpid()),
        }
        py = {
            pid: label
            for pid, label in system.processes().items()
            if "python" in systems.cmdline(pid) and label not in ("accord-dev",)
        }
        workers = Workers(2, spec)
        try:
            if args.connect:
                spies = start_spies(py, args.seconds, out, base, args.native)
            print(connect(workers, [list(r) for r in split_clients(load.clients, 2)]))
            if args.connect:
                for _, _, spy in spies:
                    spy.wait(args.seconds + 60)
                return
            start_ns = time.monotonic_ns() + 1_000_000_000
            for p in workers.procs:
                Workers._send(
                    p,
                    {
                        "cmd": "step",
                        "index": 0,
                        "rate": args.rate,
                        "duration": args.seconds,
                        "start_ns": start_ns,
                        "grace": 2.0,
                    },
                )
            time.sleep(1.0)
            if args.cpu_only:
                before = {pid: cpu_times(pid) for pid in system.processes()}
                time.sleep(args.seconds - 2.0)
                print_cpu(system.processes(), before, args.seconds - 2.0)
            else:
                spies = start_spies(py, args.seconds, out, base, args.native)
                for _, _, spy in spies:
                    spy.wait(args.seconds + 60)
            replies = [Workers._read(p, args.seconds + 60) for p in workers.procs]
            print(
                {
                    "sent": sum(r["sent"] for r in replies),
                    "frames": sum(r["frames"] for r in replies),
                }
            )
        finally:
            workers.close()
            summarize(spies, out, base, args.keep_raw)
    finally:
        system.cleanup()


if __name__ == "__main__":
    main()

"""Run the benchmark: every system, every scenario, in random order, N repetitions.

    python -m bench.run [--smoke] [--systems accord/durable,floor,...] [--scenarios S1,S2,...]
                        [--reps 3] [--workers N] [--out docs/bench]

Writes one JSON line per measured step to OUT/results[-smoke].jsonl, then
renders the markdown summary and PNG plots (bench.report); only a run written to
docs/bench (the default) updates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from bench import report, systems
from bench.scenarios import FULL, SMOKE, Idle, Load, Plan
from bench.schedule import active_clients, rising_steps, split_clients
from bench.stats import Histogram, generator_verdict, headline, latency_summary, meets_slo

ROOT = Path(__file__).resolve().parents[1]
ALL_SYSTEMS = [
    "floor",
    "accord/durable",
    "accord/embedded",
    "pycrdt/memory",
    "pycrdt/durable",
    "y-websocket/memory",
    "y-websocket/durable",
    "hocuspocus/memory",
    "hocuspocus/durable",
]
SMOKE_SYSTEMS = ["floor", "accord/durable"]


def gen_cores() -> str:
    n = os.cpu_count() or 1
    cores = [str(c) for c in range(n) if str(c) != systems.SERVER_CORE]
    return ",".join(cores) or "0"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Workers:
    """The load-generator processes, pinned to the generator cores, driven by JSON lines."""

    def __init__(self, count: int, spec: dict[str, Any]) -> None:
        self.procs = []
        for _ in range(count):
            p = subprocess.Popen(
                systems.niced(
                    ["taskset", "-c", gen_cores(), sys.executable, "-m", "bench.loadgen"]
                ),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=ROOT,
                text=True,
                start_new_session=True,
            )
            self.procs.append(p)
            self._send(p, spec)
        for p in self.procs:
            self._read(p, 30)

    @staticmethod
    def _send(p: subprocess.Popen[str], obj: dict[str, Any]) -> None:
        assert p.stdin is not None
        p.stdin.write(json.dumps(obj) + "\n")
        p.stdin.flush()

    @staticmethod
    def _read(p: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
        import select

        assert p.stdout is not None
        ready, _, _ = select.select([p.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("load generator did not answer in time")
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited ({p.poll()})")
        return json.loads(line)

    def ask(self, cmds: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        for p, cmd in zip(self.procs, cmds, strict=True):
            self._send(p, cmd)
        deadline = time.monotonic() + timeout
        return [self._read(p, max(1.0, deadline - time.monotonic())) for p in self.procs]

    def close(self) -> None:
        for p in self.procs:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._send(p, {"cmd": "close"})
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()


def connect(workers: Workers, ranges: list[list[int]], timeout: float = 120) -> dict[str, Any]:
    t0 = time.monotonic()
    replies = workers.ask(
        [{"cmd": "connect", "indices": r, "concurrency": 200, "timeout": 30} for r in ranges],
        timeout,
    )
    seconds = time.monotonic() - t0
    connected = sum(r["connected"] for r in replies)
    errors: dict[str, int] = {}
    for r in replies:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {
        "connected": connected,
        "failed": sum(r["failed"] for r in replies),
        "errors": errors,
        "connect_s": seconds,
        "connects_per_s": connected / seconds if seconds else None,
    }


def aggregate_step(
    step_replies: list[dict[str, Any]],
    load: Load,
    cpu0: dict[str, float],
    cpu1: dict[str, float],
    window: float,
) -> dict[str, Any]:
    d, echo, pres, lag = Histogram(), Histogram(), Histogram(), Histogram()
    by_acks = load.measure == "acks"
    for r in step_replies:
        d.merge(Histogram.from_json(r["acks" if by_acks else "deliveries"]))
        echo.merge(Histogram.from_json(r["echo"]))
        pres.merge(Histogram.from_json(r["presence"]))
        lag.merge(Histogram.from_json(r["lag"]))
    duration = step_replies[0]["duration"]
    sent = sum(r["sent"] for r in step_replies)
    planned = sum(r["planned"] for r in step_replies)
    # "acks": each push counts once, when its ack arrives (W1); else each delivery to another
    # client of the room counts.
    fanout = 1 if by_acks else load.room_size - 1
    expected = sent * fanout
    cpu_split = {k: (cpu1.get(k, 0.0) - cpu0.get(k, 0.0)) / window for k in cpu1}
    server_cpu = sum(cpu_split.values())
    gen_cpu = [r["cpu_s"] / r["wall_s"] for r in step_replies]
    # the workers share the generator cores: what counts is their sum per core
    gen_load = max(max(gen_cpu), sum(gen_cpu) / len(gen_cores().split(",")))
    lat = latency_summary(d)
    lag_p99 = lag.percentile(99)
    reasons = generator_verdict(None if lag_p99 is None else lag_p99 / 1000, gen_load)
    if sent < planned:
        reasons.append(f"generator sent {sent} of {planned} planned")
    out: dict[str, Any] = {
        "step": step_replies[0]["index"],
        "rate": step_replies[0]["rate"],
        "duration_s": duration,
        "clients": sum(r["clients"] for r in step_replies),
        "senders": sum(r["senders"] for r in step_replies),
        "offered_msgs_per_s": planned / duration,
        "sent_msgs_per_s": sent / duration,
        "measure": load.measure,
        "slo_p99_ms": load.slo_p99_ms,
        "offered_deliveries_per_s": planned * fanout / duration,
        "delivered": d.total,
        "expected": expected,
        "delivered_per_s": d.total / duration,
        "completeness": d.total / expected if expected else 0.0,
        **lat,
        "echo": {
            "count": echo.total,
            "p50_ms": latency_summary(echo)["p50_ms"],
            "p99_ms": latency_summary(echo)["p99_ms"],
        },
        "stale": sum(r["stale"] for r in step_replies),
        "disconnects": sum(r["disconnects"] for r in step_replies),
        "gen_lag_p99_ms": None if lag_p99 is None else lag_p99 / 1000,
        "gen_cpu": gen_cpu,
        "gen_load": gen_load,
        "valid": not reasons,
        "invalid_reasons": reasons,
        "server_cpu": server_cpu,
        "server_cpu_split": cpu_split,
        "cpu_us_per_delivery": server_cpu * window * 1e6 / d.total if d.total else None,
    }
    if load.presence_every:
        out["presence"] = {
            "sent": sum(r["presence_sent"] for r in step_replies),
            "delivered": pres.total,
            **latency_summary(pres),
        }
    out["meets_slo"] = meets_slo(out)
    return out


SETTLE_CPU = 0.2
"""A system is settled after connecting once it uses less than this (cores) for a second."""
SETTLE_MAX_S = 15.0


def settle(system: systems.System) -> float:
    """Wait (at most ``SETTLE_MAX_S``) until the system has finished the work the
    connections started (presence joins and their events, catch-ups), so the first
    step measures the load and not the connect storm's tail. Returns the seconds waited."""
    procs = system.processes()
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_MAX_S:
        cpu0 = sum(system.cpu_by_label(procs).values())
        time.sleep(1.0)
        if sum(system.cpu_by_label(procs).values()) - cpu0 < SETTLE_CPU:
            break
    return time.monotonic() - started


def worker_spec(system: systems.System, rep: int, name: str, room_size: int) -> dict[str, Any]:
    """What the generator's workers are told: whom to connect to, and how rooms are named."""
    run_id = f"{os.getpid()}{rep}{int(time.time()) % 100000}"
    return {
        "protocol": system.protocol,
        "url": system.url + ("/ws" if system.protocol == "accord" else ""),
        "room_size": room_size,
        "room_prefix": f"{name}-{run_id}",
        "run_id": run_id,
    }


def run_load(system: systems.System, load: Load, n_workers: int, rep: int, emit: Any) -> None:
    spec = worker_spec(system, rep, load.name, load.room_size)
    workers = Workers(min(n_workers, load.clients), spec)
    try:
        ranges = [list(r) for r in split_clients(load.clients, len(workers.procs))]
        conn = connect(workers, ranges)
        conn["settle_s"] = round(settle(system), 1)
        log(
            f"  {load.name}: {conn['connected']}/{load.clients} connected "
            f"in {conn['connect_s']:.1f}s, settled in {conn['settle_s']:.1f}s"
        )
        active = (
            None
            if load.active_fraction >= 1
            else active_clients(load.clients, load.active_fraction)
        )
        steps_out = []
        for step in rising_steps(load.rates, load.duration):
            start_ns = time.monotonic_ns() + 500_000_000
            cmd = {
                "cmd": "step",
                "index": step.index,
                "rate": step.rate,
                "duration": step.duration,
                "start_ns": start_ns,
                "grace": load.grace,
                "presence_every": load.presence_every,
                "active": active,
            }
            for p in workers.procs:
                Workers._send(p, cmd)
            procs = system.processes()  # the /proc scan happens before the step, not during it
            time.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9))
            cpu0 = system.cpu_by_label(procs)
            time.sleep(step.duration)
            cpu1 = system.cpu_by_label(procs)
            timeout = step.duration + load.grace + 60
            replies = [Workers._read(p, timeout) for p in workers.procs]
            rec = aggregate_step(replies, load, cpu0, cpu1, step.duration)
            rec.update(
                kind="load",
                scenario=load.name,
                title=load.title,
                system=system.label,
                rep=rep,
                connect=conn,
            )
            emit(rec)
            steps_out.append(rec)
            log(
                f"  {load.name} rate {step.rate:g}/s: delivered {rec['delivered_per_s']:.0f}/s "
                f"({rec['completeness']:.2%}), p99 {rec['p99_ms']} ms, "
                f"server CPU {rec['server_cpu']:.2f}, gen CPU {rec['gen_load']:.2f}"
                + ("" if rec["valid"] else " INVALID: " + "; ".join(rec["invalid_reasons"]))
            )
            badly = rec["completeness"] < 0.5 or (rec["p99_ms"] or 1e9) > 2000
            if badly or (not rec["valid"] and (rec["gen_lag_p99_ms"] or 0) > 100):
                break
            if any(
                r["connected_now"] < len(rg) * 0.5 for r, rg in zip(replies, ranges, strict=True)
            ):
                break
        hl = headline(steps_out)
        emit({"kind": "headline", "scenario": load.name, "system": system.label, "rep": rep, **hl})
    finally:
        workers.close()


def run_idle(system: systems.System, idle: Idle, n_workers: int, rep: int, emit: Any) -> None:
    for level in idle.levels:
        system.prepare()
        system.start()
        try:
            time.sleep(1.0)
            pss0 = system.pss_by_label()
            spec = worker_spec(system, rep, "idle", idle.room_size)
            workers = Workers(min(n_workers, level), spec)
            try:
                ranges = [list(r) for r in split_clients(level, len(workers.procs))]
                conn = connect(workers, ranges, timeout=600)
                time.sleep(2.0)
                cpu0, t0 = system.cpu_by_label(), time.monotonic()
                held = workers.ask(
                    [{"cmd": "idle", "seconds": idle.hold}] * len(workers.procs), idle.hold + 60
                )
                cpu1, wall = system.cpu_by_label(), time.monotonic() - t0
                pss1 = system.pss_by_label()
                total_pss = sum(pss1.values()) - sum(pss0.values())
                rec = {
                    "kind": "idle",
                    "scenario": idle.name,
                    "system": system.label,
                    "rep": rep,
                    "connections": level,
                    **conn,
                    "held": sum(h["connected_now"] for h in held),
                    "hold_s": wall,
                    "pss_before": pss0,
                    "pss_after": pss1,
                    "pss_per_conn_bytes": total_pss / conn["connected"]
                    if conn["connected"]
                    else None,
                    "idle_cpu": sum(cpu1.get(k, 0) - cpu0.get(k, 0) for k in cpu1) / wall,
                    "idle_cpu_split": {k: (cpu1.get(k, 0) - cpu0.get(k, 0)) / wall for k in cpu1},
                }
                emit(rec)
                log(
                    f"  idle {level}: {conn['connected']} connected at "
                    f"{conn['connects_per_s'] or 0:.0f}/s, "
                    f"{(rec['pss_per_conn_bytes'] or 0) / 1024:.1f} KiB/conn, "
                    f"idle CPU {rec['idle_cpu']:.3f}"
                )
            finally:
                workers.close()
        finally:
            system.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run")
    ap.add_argument(
        "--smoke", action="store_true", help="short S1+S2 on the floor and Accord (< 2 min)"
    )
    ap.add_argument("--systems", help="comma-separated, from: " + ", ".join(ALL_SYSTEMS))
    ap.add_argument("--scenarios", help="comma-separated: S1,S2,S3,S4,Idle,Catch-up,Storm")
    ap.add_argument("--reps", type=int, help="repetitions (default 3; smoke 1)")
    ap.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("BENCH_WORKERS", "0")) or len(gen_cores().split(",")),
        help="load-generator processes (default: one per generator core)",
    )
    ap.add_argument(
        "--idle-levels", help="comma-separated connection counts for Idle (default 1000,...,19000)"
    )
    ap.add_argument("--idle-hold", type=float, help="seconds each Idle level is held (default 120)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench"))
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--tag", help="names the results file and summary (default: smoke or full)")
    ap.add_argument(
        "--rates",
        help="comma-separated updates/s per client, replacing every chosen load scenario's steps",
    )
    args = ap.parse_args(argv)

    plan: Plan = SMOKE if args.smoke else FULL
    if plan.idle is not None and (args.idle_levels or args.idle_hold):
        plan = dataclasses.replace(
            plan,
            idle=dataclasses.replace(
                plan.idle,
                levels=[int(n) for n in args.idle_levels.split(",")]
                if args.idle_levels
                else plan.idle.levels,
                hold=args.idle_hold or plan.idle.hold,
            ),
        )
    if args.rates:
        rates = [float(r) for r in args.rates.split(",")]
        plan = dataclasses.replace(
            plan, loads=[dataclasses.replace(load, rates=rates) for load in plan.loads]
        )
    names = (
        args.systems.split(",") if args.systems else (SMOKE_SYSTEMS if args.smoke else ALL_SYSTEMS)
    )
    wanted = set(args.scenarios.split(",")) if args.scenarios else None
    reps = args.reps or (1 if args.smoke else 3)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = args.tag or ("smoke" if args.smoke else "full")
    results = out_dir / f"results-{tag}.jsonl"

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.sched_setaffinity(0, {int(c) for c in gen_cores().split(",")})
    rng = random.Random(args.seed)

    with results.open("w") as fh:

        def emit(rec: dict[str, Any], fh: TextIO = fh) -> None:
            rec.setdefault("time", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            fh.write(json.dumps(rec) + "\n")
            fh.flush()

        emit(
            {
                "kind": "meta",
                "mode": tag,
                "systems": names,
                "reps": reps,
                "workers": args.workers,
                "server_core": systems.SERVER_CORE,
                "generator_cores": gen_cores(),
                "nice": systems.NICE,
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    # which build: a CPython built without PGO/LTO (pyenv's default) costs
                    # Accord 10-20 % more CPU than the optimized builds of Debian or the
                    # official images (docs/benchmarks.md, fifth session)
                    "python_home": sys.base_prefix,
                    "python_build": " ".join(platform.python_build()),
                    "python_compiler": platform.python_compiler(),
                    "loadavg_start": os.getloadavg(),
                },
                "command": "python -m bench.run "
                + " ".join(sys.argv[1:] if argv is None else argv),
            }
        )
        for rep in range(reps):
            order = list(names)
            rng.shuffle(order)
            log(f"repetition {rep + 1}/{reps}: {', '.join(order)}")
            for name in order:
                system = systems.make(name)
                log(f"{system.label}")
                try:
                    for load in plan.loads:
                        if wanted and load.name not in wanted:
                            continue
                        if load.measure == "acks" and system.protocol != "accord":
                            continue  # only Accord acknowledges each push
                        system.prepare()
                        system.start()
                        try:
                            run_load(system, load, args.workers, rep, emit)
                        except Exception as exc:
                            log(f"  {load.name} failed: {exc!r}")
                            emit(
                                {
                                    "kind": "error",
                                    "scenario": load.name,
                                    "system": system.label,
                                    "rep": rep,
                                    "error": repr(exc),
                                }
                            )
                        finally:
                            system.stop()
                    if plan.idle and (not wanted or plan.idle.name in wanted):
                        run_idle(system, plan.idle, args.workers, rep, emit)
                    if plan.catchup and (not wanted or plan.catchup.name in wanted):
                        from bench import catchup

                        catchup.run(system, plan.catchup, rep, emit, log)
                    if plan.storm and (not wanted or plan.storm.name in wanted):
                        from bench import catchup

                        catchup.run_storm(system, plan.storm, args.workers, rep, emit, log)
                finally:
                    system.cleanup()
        emit({"kind": "meta-end", "loadavg_end": os.getloadavg()})
    log(f"results: {results}")
    if not args.no_report:
        report.render(results, out_dir, tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())

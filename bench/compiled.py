"""Micro-benchmark of the per-push hot path, compiled (mypyc) against pure Python.

    python -m bench.compiled [--rounds 6] [--number 20000]

Each round runs two child processes one after the other, one with ACCORD_PURE_PYTHON=1 (the
.py sources, whatever is installed) and one as installed (the compiled modules of
`make install`); the order alternates from round to round. A child times each step of one
single-change push, in microseconds of this thread's CPU time per op (the best of 7 repeats
of ``--number`` calls, so that other load on the machine counts less):

- edge parse:   frames.parse_json + requests.push_changes + ops.parse_change (the push frame
                as a client sends it, to the typed sync change)
- sync wire:    wire.push_batch (the typed PushRequest checked and parsed into merge ops)
- sync merge:   BatchMerge.add of a ``set`` onto a record with three fields (merge, view,
                patch diff, the value's and the patch's JSON)
- edge encode:  ChangesOut.text() and .binary() of the committed change (what is fanned out)

It prints the median of each step per mode and the ratio. Needs the compiled modules
installed (`make install`); with none, both columns time the same pure code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

STEPS = ("edge parse", "sync wire", "sync merge", "edge encode")
FRAME = json.dumps(
    {
        "type": "push",
        "id": 7,
        "room": "room-17",
        "changes": [
            {
                "client_seq": 42,
                "collection": "todos",
                "key": "item-3",
                "op": {"kind": "set", "fields": {"title": "buy milk", "done": False, "n": 3}},
            }
        ],
    },
    separators=(",", ":"),
).encode()


def _best(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    """Microseconds per call, the best of ``repeat`` runs of ``number`` calls."""
    for _ in range(number // 10):
        fn()
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time_ns()
        for _ in range(number):
            fn()
        best = min(best, (time.thread_time_ns() - started) / number / 1000)
    return best


def child(number: int) -> dict[str, Any]:
    import accord.common  # noqa: F401  (first: ACCORD_PURE_PYTHON's finder)
    from accord.api.sync.v1 import sync_pb2 as spb
    from accord.common import native
    from accord.edge import frames, ops, requests
    from accord.edge.protocol import ChangesOut
    from accord.sync import merge, wire
    from accord.sync.batchmerge import BatchMerge
    from accord.sync.model import ChangeOutcome, Limits

    limits = Limits()

    def edge_parse() -> list[spb.Change]:
        message = frames.parse_json(FRAME, 32)
        room = requests.room_of(message)
        raw = requests.push_changes(message, room, 100)
        return [ops.parse_change(change, room, i) for i, change in enumerate(raw)]

    request = spb.PushRequest(room="room-17", user_id="u1", client_id="c1", changes=edge_parse())

    def sync_wire() -> object:
        return wire.push_batch(request, limits)

    batch = wire.push_batch(request, limits)
    (change,) = batch.changes
    record = (change.collection, change.key)
    state = merge.RecordState()
    clock = (1_000, "c0", "u0", 1)
    state, _ = merge.merge(state, clock, merge.SetOp({"title": "old", "done": True, "n": 1}), 1)
    view = merge.view(state)

    def stamp(ts: int) -> tuple[int, bool]:
        return 2_000, True

    def sync_merge() -> BatchMerge:
        outcomes: dict[int, ChangeOutcome] = {}
        run = BatchMerge({record: state}, {record: view}, 10, batch, stamp, limits, outcomes)
        run.add(change)
        return run

    committed = wire.committed_change(sync_merge().committed[0])

    def edge_encode() -> tuple[bytes, bytes]:
        out = ChangesOut("room-17", [committed])
        return out.text(), out.binary()

    timings = {
        "edge parse": _best(edge_parse, number),
        "sync wire": _best(sync_wire, number),
        "sync merge": _best(sync_merge, number),
        "edge encode": _best(edge_encode, number),
    }
    return {"mode": "compiled" if native.compiled() else "pure", "us": timings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--number", type=int, default=20_000, help="calls per repeat")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.number)))
        return 0
    results: dict[str, list[dict[str, float]]] = {"pure": [], "compiled": []}
    for round_ in range(args.rounds):
        order = ("pure", "compiled") if round_ % 2 == 0 else ("compiled", "pure")
        for mode in order:
            env = dict(os.environ)
            env.pop("ACCORD_PURE_PYTHON", None)
            if mode == "pure":
                env["ACCORD_PURE_PYTHON"] = "1"
            out = subprocess.run(
                [sys.executable, "-m", "bench.compiled", "--child", f"--number={args.number}"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            result = json.loads(out)
            if result["mode"] != mode:
                print(f"warning: asked for {mode}, ran {result['mode']} (make install?)")
            results[mode].append(result["us"])
    print(f"{sys.implementation.name} {sys.version.split()[0]}, {args.rounds} rounds alternated")
    print(f"{'step':<14}{'pure µs':>10}{'compiled µs':>13}{'speed-up':>10}")
    totals = {"pure": 0.0, "compiled": 0.0}
    for step in STEPS:
        medians = {m: statistics.median(r[step] for r in results[m]) for m in results}
        for mode in totals:
            totals[mode] += medians[mode]
        ratio = medians["pure"] / medians["compiled"]
        print(f"{step:<14}{medians['pure']:>10.2f}{medians['compiled']:>13.2f}{ratio:>9.2f}x")
    ratio = totals["pure"] / totals["compiled"]
    print(f"{'one push':<14}{totals['pure']:>10.2f}{totals['compiled']:>13.2f}{ratio:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

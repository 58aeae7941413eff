"""CPU of one push's ops on their way from the client's JSON to what sync stores.

    python -m bench.op_wire [--changes 100] [--repeat 7] [--number 200]

In-process, no I/O: the edge's half (the push frame's JSON text parsed, each
change checked and turned into the gRPC ``Change`` by
``accord.edge.ops.parse_change``, the ``PushRequest`` serialised) and sync's
half (the request parsed, every change validated into the engine's
``IncomingChange`` by ``accord.sync.wire.push_batch``).
The push mixes the op kinds as an editor and a todo list would: sets of three
fields, increments, set adds, list inserts and removes. Prints the best of
``--repeat`` runs, in microseconds per change, for each half and both.
"""

from __future__ import annotations

import argparse
import timeit
from typing import Any

from accord.api.sync.v1 import sync_pb2 as pb
from accord.common import jsontext
from accord.edge.ops import parse_change
from accord.sync import wire
from accord.sync.model import Limits

ROOM = "bench-room"


def client_changes(count: int) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = [
        {"kind": "set", "fields": {"title": "buy milk and bread", "done": False, "n": 7}},
        {"kind": "incr", "field": "votes", "by": 3},
        {"kind": "add", "field": "tags", "values": ["red", "urgent", 12]},
        {"kind": "insert", "field": "text", "after": "3.0@replica-7f3a", "values": ["h", "i"]},
        {"kind": "remove_items", "field": "text", "ids": ["3.1@replica-7f3a"]},
        {"kind": "set", "fields": {"body": {"lines": ["a" * 40, "b" * 40], "w": 1.5}}},
    ]
    return [
        {
            "client_seq": n + 1,
            "collection": "todos",
            "key": f"t-{n % 50}",
            "ts": 1763766000000123 + n,
            "op": ops[n % len(ops)],
        }
        for n in range(count)
    ]


def push_frame(changes: list[dict[str, Any]]) -> str:
    return jsontext.dumps({"type": "push", "id": 7, "room": ROOM, "changes": changes})


def edge_half(frame: str) -> bytes:
    changes = jsontext.loads(frame)["changes"]
    request = pb.PushRequest(
        room=ROOM,
        user_id="u-42",
        client_id="replica-7f3a",
        changes=[parse_change(c, ROOM, i) for i, c in enumerate(changes)],
    )
    return request.SerializeToString()


def sync_half(data: bytes, limits: Limits) -> int:
    return len(wire.push_batch(pb.PushRequest.FromString(data), limits).changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=100, help="changes per push")
    parser.add_argument("--repeat", type=int, default=7, help="runs; the best is reported")
    parser.add_argument("--number", type=int, default=200, help="pushes per run")
    args = parser.parse_args()
    frame = push_frame(client_changes(args.changes))
    limits = Limits(max_batch_changes=max(1000, args.changes))
    data = edge_half(frame)
    assert sync_half(data, limits) == args.changes
    per_change = 1e6 / (args.number * args.changes)
    edge = min(timeit.repeat(lambda: edge_half(frame), repeat=args.repeat, number=args.number))
    sync = min(
        timeit.repeat(lambda: sync_half(data, limits), repeat=args.repeat, number=args.number)
    )
    print(
        f"edge {edge * per_change:.2f} us/change  sync {sync * per_change:.2f} us/change  "
        f"both {(edge + sync) * per_change:.2f} us/change"
    )


if __name__ == "__main__":
    main()

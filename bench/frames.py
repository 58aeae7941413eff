"""Micro-benchmark of the edge's outgoing frame encoding (docs/benchmarks.md, "Frames").

    .venv/bin/python -m bench.frames            # best of 5 timeit repeats per case

``changes``: the fan-out fast path, ``ChangesOut`` of 20 committed changes encoded
as JSON text and as protobuf (each a fresh object: encoding is cached per object).
``presence`` / ``ack`` / ``snapshot``: the general ``Out`` path through the
JSON ↔ protobuf mapping, and the decoding of a client ``push`` frame.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from typing import Any

from accord.api.edge.v1 import frames_pb2 as pb
from accord.api.sync.v1 import sync_pb2 as spb
from accord.edge.frames import parse_binary
from accord.edge.protocol import ChangesOut, Out


def _changes(n: int) -> list[spb.CommittedChange]:
    return [
        spb.CommittedChange(
            seq=seq,
            collection="todos",
            key=f"t-{seq}",
            client_id="c-1",
            client_seq=seq,
            ts=1_700_000_000_000_000 + seq,
            patch_json='{"set":{"title":"milk","done":false}}',
        )
        for seq in range(1, n + 1)
    ]


PEER = {"session_id": "s-1", "user_id": "u-1", "client_id": "c-1", "user": {"n": "a"}, "state": {}}
PRESENCE = {
    "type": "presence",
    "room": "r",
    "event": "sync",
    "peers": [PEER] * 10,
    "count": 10,
    "users": 1,
}
ACK = {
    "type": "ack",
    "id": 7,
    "room": "r",
    "results": [{"client_seq": i, "seq": i, "status": "applied"} for i in range(1, 21)],
}
SNAPSHOT = {
    "type": "snapshot",
    "room": "r",
    "seq": 9,
    "last": True,
    "epoch": "0123456789abcdef",
    "records": [{"collection": "c", "key": f"k{i}", "value": {"i": i}} for i in range(50)],
}
PUSH = pb.ClientFrame(
    id=3,
    push=pb.Push(
        room="r",
        changes=[
            pb.PushChange(client_seq=i, collection="c", key="k", op_json='{"kind":"delete"}')
            for i in range(20)
        ],
    ),
).SerializeToString()


def cases() -> dict[str, Callable[[], Any]]:
    changes = _changes(20)
    return {
        "changes json": lambda: ChangesOut("r", changes).text(),
        "changes binary": lambda: ChangesOut("r", changes).binary(),
        "presence binary": lambda: Out(PRESENCE).binary(),
        "ack binary": lambda: Out(ACK).binary(),
        "snapshot binary": lambda: Out(SNAPSHOT).binary(),
        "push decode": lambda: parse_binary(PUSH, 32),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    for name, case in cases().items():
        best = min(timeit.repeat(case, number=args.number, repeat=5)) / args.number
        print(f"{name:18} {best * 1e6:8.2f} µs")


if __name__ == "__main__":
    main()

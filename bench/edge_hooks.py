"""What an installed ``before_push`` costs the edge per push: its push handler alone.

    python -m bench.edge_hooks [--pushes 20000] [--rounds 7] [--changes 1]

Runs the edge's own ``push`` handler (``accord.edge.handlers.on_push``: the
request checks, each change parsed to protobuf, the hooks, the ack's results)
for a stand-in session whose sync client answers at once, so what is timed is
the edge's CPU per push and nothing else. Three setups, alternated round by
round (each round runs them in a rotated order): no extension; an extension
with only ``on_connect`` (``before_push`` not implemented: the plain path, no
payload built and nothing more awaited); a no-op ``before_push`` (per change
a ``BeforePush`` payload and the session's view built, the hook awaited under
``EXTENSION_TIMEOUT``). Prints the median over rounds of µs per push, of CPU
(this process) and of wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from accord.api.sync.v1 import sync_pb2 as spb
from accord.edge.auth import Identity
from accord.edge.handlers import on_push
from accord.edge.hooks import NO_HOOKS, EdgeHooks
from accord.edge.settings import Settings
from accord.extensions import (
    BeforePush,
    BeforePushReply,
    Connection,
    Extension,
    OnConnect,
    OnConnectReply,
)


class NoOpPush:
    async def before_push(self, push: BeforePush) -> BeforePushReply:
        return None


class ConnectOnly:
    async def on_connect(self, connect: OnConnect) -> OnConnectReply:
        return None


class AnsweringSync:
    """Sync's answer without sync: every change applied, at once."""

    def __init__(self) -> None:
        self.seq = 0

    async def push(self, request: spb.PushRequest) -> spb.PushResponse:
        response = spb.PushResponse()
        for change in request.changes:
            self.seq += 1
            response.results.add(client_seq=change.client_seq, seq=self.seq)
        return response


class Entry:
    pass


class Subscriptions:
    def __init__(self) -> None:
        self.entry_of = Entry()

    def entry(self, room: str) -> Entry:
        return self.entry_of

    async def answered(self, room: str, entry: Entry) -> None:
        return None  # as the real one once ``subscribed`` is queued


class Context:
    def __init__(self, extensions: EdgeHooks) -> None:
        self.settings = Settings()
        self.sync = AnsweringSync()
        self.extensions = extensions


class StandIn:
    """What ``on_push`` (and the hooks' session view) read of a session."""

    def __init__(self, extensions: EdgeHooks) -> None:
        self.ctx = Context(extensions)
        self.subscriptions = Subscriptions()
        self.session_id = "s-bench"
        self.client_id = "c-bench"
        self.identity = Identity("u-bench", None, None, None)
        self.connection = Connection("127.0.0.1", None)
        self.remote = "127.0.0.1"
        self.acks = 0

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    def check_write(self, room: str) -> None:
        return None

    def reply(self, message: dict[str, Any], request_id: int | None) -> None:
        self.acks += 1


SETUPS = {
    "none": NO_HOOKS,
    "on_connect only": EdgeHooks([Extension("bench:connect", ConnectOnly())], 1.0),
    "no-op before_push": EdgeHooks([Extension("bench:push", NoOpPush())], 1.0),
}


async def run(hooks: EdgeHooks, pushes: int, changes: int) -> tuple[float, float]:
    session: Any = StandIn(hooks)
    seq = 0
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(pushes):
        batch = []
        for _ in range(changes):
            seq += 1
            op = {"kind": "set", "fields": {"text": "hello", "n": n}}
            batch.append(
                {"client_seq": seq, "collection": "messages", "key": f"k{n % 200}", "op": op}
            )
        await on_push(session, {"type": "push", "room": "r", "changes": batch}, n)
    elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    assert session.acks == pushes
    return used / pushes * 1e6, elapsed / pushes * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--changes", type=int, default=1, help="changes per push")
    args = parser.parse_args()
    names = list(SETUPS)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    await run(NO_HOOKS, args.pushes // 10, args.changes)  # warm up
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            times[name].append(await run(SETUPS[name], args.pushes, args.changes))
    base = statistics.median(cpu for cpu, _ in times["none"])
    for name in names:
        cpu = statistics.median(c for c, _ in times[name])
        wall = statistics.median(w for _, w in times[name])
        print(f"{name:>18}: {cpu:6.1f} µs/push CPU ({cpu - base:+5.1f} vs none), {wall:6.1f} wall")


if __name__ == "__main__":
    asyncio.run(main())

"""Catch-up (Accord and the Yjs peers) and reconnect-storm (Accord) scenarios.

Catch-up: a client applies seq 1 of a room and leaves; a writer pushes N more
changes (acknowledged); the client comes back with ``since`` = 1 and we time
from the start of its connection until it holds seq N+1 — warm (same
processes) and cold (every process of the system restarted in between).
For the Yjs peers the client keeps its document, a writer sends N updates,
and the client reconnects with sync step 1 (its state vector); we time until
the server's sync step 2 is applied and check it holds the writer's last
value (an in-memory peer loses everything on a cold restart: "data lost").

Reconnect storm: 1,000 clients in rooms of 10, each holding its room's head,
drop at once and reconnect at once with ``since``; we time until 99 % (and
100 %) are resubscribed and caught up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.scenarios import Catchup, Storm
from bench.systems import System

TIMEOUT = 120.0
Emit = Callable[[dict[str, Any]], None]
"""Where a scenario writes its records (one JSON line each)."""
Log = Callable[[str], None]


def disconnect(session: Session | YSession) -> None:
    assert session.transport is not None
    session.transport.disconnect()


def record(
    kind: str, spec: Catchup | Storm, system: System, rep: int, **fields: Any
) -> dict[str, Any]:
    return {"kind": kind, "scenario": spec.name, "system": system.label, "rep": rep, **fields}


@contextmanager
def started(system: System, rep: int) -> Iterator[str]:
    """``system`` running for the block; yields the run's tag (room names start with it)."""
    system.prepare()
    system.start()
    try:
        yield f"{rep}{int(time.time()) % 100000}"
    finally:
        system.stop()


class Session(WSListener):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.transport: WSTransport | None = None
        self.max_seq = 0
        self.target = 0
        self.done = asyncio.get_running_loop().create_future()
        self.subscribed_at: float | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            return
        msg = json.loads(frame.get_payload_as_bytes())
        kind = msg.get("type")
        if kind == "changes":
            self.max_seq = max(self.max_seq, max(c["seq"] for c in msg["changes"]))
        elif kind == "snapshot":
            self.max_seq = max(self.max_seq, msg.get("seq", 0))
        elif kind == "subscribed":
            self.subscribed_at = time.monotonic()
            self.target = max(self.target, msg.get("head", 0))
        if (
            self.target
            and self.max_seq >= self.target
            and self.subscribed_at
            and not self.done.done()
        ):
            self.done.set_result(time.monotonic())
        self.queue.put_nowait(msg)

    def send(self, obj: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, json.dumps(obj).encode())

    async def reply(self, rid: int) -> dict[str, Any]:
        while True:
            msg = await asyncio.wait_for(self.queue.get(), TIMEOUT)
            if msg.get("id") == rid:
                if msg.get("type") == "error":
                    raise RuntimeError(f"accord error: {msg}")
                return msg


async def open_session(url: str, client_id: str, room: str, since: int | None = None) -> Session:
    _, s = await ws_connect(Session, url, max_frame_size=64 << 20)
    s.send({"type": "hello", "id": 1, "client_id": client_id})
    await s.reply(1)
    sub: dict[str, Any] = {"type": "subscribe", "id": 2, "room": room}
    if since is not None:
        sub["since"] = since
    s.send(sub)
    await s.reply(2)
    return s


async def write(
    url: str, room: str, n: int, client_id: str, start_seq: int = 0, batch: int = 500
) -> None:
    w = await open_session(url, client_id, room)
    rid, cseq = 10, start_seq
    while n > 0:
        k = min(batch, n)
        changes = []
        for _ in range(k):
            cseq += 1
            changes.append(
                {
                    "client_seq": cseq,
                    "collection": "b",
                    "key": f"k{cseq % 97}",
                    "op": {"kind": "set", "fields": {"v": "x" * 64, "n": cseq}},
                }
            )
        rid += 1
        w.send({"type": "push", "id": rid, "room": room, "changes": changes})
        await w.reply(rid)
        n -= k
    disconnect(w)


async def timed_resume(url: str, client_id: str, room: str, since: int, head: int) -> float:
    t0 = time.monotonic()
    s = await open_session(url, client_id, room, since)
    s.target = max(s.target, head)
    if s.max_seq < head:
        await asyncio.wait_for(s.done, TIMEOUT)
    elapsed = time.monotonic() - t0
    disconnect(s)
    return elapsed * 1000


def run(system: System, spec: Catchup, rep: int, emit: Emit, log: Log) -> None:
    if system.protocol in ("yjs", "hocuspocus"):
        run_yjs(system, spec, rep, emit, log)
        return
    if system.protocol != "accord":
        why = "catch-up needs a log to resume from: not applicable to the relay"
        emit(record("skipped", spec, system, rep, why=why))
        return
    with started(system, rep) as tag:
        url = system.url + "/ws"
        for n in spec.missed:
            room = f"cu-{tag}-{n}"

            async def warm(n: int = n, room: str = room) -> float:
                await write(url, room, 1, f"w{tag}")
                reader = await open_session(url, f"r{tag}", room, 0)
                await asyncio.sleep(0.2)
                disconnect(reader)
                await write(url, room, n, f"w{tag}", start_seq=1)
                return await timed_resume(url, f"r{tag}", room, 1, n + 1)

            warm_ms = uvloop.run(warm())
            cold_ms = None
            if spec.cold:
                system.restart()
                cold_ms = uvloop.run(timed_resume(url, f"r{tag}", room, 1, n + 1))
            emit(record("catchup", spec, system, rep, missed=n, warm_ms=warm_ms, cold_ms=cold_ms))
            log(f"  catch-up {n}: warm {warm_ms:.0f} ms, cold {cold_ms or 0:.0f} ms")


def run_storm(system: System, spec: Storm, workers: int, rep: int, emit: Emit, log: Log) -> None:
    if system.protocol != "accord":
        why = "the reconnect storm is implemented for Accord's protocol only so far"
        emit(record("skipped", spec, system, rep, why=why))
        return
    with started(system, rep) as tag:
        url = system.url + "/ws"
        rooms = [f"st-{tag}-{i}" for i in range(spec.clients // spec.room_size)]

        async def storm() -> dict[str, Any]:
            for room in rooms:  # every room has a head to resume from
                await write(url, room, 5, f"w{tag}-{room}")
            sem = asyncio.Semaphore(200)

            async def first(i: int) -> Session:
                async with sem:
                    return await open_session(url, f"c{tag}-{i}", rooms[i % len(rooms)], 0)

            sessions = await asyncio.gather(*(first(i) for i in range(spec.clients)))
            await asyncio.sleep(1.0)
            for s in sessions:
                disconnect(s)
            t0 = time.monotonic()

            async def back(i: int) -> float | None:
                try:
                    await open_session(url, f"c{tag}-{i}", rooms[i % len(rooms)], 5)
                    return (time.monotonic() - t0) * 1000
                except Exception:
                    return None

            times = await asyncio.wait_for(
                asyncio.gather(*(back(i) for i in range(spec.clients))), TIMEOUT
            )
            ok = sorted(t for t in times if t is not None)
            k99 = int(0.99 * spec.clients + 0.999) - 1
            return {
                "clients": spec.clients,
                "resynced": len(ok),
                "p99_ms": ok[k99] if len(ok) > k99 else None,
                "all_ms": ok[-1] if len(ok) == spec.clients else None,
            }

        rec = uvloop.run(storm())
        emit(record("storm", spec, system, rep, **rec))
        log(f"  storm: {rec}")


# --- the Yjs peers: catch-up is sync step 1 (the client's state vector) -> sync step 2


def read_varuint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, pos


class YSession(WSListener):
    """A Yjs client that applies what it receives (sync step 2 and updates) to its document."""

    def __init__(self, prefix: bytes) -> None:
        from pycrdt import Doc, Map

        self.prefix = prefix
        self.doc = Doc()
        self.map = self.doc.get("m", type=Map)
        self.transport: WSTransport | None = None
        self.updates = 0
        self.step2 = asyncio.get_running_loop().create_future()
        self.caught = asyncio.get_running_loop().create_future()
        self.expect: str | None = None
        self.authed = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.BINARY:
            return
        data = frame.get_payload_as_bytes()
        if not data.startswith(self.prefix):
            return
        pos = len(self.prefix)
        kind = data[pos]
        if kind == 2 and data[pos + 1 : pos + 2] == b"\x02" and not self.authed.done():
            self.authed.set_result(True)  # Hocuspocus: Authenticated
        if kind != 0:
            return
        sub = data[pos + 1]
        if sub in (1, 2):  # sync step 2 / update
            length, start = read_varuint(data, pos + 2)
            self.doc.apply_update(data[start : start + length])
            self.updates += 1
            if sub == 1 and not self.step2.done():
                self.step2.set_result(time.monotonic())
            if (
                self.expect is not None
                and not self.caught.done()
                and self.map.get("w") == self.expect
            ):
                self.caught.set_result(time.monotonic())

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.BINARY, self.prefix + data)


async def y_open(system: System, room: str) -> YSession:
    from bench.protocols import varstring

    hocus = system.protocol == "hocuspocus"
    prefix = varstring(room) if hocus else b""
    url = system.url if hocus else f"{system.url}/{room}"
    _, s = await ws_connect(lambda: YSession(prefix), url, max_frame_size=64 << 20)
    if hocus:
        s.send(b"\x02\x00" + varstring("bench"))
        await asyncio.wait_for(s.authed, TIMEOUT)
    return s


async def y_write(system: System, room: str, n: int, key: str = "w") -> None:
    from bench.protocols import varuint

    w = await y_open(system, room)
    for i in range(1, n + 1):
        state = w.doc.get_state()
        w.map[key] = f"v{i}"
        upd = w.doc.get_update(state)
        w.send(b"\x00\x02" + varuint(len(upd)) + upd)
        if i % 200 == 0:
            await asyncio.sleep(0)
    deadline = time.monotonic() + 5.0  # bounded: a server that does not echo costs 5 s
    while w.updates < n and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded poll
        await asyncio.sleep(0.01)  # the servers echo every update
    disconnect(w)


async def y_resume(system: System, room: str, reader: YSession, n: int) -> tuple[float, bool]:
    """Reconnect with the reader's state; time until the writer's last value is applied.

    The data may come in the sync step 2 reply or, when the server loads the
    room from its store after answering (y-websocket), as updates right after.
    Not there within 10 s: the server lost it.
    """
    from bench.protocols import varuint

    t0 = time.monotonic()
    s = await y_open(system, room)
    s.expect = f"v{n}"
    sv = reader.doc.get_state()
    s.doc.apply_update(reader.doc.get_update())
    s.send(b"\x00\x00" + varuint(len(sv)) + sv)
    try:
        await asyncio.wait_for(s.caught, 10.0)
        ok = True
    except TimeoutError:
        ok = False
    elapsed = (time.monotonic() - t0) * 1000
    disconnect(s)
    return elapsed, ok


def run_yjs(system: System, spec: Catchup, rep: int, emit: Emit, log: Log) -> None:
    with started(system, rep) as tag:
        for n in spec.missed:
            room = f"cu-{tag}-{n}"

            async def first(room: str = room) -> YSession:
                await y_write(system, room, 1, key="init")
                r = await y_open(system, room)
                r.send(b"\x00\x00\x01\x00")  # sync step 1 with an empty state vector
                await asyncio.wait_for(r.step2, TIMEOUT)
                disconnect(r)
                return r

            async def warm(n: int = n, room: str = room) -> tuple[YSession, float, bool]:
                reader = await first()
                await y_write(system, room, n)
                ms, ok = await y_resume(system, room, reader, n)
                return reader, ms, ok

            reader, warm_ms, warm_ok = uvloop.run(warm())
            cold_ms, cold_ok = None, None
            if spec.cold:
                system.restart()
                cold_ms, cold_ok = uvloop.run(y_resume(system, room, reader, n))
            emit(
                record(
                    "catchup",
                    spec,
                    system,
                    rep,
                    missed=n,
                    warm_ms=warm_ms if warm_ok else None,
                    cold_ms=cold_ms if cold_ok else None,
                    warm_complete=warm_ok,
                    cold_complete=cold_ok,
                )
            )
            log(
                f"  catch-up {n}: warm {warm_ms:.0f} ms "
                f"({'complete' if warm_ok else 'INCOMPLETE'}), cold {cold_ms or 0:.0f} ms "
                f"({'complete' if cold_ok else 'data lost or incomplete'})"
            )

"""One load-generator worker process (started by bench.run, pinned to the generator core).

Reads a JSON spec line on stdin, then commands (one JSON line each), and
answers each with one JSON line on stdout. Open loop: every update is due at a
time fixed in advance (bench.schedule) and carries that time; latency is
measured from it. The worker records its own send lag and CPU so the
orchestrator can reject runs where the generator, not the server, was the limit.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.protocols import PROTOCOLS
from bench.stats import Histogram

DATA_FRAMES = frozenset((WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION))
monotonic_ns = time.monotonic_ns
PRESENCE_TAG = 50  # marker step numbers >= 50 mark presence updates
MIN_SLEEP_S = 0.001
MAX_OVERRUN_S = 30.0  # a step's sends stop this long after the step should have ended


class Counters:
    def __init__(self, step: int, start_ns: int = 0) -> None:
        self.step = step
        self.start_ns = start_ns
        self.deliveries = Histogram()
        self.acks = Histogram()  # push -> ack, for protocols whose acks name the push
        self.echo = Histogram()
        self.presence = Histogram()
        self.stale = 0  # markers of another step (arrived after its reply)
        self.frames = 0


class Client(WSListener):
    def __init__(self, gen: Worker, index: int, proto: Any) -> None:
        self.gen = gen
        self.index = index
        self.proto = proto
        self.acked_ns = getattr(proto, "acked_ns", None)
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.is_ready = False
        self.closed = False
        self.close_code: int | None = None
        self.last_frame = 0.0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.closed:
            self.closed = True
            self.gen.disconnects += 1
        self.set_ready(False)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            self.close_code = int(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type not in DATA_FRAMES:
            return
        data = frame.get_payload_as_bytes()
        now = monotonic_ns()
        self.last_frame = now
        c = self.gen.counters
        c.frames += 1
        if self.acked_ns is not None:
            sched = self.acked_ns(data)
            if sched is not None:
                if sched >= c.start_ns:
                    c.acks.add((now - sched) / 1000.0)
                return
        # The hot path of the generator: markers parsed in place (see bench.payload).
        p = data.find(b"@@")
        while p >= 0:
            try:
                step = int(data[p + 2 : p + 4])
                sender = int(data[p + 4 : p + 11])
                us = (now - int(data[p + 11 : p + 30])) / 1000.0
            except ValueError:
                p = data.find(b"@@", p + 1)
                continue
            if step == c.step:
                if sender == self.index:
                    c.echo.add(us)
                else:
                    c.deliveries.add(us)
            elif step >= PRESENCE_TAG:
                if step - PRESENCE_TAG == c.step and sender != self.index:
                    c.presence.add(us)
            else:
                c.stale += 1
            p = data.find(b"@@", p + 30)
        if not self.is_ready:
            if self.proto.failed(data):
                self.set_ready(False)
            elif self.proto.ready(data):
                self.set_ready(True)

    def set_ready(self, ok: bool) -> None:
        self.is_ready = True
        if not self.ready.done():
            self.ready.set_result(ok)

    def send(self, data: bytes) -> bool:
        if self.transport is None or self.closed:
            return False
        self.transport.send(WSMsgType.TEXT if self.proto.text else WSMsgType.BINARY, data)
        return True


class Worker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.clients: list[Client] = []
        self.counters = Counters(-1)
        self.disconnects = 0

    def room_of(self, index: int) -> str:
        return f"{self.spec['room_prefix']}-{index // self.spec['room_size']}"

    async def connect(self, indices: list[int], concurrency: int, timeout: float) -> dict[str, Any]:
        proto_cls = PROTOCOLS[self.spec["protocol"]]
        sem = asyncio.Semaphore(concurrency)
        errors: dict[str, int] = {}
        ok = 0
        t0 = time.monotonic()

        async def one(i: int) -> None:
            nonlocal ok
            async with sem:
                proto = proto_cls(self.spec["url"], self.room_of(i), i, self.spec["run_id"])
                try:
                    transport, client = await asyncio.wait_for(
                        ws_connect(
                            lambda: Client(self, i, proto), proto.url, max_frame_size=64 << 20
                        ),
                        timeout,
                    )
                    handshake = proto.handshake()
                    for msg in handshake:
                        client.send(msg)
                    if not proto.wait_reply:
                        client.set_ready(True)
                    if await asyncio.wait_for(client.ready, timeout):
                        self.clients.append(client)
                        ok += 1
                    else:
                        errors["refused"] = errors.get("refused", 0) + 1
                        transport.disconnect()
                except Exception as exc:
                    key = type(exc).__name__
                    errors[key] = errors.get(key, 0) + 1

        await asyncio.gather(*(one(i) for i in indices))
        self.clients.sort(key=lambda c: c.index)
        return {
            "connected": ok,
            "failed": sum(errors.values()),
            "errors": errors,
            "seconds": time.monotonic() - t0,
        }

    async def step(self, cmd: dict[str, Any]) -> dict[str, Any]:
        index, rate, duration = int(cmd["index"]), float(cmd["rate"]), float(cmd["duration"])
        t0 = int(cmd["start_ns"])
        grace = float(cmd.get("grace", 3.0))
        presence_every = float(cmd.get("presence_every", 0) or 0)
        active_set = set(cmd.get("active", [])) if cmd.get("active") is not None else None
        self.counters = Counters(index, t0)
        senders = [c for c in self.clients if active_set is None or c.index in active_set]
        lag = Histogram()
        disconnects0 = self.disconnects
        planned = int(len(senders) * rate * duration + 1e-9)
        # wait for the common start
        delay = (t0 - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        cpu0 = time.process_time()
        wall0 = time.monotonic()
        tasks = [
            asyncio.create_task(self._send_loop(senders, rate, duration, t0, index, lag, False))
        ]
        if presence_every > 0 and self.clients:
            tasks.append(
                asyncio.create_task(
                    self._send_loop(
                        self.clients, 1.0 / presence_every, duration, t0, index, lag, True
                    )
                )
            )
        sent = await asyncio.gather(*tasks)
        cpu = time.process_time() - cpu0
        wall = max(duration, time.monotonic() - wall0)
        # let deliveries land: until the deadline, or quiet for 1 s after the last frame
        end = t0 + int((duration + grace) * 1e9)
        while True:
            now = time.monotonic_ns()
            if now >= end:
                break
            last = max((c.last_frame for c in self.clients), default=0)
            if now - last > 1e9 and now - t0 > duration * 1e9 + 1e9:
                break
            await asyncio.sleep(0.1)
        c = self.counters
        return {
            "index": index,
            "rate": rate,
            "duration": duration,
            "planned": planned,
            "sent": sent[0],
            "presence_sent": sent[1] if len(sent) > 1 else 0,
            "senders": len(senders),
            "clients": len(self.clients),
            "deliveries": c.deliveries.to_json(),
            "echo": c.echo.to_json(),
            "acks": c.acks.to_json(),
            "presence": c.presence.to_json(),
            "lag": lag.to_json(),
            "stale": c.stale,
            "frames": c.frames,
            "cpu_s": cpu,
            "wall_s": wall,
            "disconnects": self.disconnects - disconnects0,
            "connected_now": sum(1 for x in self.clients if not x.closed),
        }

    async def _send_loop(
        self,
        senders: list[Client],
        rate: float,
        duration: float,
        t0: int,
        step: int,
        lag: Histogram,
        presence: bool,
    ) -> int:
        n = len(senders)
        if n == 0:
            return 0
        total = int(n * rate * duration + 1e-9)
        interval = 1e9 / (n * rate)
        if presence:  # offset presence half an interval from updates
            t0 += int(interval / 2)
        tag = step + PRESENCE_TAG if presence else step
        give_up = t0 + int((duration + MAX_OVERRUN_S) * 1e9)
        j = sent = 0
        while j < total:
            now = time.monotonic_ns()
            if now > give_up:
                break
            due = t0 + int(j * interval)
            if due > now:
                # Never under the event loop's 1 ms timer resolution: a shorter sleep
                # returns at once and the loop would spin. What falls due meanwhile
                # is sent late, and that lateness is recorded as lag.
                await asyncio.sleep(max((due - now) / 1e9, MIN_SLEEP_S))
                continue
            batch = 0
            while j < total and t0 + int(j * interval) <= now and batch < 256:
                sched = t0 + int(j * interval)
                client = senders[j % n]
                data = (
                    client.proto.presence(tag, sched)
                    if presence
                    else client.proto.update(tag, sched)
                )
                if client.send(data):
                    sent += 1
                lag.add((time.monotonic_ns() - sched) / 1000.0)
                j += 1
                batch += 1
            await asyncio.sleep(0)
        return sent

    async def close(self) -> None:
        for c in self.clients:
            c.closed = True
            if c.transport is not None:
                c.transport.disconnect()
        self.clients.clear()


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 << 20)  # a connect command lists every client
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    spec = json.loads(await reader.readline())
    worker = Worker(spec)
    out = sys.stdout

    def reply(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    reply({"pid": os.getpid(), "ready": True})
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        what = cmd["cmd"]
        if what == "connect":
            reply(
                await worker.connect(
                    cmd["indices"], int(cmd.get("concurrency", 100)), float(cmd.get("timeout", 30))
                )
            )
        elif what == "step":
            # The clients and their buffers live for the whole run: keep them out of
            # the cyclic collector's full passes, which otherwise stall sends for
            # milliseconds in the middle of a step (seen as send lag).
            gc.collect()
            gc.freeze()
            reply(await worker.step(cmd))
        elif what == "idle":
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(float(cmd["seconds"]))
            reply(
                {
                    "cpu_s": time.process_time() - cpu0,
                    "wall_s": time.monotonic() - wall0,
                    "connected_now": sum(1 for x in worker.clients if not x.closed),
                    "disconnects": worker.disconnects,
                }
            )
        elif what == "close":
            await worker.close()
            reply({"closed": True})
            break
        else:
            reply({"error": f"unknown command {what}"})


if __name__ == "__main__":
    gc.set_threshold(50_000, 20, 100)  # as the services do (accord.common.lifecycle)
    uvloop.run(main())

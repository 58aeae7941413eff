"""What waking another process costs this machine: CPU per message across loopback TCP.

    python -m bench.wakeups [--messages 3000] [--sockets 10] [--interval-ms 5]

Two measurements, each with the peer process pinned to the same core as the measured
one and then to the other core (the whole-stack benchmarks put the system on core 0 and
the generator on core 1, so every frame between them crosses cores):

- ping-pong: one uvloop process writes a small message and awaits the echo, one after
  the other; its CPU (user + system, every thread) per round trip.
- fan-out: one process writes a 150-byte frame to each of ``--sockets`` sockets whose
  reader (one uvloop process holding them all) is idle, every ``--interval-ms``, as the
  edge writes a small room's change to its clients at low rates; the writer's CPU per
  frame written.

On bare metal the two placements cost about the same. On a virtual machine waking a
process on another (idle) virtual CPU can cost the waker tens of microseconds (an
inter-processor interrupt that exits to the hypervisor), which is part of what every
delivery costs the edge in the whole-stack runs and cannot be removed by Accord's code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

FRAME = b"\x81\x7e\x00\x96" + b"x" * 150


def cpu_seconds() -> float:
    """This process's CPU time, every thread."""
    return time.process_time()


def per_message_us(cpu: float, messages: int) -> float:
    """Microseconds of CPU per message (0 for no messages)."""
    return 1e6 * cpu / messages if messages else 0.0


async def _echo_server() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)

    async def drain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    sink = await asyncio.start_server(drain, "127.0.0.1", 0)
    async with server, sink:
        # Both listening: their ports, for the measuring process.
        print(server.sockets[0].getsockname()[1], sink.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()


async def _ping_pong(port: int, messages: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.transport.set_write_buffer_limits(0)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(200):  # warm up
        writer.write(b"x")
        await reader.read(64)
    start = cpu_seconds()
    for _ in range(messages):
        writer.write(b"x")
        await reader.read(64)
    used = cpu_seconds() - start
    writer.close()
    return per_message_us(used, messages)


async def _fan_out(port: int, sockets: int, rounds: int, interval: float) -> float:
    writers = []
    for _ in range(sockets):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writers.append(writer)
    await asyncio.sleep(0.2)
    used = 0.0
    for _ in range(rounds):
        await asyncio.sleep(interval)  # the reader goes idle in between
        start = cpu_seconds()
        for writer in writers:
            writer.transport.write(FRAME)
        used += cpu_seconds() - start
    for writer in writers:
        writer.close()
    return per_message_us(used, rounds * sockets)


def _measure(args: argparse.Namespace, own: int, peer: int) -> tuple[float, float]:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.wakeups", "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        os.sched_setaffinity(server.pid, {peer})
        os.sched_setaffinity(0, {own})
        assert server.stdout is not None
        echo, sink = (int(port) for port in server.stdout.readline().split())
        import uvloop

        rounds = max(1, args.messages // args.sockets)
        ping = uvloop.run(_ping_pong(echo, args.messages))
        fan = uvloop.run(_fan_out(sink, args.sockets, rounds, args.interval_ms / 1000))
        return ping, fan
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.wakeups")
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--sockets", type=int, default=10)
    ap.add_argument("--interval-ms", type=float, default=5.0)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        import uvloop

        uvloop.run(_echo_server())
        return
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        sys.exit("needs two cores")
    rows = []
    for label, peer in (("same core", cores[0]), ("other core", cores[1])):
        ping, fan = _measure(args, cores[0], peer)
        rows.append((label, ping, fan))
    os.sched_setaffinity(0, set(cores))
    print(
        f"CPU of the measured process (pinned to core {cores[0]}); peer process on the same "
        f"or the other core; {args.messages} messages each"
    )
    print()
    print(
        f"| peer | ping-pong, per round trip | fan-out to {args.sockets} idle sockets "
        f"every {args.interval_ms:g} ms, per frame |"
    )
    print("|---|---:|---:|")
    for label, ping, fan in rows:
        print(f"| {label} | {ping:.1f} µs | {fan:.1f} µs |")


if __name__ == "__main__":
    main()

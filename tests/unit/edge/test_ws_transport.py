"""What the WebSocket transport relies on in aiohttp, and its fast path."""

from __future__ import annotations

import asyncio
from typing import Any

from accord.edge.protocol import Out, ws_frame
from aiohttp import WSMsgType
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import WebSocketWriter


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self.written))


async def test_aiohttp_writes_uncompressed_frames_before_its_first_await() -> None:
    """``Outbound``'s fast path writes frames itself once nothing is queued: that keeps
    the order only if aiohttp's ``send_frame`` has put its frame in the transport by the
    time it first yields. If aiohttp changes this, this test fails."""
    transport = RecordingTransport()
    protocol = BaseProtocol(asyncio.get_running_loop())
    protocol.connection_made(transport)
    writer = WebSocketWriter(protocol, transport, compress=0)
    big = b"x" * (1 << 20)  # over the writer's limit: it waits for a drain after writing
    for payload in (b'{"type":"pong"}', big):
        transport.written.clear()
        step = writer.send_frame(payload, WSMsgType.TEXT)
        try:
            step.send(None)  # run to its first suspension (or to its end)
        except StopIteration:
            pass
        finally:
            step.close()
        assert b"".join(transport.written) == ws_frame(payload, False)


async def test_out_frames_are_the_frames_aiohttp_writes() -> None:
    """The fast path's own framing (``Out.frame``) is byte for byte aiohttp's."""
    transport = RecordingTransport()
    protocol = BaseProtocol(asyncio.get_running_loop())
    protocol.connection_made(transport)
    writer = WebSocketWriter(protocol, transport, compress=0)
    for size in (0, 125, 126, 65535, 65536):
        out = Out({"type": "broadcast", "data": "x" * size})
        transport.written.clear()
        await writer.send_frame(out.text(), WSMsgType.TEXT)
        assert b"".join(transport.written) == out.frame(False)

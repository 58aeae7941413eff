"""The floor: a trivial WebSocket relay (picows + uvloop) with the same framing as the clients.

Each frame a client sends is forwarded, unchanged, to every client of its room
(the URL path), the sender included — like the Yjs servers. It parses nothing,
stores nothing and checks nothing: what the harness measures against it is the
cost of the generator, the kernel's loopback and one Python hop, the floor
under any real server.

    python -m bench.relay PORT
"""

from __future__ import annotations

import sys

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

ROOMS: dict[bytes, set[WSTransport]] = {}


class Peer(WSListener):
    def __init__(self, room: bytes) -> None:
        self.room = room
        self.members = ROOMS.setdefault(room, set())

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.members.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.members.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind in (WSMsgType.TEXT, WSMsgType.BINARY):
            data = frame.get_payload_as_bytes()
            for member in self.members:
                member.send(kind, data)
        elif kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


async def main(port: int) -> None:
    def factory(request: WSUpgradeRequest) -> Peer:
        path = request.path
        return Peer(path if isinstance(path, bytes) else str(path).encode())

    server = await ws_create_server(factory, "127.0.0.1", port, max_frame_size=64 << 20)
    print(f"relay listening on 127.0.0.1:{port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))

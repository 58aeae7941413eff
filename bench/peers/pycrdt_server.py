"""pycrdt-websocket (the Python Yjs server) on the `websockets` asyncio server, with uvloop.

    python bench/peers/pycrdt_server.py PORT [memory|durable] [DATA_DIR]

memory: the library's default in-memory rooms. durable: every room gets the
library's SQLiteYStore (pycrdt-store), which writes each update to SQLite.
Rooms are the URL path, as in the library's own examples.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import anyio
from pycrdt import Channel
from pycrdt.websocket import WebsocketServer, YRoom
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


class WebsocketsChannel(Channel):
    """Adapts a `websockets` connection to pycrdt's Channel."""

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws
        self._path = ws.request.path if ws.request else "/"

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebsocketsChannel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration() from None

    async def send(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(message)

    async def recv(self) -> bytes:
        data = await self._ws.recv()
        return data if isinstance(data, bytes) else data.encode()


def durable_server(data_dir: Path) -> WebsocketServer:
    from pycrdt.store import SQLiteYStore

    class Store(SQLiteYStore):
        db_path = str(data_dir / "ystore.db")

    class Server(WebsocketServer):
        async def get_room(self, name: str) -> YRoom:
            fresh = name not in self.rooms
            if fresh:
                self.rooms[name] = YRoom(
                    ready=self.rooms_ready, ystore=Store(path=name), log=self.log
                )
            room = self.rooms[name]
            await self.start_room(room)
            if fresh and room.ystore is not None:
                # YRoom starts its store but does not load it (its embedders, e.g.
                # jupyter-collaboration, do): load what the store holds, as they would.
                with contextlib.suppress(Exception):
                    await room.ystore.apply_updates(room.ydoc)
            return room

    return Server()


async def main(port: int, profile: str, data_dir: Path) -> None:
    server = durable_server(data_dir) if profile == "durable" else WebsocketServer()

    async def handler(ws: ServerConnection) -> None:
        await server.serve(WebsocketsChannel(ws))

    async with server, serve(handler, "127.0.0.1", port, max_size=64 << 20, compression=None):
        print(f"pycrdt-websocket ({profile}) on 127.0.0.1:{port}", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    port = int(sys.argv[1])
    profile = sys.argv[2] if len(sys.argv) > 2 else "memory"
    data_dir = Path(sys.argv[3] if len(sys.argv) > 3 else "/tmp/accord-bench-pycrdt")
    data_dir.mkdir(parents=True, exist_ok=True)
    anyio.run(main, port, profile, data_dir, backend_options={"use_uvloop": True})

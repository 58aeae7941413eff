"""How a benchmark client speaks to each system: connect, join a room, encode an update.

Every update carries a marker (bench.payload) with its scheduled send time;
receivers only search frames for markers, whatever the framing.
"""

from __future__ import annotations

import json

from bench.payload import padded


def varuint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varstring(s: str) -> bytes:
    raw = s.encode()
    return varuint(len(raw)) + raw


class Accord:
    """Accord's JSON protocol: hello, subscribe, then one-change pushes.

    Each push's request id is its scheduled send time, so the ack (which echoes
    the id) tells the push->ack latency without any per-push bookkeeping.
    """

    kind = "accord"
    text = True
    wait_reply = True

    def __init__(self, base_url: str, room: str, client: int, run_id: str) -> None:
        self.url = base_url
        self.room = room
        self.client = client
        self.client_id = f"b{run_id}-{client}"
        self.seq = 0

    def handshake(self) -> list[bytes]:
        return [
            json.dumps({"type": "hello", "id": 1, "client_id": self.client_id}).encode(),
            json.dumps({"type": "subscribe", "id": 2, "room": self.room}).encode(),
        ]

    @staticmethod
    def ready(frame: bytes) -> bool:
        return b'"subscribed"' in frame

    @staticmethod
    def failed(frame: bytes) -> bool:
        return b'"type":"error"' in frame or b'"type": "error"' in frame

    def update(self, step: int, sched_ns: int) -> bytes:
        self.seq += 1
        p = padded(step, self.client, sched_ns)
        return (
            f'{{"type":"push","id":{sched_ns},"room":"{self.room}","changes":[{{"client_seq":{self.seq},'
            f'"collection":"b","key":"c{self.client}","op":{{"kind":"set","fields":{{"p":"{p}"}}}}}}]}}'
        ).encode()

    @staticmethod
    def acked_ns(frame: bytes) -> int | None:
        """The scheduled send time of the push an ack frame answers (None: not an ack)."""
        if not frame.startswith(b'{"type":"ack"'):
            return None
        at = frame.rfind(b'"id":')
        if at < 0:
            return None
        end = at + 5
        while end < len(frame) and 48 <= frame[end] <= 57:
            end += 1
        return int(frame[at + 5 : end]) if end > at + 5 else None

    def presence(self, step: int, sched_ns: int) -> bytes:
        p = padded(step, self.client, sched_ns, 40)
        return f'{{"type":"presence","room":"{self.room}","state":{{"p":"{p}"}}}}'.encode()


class NoHandshake:
    """A protocol with nothing to say before its updates: ready at once, never refused."""

    def handshake(self) -> list[bytes]:
        return []

    @staticmethod
    def ready(frame: bytes) -> bool:
        return True

    @staticmethod
    def failed(frame: bytes) -> bool:
        return False


class Relay(NoHandshake):
    """The floor: a relay that forwards each frame to everyone in the room (path = room)."""

    kind = "relay"
    text = True
    wait_reply = False

    def __init__(self, base_url: str, room: str, client: int, run_id: str) -> None:
        self.url = f"{base_url}/{room}"
        self.client = client

    def update(self, step: int, sched_ns: int) -> bytes:
        return padded(step, self.client, sched_ns, 100).encode()

    def presence(self, step: int, sched_ns: int) -> bytes:
        return padded(step, self.client, sched_ns, 40).encode()


class Yjs(NoHandshake):
    """y-websocket protocol (y-websocket, pycrdt-websocket): [sync=0, update=2, update bytes].

    Each client owns a pycrdt document and sends real Yjs updates (a map
    field set to the marker string), so the server applies and broadcasts them
    like any editor's keystrokes.
    """

    kind = "yjs"
    text = False
    wait_reply = False

    def __init__(self, base_url: str, room: str, client: int, run_id: str) -> None:
        from pycrdt import Doc, Map

        self.url = f"{base_url}/{room}"
        self.room = room
        self.client = client
        self.doc = Doc()
        self.map = self.doc.get("m", type=Map)
        self.key = f"c{client}"
        self.clock = 0

    def prefix(self) -> bytes:
        return b""

    def _update(self, text: str) -> bytes:
        # Each client writes its own key: concurrent writes to one key would
        # make the server broadcast the losers as deleted items, without content.
        state = self.doc.get_state()
        self.map[self.key] = text
        return self.doc.get_update(state)

    def update(self, step: int, sched_ns: int) -> bytes:
        upd = self._update(padded(step, self.client, sched_ns, 60))
        return self.prefix() + b"\x00\x02" + varuint(len(upd)) + upd

    def presence(self, step: int, sched_ns: int) -> bytes:
        # awareness: [1, len, [count=1, clientID, clock, state JSON]]
        self.clock += 1
        state = json.dumps({"p": padded(step, self.client, sched_ns, 40)})
        body = varuint(1) + varuint(self.doc.client_id) + varuint(self.clock) + varstring(state)
        return self.prefix() + b"\x01" + varuint(len(body)) + body


class Hocuspocus(Yjs):
    """Hocuspocus: every message starts with the document name; an Auth message comes first."""

    kind = "hocuspocus"
    wait_reply = True

    def __init__(self, base_url: str, room: str, client: int, run_id: str) -> None:
        super().__init__(base_url, room, client, run_id)
        self.url = base_url
        self._prefix = varstring(room)

    def prefix(self) -> bytes:
        return self._prefix

    def handshake(self) -> list[bytes]:
        # MessageType.Auth = 2, AuthMessageType.Token = 0, then the token.
        return [self._prefix + b"\x02\x00" + varstring("bench")]

    def ready(self, frame: bytes) -> bool:  # type: ignore[override]
        # [doc][Auth=2][Authenticated=2]...
        return frame.startswith(self._prefix + b"\x02\x02")

    def failed(self, frame: bytes) -> bool:  # type: ignore[override]
        return frame.startswith(self._prefix + b"\x02\x01")


PROTOCOLS = {"accord": Accord, "relay": Relay, "yjs": Yjs, "hocuspocus": Hocuspocus}

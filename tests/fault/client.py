"""The fault suite's WebSocket client: reconnects, resumes with ``since``, retries pushes.

Each client pushes its changes one push at a time. A push that gets no ``ack`` (its
connection died, its edge answered ``UNAVAILABLE``, no reply in time) is sent again
with the SAME ``client_seq`` until it is acknowledged: a retry of a change that was in
fact committed gets ``duplicate`` with the original seq. After a reconnect (to its home
edge, else the next one) the client subscribes with ``since`` = the last seq it applied.

Every subscription is checked as protocol.md promises: after ``subscribed`` an optional
snapshot, then each seq exactly once, in order, no gap. Breaches are recorded in
``violations`` (never raised inside the reader), so the run's report can count them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.wsclient import Replica, make_token

PUSH_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
RETRYABLE = {"UNAVAILABLE", "RATE_LIMITED", "INTERNAL", "NOT_SUBSCRIBED"}


class ConnectionLost(Exception):
    pass


@dataclass
class Sent:
    """One change this client pushed, and what the server said about it."""

    client_seq: int
    change: dict[str, Any]
    attempts: int = 0
    seq: int | None = None
    status: str | None = None
    rejected: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None


@dataclass
class Connection:
    http: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse
    edge: int
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    next_id: int = 1

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        with contextlib.suppress(Exception):
            await self.ws.close()
        await self.http.close()
        self.fail_pending()

    def fail_pending(self) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionLost())
        self.pending.clear()

    @property
    def alive(self) -> bool:
        return not self.ws.closed and self.reader is not None and not self.reader.done()


class FaultClient:
    def __init__(self, name: str, room: str, edges: list[str], home: int, seed: str) -> None:
        self.name, self.room, self.edges, self.home = name, room, edges, home
        self.user = f"u-{name}"
        self.token = make_token(self.user, ttl=24 * 3600)
        self.rng = random.Random(seed)
        self.replica = Replica()
        self.sent: list[Sent] = []
        self.violations: list[str] = []
        self.conn: Connection | None = None
        self.connects = 0
        self.retries = 0
        self.subscription_errors = 0
        self.delivered = asyncio.Condition()
        # Per subscription: whether changes have begun (a snapshot may only come first).
        self._changes_seen = False

    # -- connection -------------------------------------------------------------------

    async def connect(self, deadline: float) -> None:
        """(Re)connect and resubscribe with ``since``; tries every edge until ``deadline``."""
        if self.conn is not None:
            await self.conn.close()
            self.conn = None
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            edge = (self.home + attempt) % len(self.edges)
            try:
                self.conn = await asyncio.wait_for(self._open(edge), CONNECT_TIMEOUT * 2)
                self.connects += 1
                return
            except (aiohttp.ClientError, OSError, ConnectionLost, TimeoutError, _Refused):
                if self.conn is not None:
                    await self.conn.close()
                    self.conn = None
            attempt += 1
            if loop.time() > deadline:
                raise TimeoutError(f"{self.name}: no edge accepted a session before the deadline")
            await asyncio.sleep(min(0.05 * attempt, 0.5) * (0.5 + self.rng.random()))

    async def _open(self, edge: int) -> Connection:
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        try:
            ws = await http.ws_connect(
                self.edges[edge], timeout=aiohttp.ClientWSTimeout(ws_close=2.0), heartbeat=None
            )
        except BaseException:
            await http.close()
            raise
        conn = Connection(http, ws, edge)
        self.conn = conn
        conn.reader = asyncio.create_task(self._read(conn))
        hello = await self._request(conn, {"type": "hello", "token": self.token,
                                           "client_id": self.name})  # fmt: skip
        if hello.get("type") != "welcome":
            raise _Refused(str(hello))
        since = self.replica.seq
        self._changes_seen = False
        reply = await self._request(conn, {"type": "subscribe", "room": self.room, "since": since})
        if reply.get("type") != "subscribed":
            raise _Refused(str(reply))
        if int(reply["head"]) < since:
            self.violations.append(
                f"{self.name}: head went backwards: subscribed head {reply['head']} < {since}"
            )
        return conn

    async def _request(
        self, conn: Connection, message: dict[str, Any], timeout: float = PUSH_TIMEOUT
    ) -> dict[str, Any]:
        request_id = conn.next_id
        conn.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        conn.pending[request_id] = future
        try:
            await conn.ws.send_str(json.dumps({**message, "id": request_id}))
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as error:
            conn.pending.pop(request_id, None)
            raise ConnectionLost() from error
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            conn.pending.pop(request_id, None)

    async def _read(self, conn: Connection) -> None:
        try:
            while True:
                msg = await conn.ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                message = json.loads(msg.data)
                request_id = message.get("id")
                if isinstance(request_id, int) and request_id in conn.pending:
                    future = conn.pending[request_id]
                    if not future.done():
                        future.set_result(message)
                elif message.get("type") in ("snapshot", "changes"):
                    await self._deliver(conn, message)
                elif message.get("type") == "error" and message.get("room") == self.room:
                    # The edge ended the subscription (or could not join presence):
                    # start over with `since`.
                    self.subscription_errors += 1
                    await conn.ws.close()
        finally:
            conn.fail_pending()

    async def _deliver(self, conn: Connection, message: dict[str, Any]) -> None:
        async with self.delivered:
            if message["type"] == "snapshot":
                if self._changes_seen:
                    self.violations.append(f"{self.name}: snapshot after changes")
                if message.get("last") and int(message["seq"]) < self.replica.seq:
                    self.violations.append(
                        f"{self.name}: snapshot at {message['seq']} behind {self.replica.seq}"
                    )
                self.replica.apply(message)
            else:
                self._changes_seen = True
                for change in message["changes"]:
                    seq = int(change["seq"])
                    if seq <= self.replica.seq:
                        self.violations.append(
                            f"{self.name}: seq {seq} again, at {self.replica.seq}"
                        )
                        continue
                    if seq > self.replica.seq + 1:
                        self.violations.append(
                            f"{self.name}: gap: at {self.replica.seq}, got {seq} (resubscribing)"
                        )
                        # Unrecoverable on this subscription: start over with `since`.
                        await conn.ws.close()
                        return
                    self.replica.apply_change(change)
            self.delivered.notify_all()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    # -- pushing ----------------------------------------------------------------------

    def next_change(self, keys: int) -> Sent:
        client_seq = len(self.sent) + 1
        if self.rng.random() < 0.3:
            op: dict[str, Any] = {"kind": "incr", "field": "n", "by": self.rng.randint(1, 5)}
            change = {"collection": "counters", "key": f"c{self.rng.randrange(2)}", "op": op}
        else:
            fields = {"by": self.name, "n": client_seq, "r": self.rng.randrange(1000)}
            op = {"kind": "set", "fields": fields}
            change = {"collection": "items", "key": f"k{self.rng.randrange(keys)}", "op": op}
        sent = Sent(client_seq, {"client_seq": client_seq, **change})
        self.sent.append(sent)
        return sent

    async def push(self, sent: Sent, deadline: float) -> None:
        """Push ``sent`` until it is acknowledged (or rejected, or ``deadline`` passes)."""
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            if self.conn is None or not self.conn.alive:
                try:
                    await self.connect(deadline)
                except TimeoutError:
                    return
            assert self.conn is not None
            sent.attempts += 1
            if sent.attempts > 1:
                self.retries += 1
            message = {"type": "push", "room": self.room, "changes": [sent.change]}
            try:
                reply = await self._request(self.conn, message)
            except (ConnectionLost, TimeoutError):
                await self.close()
                continue
            if reply.get("type") == "ack":
                result = reply["results"][0]
                assert result["client_seq"] == sent.client_seq, reply
                sent.status = result["status"]
                sent.seq = result.get("seq")
                return
            code = reply.get("code")
            if code not in RETRYABLE:
                sent.rejected = f"{code}: {reply.get('message')}"
                return
            if code == "NOT_SUBSCRIBED":
                await self.close()
            pause = reply.get("retry_after_ms", 100) / 1000
            await asyncio.sleep(min(pause, 1.0) * (0.5 + self.rng.random()))

    async def ping(self) -> None:
        """A ping/pong round trip on the current session (a marker: what the edge sent
        before the pong has been read)."""
        if self.conn is None or not self.conn.alive:
            raise ConnectionLost(f"{self.name} has no session")
        reply = await self._request(self.conn, {"type": "ping"})
        if reply.get("type") != "pong":
            raise ConnectionLost(f"{self.name}: ping answered {reply}")

    async def until_seq(self, seq: int, timeout: float) -> bool:
        """Wait (without resubscribing) until the replica reached ``seq``."""
        try:
            async with asyncio.timeout(timeout), self.delivered:
                await self.delivered.wait_for(lambda: self.replica.seq >= seq)
        except TimeoutError:
            return False
        return True


class _Refused(Exception):
    """hello or subscribe was answered with an error (e.g. the edge cannot reach sync)."""

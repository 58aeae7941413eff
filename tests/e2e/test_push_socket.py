"""The same-host push socket (``SYNC_PUSH_SOCKET``, docs/operations.md): the edge's
pushes to sync over a Unix socket instead of gRPC, on SQLite and PostgreSQL; what a
bad frame, an oversized one or too many pushes get; the socket file's mode, a stale
or busy path, and stopping; the edge's fallback to gRPC while the socket is gone."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.common.lifecycle import BindError
from accord.common.push_socket import MAX_FRAME, frame, read_frame
from accord.edge import metrics as edge_metrics
from accord.edge.protocol import ProtocolError
from accord.edge.push_socket import SocketPushes
from accord.sync import metrics as sync_metrics
from accord.sync.app import serve as serve_sync
from accord.sync.settings import Settings as SyncSettings

from tests.support.epochs import store_url  # noqa: F401 (a fixture)
from tests.support.ports import free_ports
from tests.support.suite import UNPROTECTED_GRPC, Suite, start_in_process
from tests.support.wsclient import Client, make_token, set_change

pytestmark = pytest.mark.e2e

ROOM = "socket-room"


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short private directory (a Unix socket's path is at most 107 bytes)."""
    directory = tempfile.mkdtemp(prefix="accord-t-")
    yield Path(directory)
    shutil.rmtree(directory, ignore_errors=True)


def counter(metric: Any) -> Callable[[], float]:
    return lambda: float(metric._value.get())


async def joined(suite: Suite, client_id: str) -> Client:
    client = await suite.client()
    await client.hello(make_token(f"u-{client_id}"), client_id=client_id)
    await client.subscribe(ROOM)
    return client


def push_request(room: str, client_seq: int = 1, pushes: int = 1) -> pb.PushManyRequest:
    change = pb.Change(
        client_seq=client_seq,
        collection="todos",
        key="k",
        op=pb.Op(set=pb.SetOp(fields_json='{"n": 1}')),
    )
    return pb.PushManyRequest(
        pushes=[
            pb.PushRequest(room=room, user_id="u", client_id=f"c{i}", changes=[change])
            for i in range(pushes)
        ]
    )


async def exchange(path: Path, request: pb.PushManyRequest) -> pb.PushManyResponse:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(frame(request.SerializeToString()))
        data = await asyncio.wait_for(read_frame(reader), 10)
        assert data is not None, "sync closed the connection"
        return pb.PushManyResponse.FromString(data)
    finally:
        writer.close()


async def start_sync(stack: AsyncExitStack, database_url: str, path: Path) -> Any:
    (sync_port,) = free_ports(1)
    settings = SyncSettings.from_env(
        {
            **UNPROTECTED_GRPC,
            "METRICS_ADDR": "",
            "SYNC_ADDR": f"127.0.0.1:{sync_port}",
            "DATABASE_URL": database_url,
            "SYNC_PUSH_SOCKET": str(path),
        }
    )
    return await stack.enter_async_context(serve_sync(settings))


@pytest.fixture
async def socket_suite(store_url: str, socket_dir: Path) -> AsyncIterator[Suite]:  # noqa: F811
    env = {"SYNC_PUSH_SOCKET": str(socket_dir / "push.sock")}
    async with AsyncExitStack() as stack:
        suite = await start_in_process(stack, database_url=store_url, sync_env=env, edge_env=env)
        suite.extra["socket"] = socket_dir / "push.sock"
        yield suite


async def test_pushes_go_over_the_socket_and_reach_every_subscriber(socket_suite: Suite) -> None:
    requests = counter(sync_metrics.PUSH_SOCKET_REQUESTS)
    fallbacks = counter(edge_metrics.PUSH_SOCKET_FALLBACKS)
    inline = counter(sync_metrics.INLINE_BATCHES)
    before = requests(), fallbacks(), inline()
    async with await joined(socket_suite, "a") as writer, await joined(socket_suite, "b") as reader:
        for seq in range(1, 6):
            ack = await writer.push(ROOM, [set_change(seq, f"t{seq}", n=seq)])
            assert ack["type"] == "ack" and ack["results"][0]["status"] == "applied", ack
        got = [
            await reader.expect(lambda m: m["type"] == "changes" and m["changes"]) for _ in range(5)
        ]
        keys = [change["key"] for message in got for change in message["changes"]]
        assert keys == ["t1", "t2", "t3", "t4", "t5"]
        # A retry of a committed change is answered as a duplicate, as over gRPC.
        again = await writer.push(ROOM, [set_change(5, "t5", n=5)])
        assert again["results"][0]["status"] == "duplicate", again
    assert requests() - before[0] >= 6, "the pushes did not use the socket"
    assert fallbacks() == before[1], "no push should have gone over gRPC"
    assert inline() - before[2] >= 5, "the edge's Subscribe call was not named over the socket"


async def test_a_malformed_frame_ends_only_its_connection(
    socket_suite: Suite, caplog: pytest.LogCaptureFixture
) -> None:
    path = socket_suite.extra["socket"]
    reader, writer = await asyncio.open_unix_connection(str(path))
    with caplog.at_level(logging.WARNING, logger="accord.sync.push_socket"):
        writer.write(frame(b"\xff\xff\xff"))  # not a PushManyRequest
        assert await asyncio.wait_for(reader.read(), 10) == b"", "the connection stayed open"
    writer.close()
    assert any("push socket" in r.getMessage() for r in caplog.records), caplog.text
    response = await exchange(path, push_request(ROOM))
    assert response.results[0].WhichOneof("result") == "response"
    assert response.results[0].response.results[0].seq == 1


async def test_a_frame_over_the_limit_is_refused_unread(socket_suite: Suite) -> None:
    reader, writer = await asyncio.open_unix_connection(str(socket_suite.extra["socket"]))
    writer.write((MAX_FRAME + 1).to_bytes(4, "big"))
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()


async def test_too_many_pushes_are_refused_one_by_one_and_none_commits(socket_suite: Suite) -> None:
    response = await exchange(socket_suite.extra["socket"], push_request(ROOM, pushes=1001))
    assert len(response.results) == 1001
    assert {r.error.reason for r in response.results} == {"BAD_REQUEST"}
    assert "more than 1000 pushes" in response.results[0].error.message
    async with await joined(socket_suite, "late") as client:
        ok = await client.push(ROOM, [set_change(1, "first")])
        assert ok["results"][0]["seq"] == 1, "a refused push took a seq"


async def test_the_socket_file_is_private_and_gone_once_sync_stops(
    socket_dir: Path, tmp_path: Path
) -> None:
    path = socket_dir / "push.sock"
    async with AsyncExitStack() as stack:
        await start_sync(stack, f"sqlite:///{tmp_path}/a.db", path)
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
        idle_reader, idle_writer = await asyncio.open_unix_connection(str(path))
        idle_writer.write(frame(push_request(ROOM).SerializeToString()))
        assert await asyncio.wait_for(read_frame(idle_reader), 10)  # answered, then idle
    # Stopped: the connection idle between requests was ended, and the file removed.
    assert await asyncio.wait_for(idle_reader.read(), 10) == b""
    idle_writer.close()
    assert not path.exists()


async def test_a_stale_socket_is_replaced_and_a_busy_or_foreign_path_refused(
    socket_dir: Path, tmp_path: Path
) -> None:
    path = socket_dir / "push.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound, never listened on, closed: left behind as a crash would
    stale.close()
    async with AsyncExitStack() as stack:
        await start_sync(stack, f"sqlite:///{tmp_path}/a.db", path)
        response = await exchange(path, push_request(ROOM))
        assert response.results[0].response.results[0].seq == 1
        with pytest.raises(BindError, match=r"SYNC_PUSH_SOCKET=.*another process listens"):
            async with AsyncExitStack() as second:
                await start_sync(second, f"sqlite:///{tmp_path}/b.db", path)
        # The refused replica did not take the file away from the first.
        assert (await exchange(path, push_request(ROOM, client_seq=2))).results[0].response
    regular = socket_dir / "file"
    regular.write_text("not a socket")
    with pytest.raises(BindError, match="exists and is not a socket"):
        async with AsyncExitStack() as stack:
            await start_sync(stack, f"sqlite:///{tmp_path}/c.db", regular)
    assert regular.read_text() == "not a socket"
    with pytest.raises(BindError, match="SYNC_PUSH_SOCKET="):
        async with AsyncExitStack() as stack:
            await start_sync(stack, f"sqlite:///{tmp_path}/d.db", socket_dir / "no" / "p.sock")


async def test_the_edge_pushes_over_grpc_while_the_socket_cannot_be_reached(
    socket_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = {"SYNC_PUSH_SOCKET": str(socket_dir / "nobody.sock")}
    fallbacks = counter(edge_metrics.PUSH_SOCKET_FALLBACKS)
    before = fallbacks()
    async with AsyncExitStack() as stack:
        suite = await start_in_process(
            stack, database_url=f"sqlite:///{tmp_path}/accord.db", edge_env=missing
        )
        with caplog.at_level(logging.WARNING, logger="accord.edge.push_socket"):
            async with await joined(suite, "a") as writer:
                for seq in (1, 2):
                    ack = await writer.push(ROOM, [set_change(seq, "k", n=seq)])
                    assert ack["results"][0]["seq"] == seq, ack
    assert fallbacks() - before >= 2
    warnings = [r.getMessage() for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert len(warnings) == 1, warnings  # said once, not per push


class Recorded:
    """The gRPC stream's stand-in for ``SocketPushes``'s fallback: what it was given."""

    def __init__(self) -> None:
        self.requests: list[pb.PushManyRequest] = []

    async def exchange(self, request: pb.PushManyRequest) -> pb.PushManyResponse:
        self.requests.append(request)
        return pb.PushManyResponse()


async def test_a_connection_lost_in_an_exchange_fails_it_and_the_next_reconnects(
    socket_dir: Path,
) -> None:
    path = socket_dir / "flaky.sock"
    seen: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await read_frame(reader)
        assert data is not None
        seen.append(len(pb.PushManyRequest.FromString(data).pushes))
        if len(seen) > 1:  # the first connection dies before answering
            writer.write(frame(pb.PushManyResponse(results=[pb.PushResult()]).SerializeToString()))
            await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(serve, path=str(path))
    fallback = Recorded()
    pushes = SocketPushes(str(path), fallback, timeout=5)
    try:
        with pytest.raises(ProtocolError) as caught:
            await pushes.exchange(push_request(ROOM))
        assert caught.value.code == "UNAVAILABLE"
        answered = await pushes.exchange(push_request(ROOM, pushes=2))
        assert len(answered.results) == 1 and seen == [1, 2]
        assert fallback.requests == []
    finally:
        pushes.close()
        server.close()
        await server.wait_closed()


async def test_a_connection_sync_ended_between_exchanges_is_replaced_first(
    socket_dir: Path, tmp_path: Path
) -> None:
    """A sync replica that stops ends its idle connections; the edge's next exchange goes to
    the replica that took its place, not into the closed connection."""
    path = socket_dir / "push.sock"
    fallback = Recorded()
    pushes = SocketPushes(str(path), fallback, timeout=5)
    try:
        async with AsyncExitStack() as stack:
            await start_sync(stack, f"sqlite:///{tmp_path}/a.db", path)
            first = await pushes.exchange(push_request(ROOM))
            assert first.results[0].response.results[0].seq == 1
        async with AsyncExitStack() as stack:
            await start_sync(stack, f"sqlite:///{tmp_path}/a.db", path)
            again = await pushes.exchange(push_request(ROOM, client_seq=2))
            assert again.results[0].response.results[0].seq == 2
        assert fallback.requests == []
    finally:
        pushes.close()


async def test_the_edge_returns_to_the_socket_once_it_is_back(
    socket_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from accord.edge import push_socket as edge_socket

    monkeypatch.setattr(edge_socket, "RETRY_SECONDS", 0.05)
    path = socket_dir / "push.sock"
    fallback = Recorded()
    pushes = SocketPushes(str(path), fallback, timeout=5)
    try:
        with caplog.at_level(logging.INFO, logger="accord.edge.push_socket"):
            await pushes.exchange(push_request(ROOM))  # nobody listens yet: over "gRPC"
            assert len(fallback.requests) == 1
            async with AsyncExitStack() as stack:
                await start_sync(stack, f"sqlite:///{tmp_path}/a.db", path)
                await asyncio.sleep(0.1)  # past the retry time
                answered = await pushes.exchange(push_request(ROOM))
                assert answered.results[0].response.results[0].seq == 1
        assert len(fallback.requests) == 1, "the second exchange did not use the socket"
        said = [r.getMessage() for r in caplog.records]
        assert any("cannot be reached" in m for m in said) and any(
            "reached again" in m for m in said
        )
    finally:
        pushes.close()

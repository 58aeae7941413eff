"""The gRPC service through a real server on port 0 and a real channel."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1.sync_pb2_grpc import SyncStub
from accord.common.grpc_security import ServerSecurity
from accord.common.grpcutil import check_health, create_channel, reason_of
from accord.sync.app import SERVICE_NAME, Running, serve
from accord.sync.settings import Settings, SqliteTarget
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.sync.sync_helpers import (
    add_change,
    delete_change,
    incr_change,
    insert_change,
    op_change,
    push,
    remove_items_change,
    set_change,
)

DEADLINE = 10.0
MAX_RECORD = 1024


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        sync_addr=("127.0.0.1", 0),
        grpc=ServerSecurity.unprotected(),
        metrics_addr=None,
        database=SqliteTarget(str(tmp_path / "sync.db")),
        max_batch_changes=10,
        max_record_bytes=MAX_RECORD,
        max_json_depth=4,
    )


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async with serve(settings, grace=1.0) as started:
        yield started


@pytest.fixture
async def channel(running: Running) -> AsyncIterator[grpc.aio.Channel]:
    async with create_channel(f"127.0.0.1:{running.port}") as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> SyncStub:
    return SyncStub(channel)


async def pull(stub: SyncStub, room: str, **kw: Any) -> list[pb.PullResponse]:
    return [r async for r in stub.Pull(pb.PullRequest(room=room, **kw), timeout=DEADLINE)]


async def read(call: Any) -> pb.SubscribeResponse:
    response = await asyncio.wait_for(call.read(), DEADLINE)
    assert response is not grpc.aio.EOF
    return response  # type: ignore[no-any-return]


async def test_health_is_serving_for_the_server_and_the_service(channel: grpc.aio.Channel) -> None:
    assert await check_health(channel, "")
    assert await check_health(channel, SERVICE_NAME)
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=DEADLINE
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_push_head_and_pull(stub: SyncStub) -> None:
    ack = await stub.Push(
        push("todo", set_change(1, "t-1", title="milk"), incr_change(2, "t-1", "votes", 2)),
        timeout=DEADLINE,
    )
    assert ack.room == "todo" and ack.head == 2
    assert [(r.client_seq, r.seq, r.status) for r in ack.results] == [
        (1, 1, pb.CHANGE_STATUS_APPLIED),
        (2, 2, pb.CHANGE_STATUS_APPLIED),
    ]
    assert all(r.ts > 0 and r.ts_adjusted for r in ack.results)
    retry = await stub.Push(push("todo", set_change(2, "t-1", title="x")), timeout=DEADLINE)
    assert [(r.seq, r.status) for r in retry.results] == [(2, pb.CHANGE_STATUS_DUPLICATE)]
    assert (await stub.Head(pb.HeadRequest(room="todo"), timeout=DEADLINE)).head == 2
    assert (await stub.Head(pb.HeadRequest(room="empty"), timeout=DEADLINE)).head == 0

    changes = await pull(stub, "todo", since=1)
    assert changes[0].head == 2
    committed = changes[1].changes.changes
    assert [(c.seq, c.client_id, c.user_id, c.client_seq) for c in committed] == [
        (2, "c1", "u1", 2)
    ]
    assert json.loads(committed[0].patch_json) == {"set": {"votes": 2}}

    snapshot = await pull(stub, "todo", since=0)
    assert snapshot[0].head == 2
    chunk = snapshot[1].snapshot
    assert (chunk.seq, chunk.last) == (2, True)
    assert [(r.key, json.loads(r.value_json)) for r in chunk.records] == [
        ("t-1", {"title": "milk", "votes": 2})
    ]
    empty = await pull(stub, "empty")
    assert [(r.WhichOneof("item"), r.head) for r in empty] == [("head", 0)]
    assert empty[0].epoch  # an empty room has an epoch too


async def test_conflicts_travel_in_the_ack(stub: SyncStub) -> None:
    await stub.Push(push("r", set_change(1, "a", ts=200, title="new")), timeout=DEADLINE)
    ack = await stub.Push(
        push("r", set_change(1, "a", ts=100, title="old"), client_id="c2"), timeout=DEADLINE
    )
    conflicts = ack.results[0].conflicts
    assert [(c.field, c.winner_ts, c.winner_client_id) for c in conflicts] == [("title", 200, "c1")]


async def test_list_conflicts_names_the_loser_and_the_winner(stub: SyncStub) -> None:
    await stub.Push(push("r", set_change(1, "a", ts=200, title="new")), timeout=DEADLINE)
    for i in (1, 2):
        await stub.Push(
            push("r", set_change(i, "a", ts=100 + i, title="old"), client_id="c2", user_id="u2"),
            timeout=DEADLINE,
        )
    answer = await stub.ListConflicts(pb.ListConflictsRequest(room="r"), timeout=DEADLINE)
    assert [
        (c.seq, c.field, c.user_id, c.client_id, c.client_seq, c.ts) for c in answer.conflicts
    ] == [
        (3, "title", "u2", "c2", 2, 102),
        (2, "title", "u2", "c2", 1, 101),
    ]
    winner = answer.conflicts[0]
    assert (winner.winner_ts, winner.winner_client_id, winner.winner_user_id) == (200, "c1", "u1")
    assert winner.winner_client_seq == 1
    page = await stub.ListConflicts(
        pb.ListConflictsRequest(room="r", limit=1, before=3), timeout=DEADLINE
    )
    assert [c.seq for c in page.conflicts] == [2]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListConflicts(pb.ListConflictsRequest(room="bad room"), timeout=DEADLINE)
    assert reason_of(caught.value) == "BAD_REQUEST"


async def test_set_and_list_ops_over_grpc(stub: SyncStub) -> None:
    ack = await stub.Push(
        push(
            "r",
            add_change(1, "a", "tags", "x", "y"),
            insert_change(2, "a", "text", "", "h", "i"),
            remove_items_change(3, "a", "text", "2.0@c1"),
        ),
        timeout=DEADLINE,
    )
    assert [r.status for r in ack.results] == [pb.CHANGE_STATUS_APPLIED] * 3
    changes = (await pull(stub, "r", since=1))[1].changes.changes
    assert [json.loads(c.patch_json) for c in changes] == [
        {"set": {"text": [{"id": "2.0@c1", "value": "h"}, {"id": "2.1@c1", "value": "i"}]}},
        {"list": {"text": [{"delete": "2.0@c1"}]}},
    ]
    record = (await pull(stub, "r"))[1].snapshot.records[0]
    assert json.loads(record.value_json) == {
        "tags": ["x", "y"],
        "text": [{"id": "2.1@c1", "value": "i"}],
    }


async def test_subscribe_streams_committed_changes_per_room_in_order(stub: SyncStub) -> None:
    await stub.Push(push("a", set_change(1, "before")), timeout=DEADLINE)
    call = stub.Subscribe()
    await call.write(pb.SubscribeRequest(add=["a", "b"]))
    confirmations = {(await read(call)).changes.room for _ in range(2)}
    assert confirmations == {"a", "b"}
    await stub.Push(push("a", set_change(2, "x", v=1), set_change(3, "y")), timeout=DEADLINE)
    await stub.Push(push("b", delete_change(1, "z")), timeout=DEADLINE)
    await stub.Push(push("a", incr_change(4, "x", "n", 1)), timeout=DEADLINE)
    first, second, third = [await read(call) for _ in range(3)]
    assert (first.changes.room, [c.seq for c in first.changes.changes]) == ("a", [2, 3])
    assert (second.changes.room, [c.seq for c in second.changes.changes]) == ("b", [1])
    assert (third.changes.room, [c.seq for c in third.changes.changes]) == ("a", [4])
    assert json.loads(first.changes.changes[0].patch_json) == {"set": {"v": 1}}

    await call.write(pb.SubscribeRequest(remove=["a"]))
    await call.write(pb.SubscribeRequest(add=["c"]))
    assert (await read(call)).changes.room == "c"
    await stub.Push(push("a", set_change(5, "x")), timeout=DEADLINE)
    await stub.Push(push("c", set_change(1, "x")), timeout=DEADLINE)
    after = await read(call)
    assert (after.changes.room, [c.seq for c in after.changes.changes]) == ("c", [1])
    await call.done_writing()
    assert await asyncio.wait_for(call.read(), DEADLINE) is grpc.aio.EOF


def bad(**overrides: Any) -> pb.PushRequest:
    request = push("room", set_change(1, "k", x=1))
    for name, value in overrides.items():
        if name == "changes":
            del request.changes[:]
            request.changes.extend(value)
        else:
            setattr(request, name, value)
    return request


def raw_set(client_seq: int, fields_json: str, **kw: Any) -> pb.Change:
    return pb.Change(
        client_seq=client_seq,
        collection=kw.get("collection", "todos"),
        key=kw.get("key", "k"),
        ts=kw.get("ts", 0),
        op=pb.Op(set=pb.SetOp(fields_json=fields_json)),
    )


# An Op whose kind is field 99: what a newer client's op looks like to this server.
FUTURE_OP = pb.Op.FromString(b"\x9a\x06\x00")

BAD_REQUESTS = {
    "room with a space": bad(room="bad room"),
    "empty room": bad(room=""),
    "room too long": bad(room="r" * 129),
    "client_id bad chars": bad(client_id="c/1"),
    "client_id too long": bad(client_id="c" * 65),
    "empty user_id": bad(user_id=""),
    "user_id too long": bad(user_id="u" * 257),
    "no changes": bad(changes=[]),
    "client_seq zero": bad(changes=[set_change(0, "k")]),
    "client_seq repeated": bad(changes=[set_change(1, "k"), set_change(1, "j")]),
    "client_seq decreasing": bad(changes=[set_change(2, "k"), set_change(1, "j")]),
    "empty collection": bad(changes=[raw_set(1, "{}", collection="")]),
    "key too long": bad(changes=[raw_set(1, "{}", key="k" * 257)]),
    "negative ts": bad(changes=[raw_set(1, "{}", ts=-1)]),
    "fields not json": bad(changes=[raw_set(1, "{nope")]),
    "fields not an object": bad(changes=[raw_set(1, "[1, 2]")]),
    "fields with NaN": bad(changes=[raw_set(1, '{"x": NaN}')]),
    "fields with a number beyond a double": bad(changes=[raw_set(1, '{"x": 1e999}')]),
    "fields too deep": bad(changes=[raw_set(1, '{"a": {"b": {"c": {"d": {}}}}}')]),
    "empty field name": bad(changes=[raw_set(1, '{"": 1}')]),
    # PostgreSQL text cannot hold U+0000, nor UTF-8 a lone surrogate: refused on every store.
    "NUL in collection": bad(changes=[raw_set(1, "{}", collection="to\x00dos")]),
    "NUL in key": bad(changes=[raw_set(1, "{}", key="k\x00")]),
    "NUL in user_id": bad(user_id="u\x00"),
    "NUL in a field name": bad(changes=[raw_set(1, '{"a\\u0000": 1}')]),
    "NUL in an incr field": bad(changes=[incr_change(1, "k", "n\x00", 1)]),
    "lone surrogate in a value": bad(changes=[raw_set(1, '{"x": "\\ud800"}')]),
    "lone surrogate in a field name": bad(changes=[raw_set(1, '{"\\udc00": 1}')]),
    "lone surrogate in a nested value": bad(changes=[raw_set(1, '{"x": [{"y": "a\\udbff"}]}')]),
    "lone surrogate in a set element": bad(changes=[add_change(1, "k", "tags", "\ud800")]),
    "empty op": bad(changes=[pb.Change(client_seq=1, collection="c", key="k")]),
    "incr without field": bad(changes=[incr_change(1, "k", "", 1)]),
    "add without values": bad(changes=[add_change(1, "k", "tags")]),
    "add of an object": bad(changes=[add_change(1, "k", "tags", {"a": 1})]),
    "add of a float": bad(changes=[add_change(1, "k", "tags", 0.5)]),
    "add of a huge integer": bad(changes=[add_change(1, "k", "tags", 2**60)]),
    "add without field": bad(changes=[add_change(1, "k", "", "x")]),
    "remove values not an array": bad(
        changes=[op_change(1, "k", pb.Op(remove=pb.RemoveOp(field="t", values_json='"x"')))]
    ),
    "insert values too deep": bad(
        changes=[insert_change(1, "k", "text", "", raw='[{"a": {"b": {"c": {}}}}]')]
    ),
    "insert after an unknown element": bad(changes=[insert_change(1, "k", "text", "1.0@x", "a")]),
    "remove of an unknown element": bad(changes=[remove_items_change(1, "k", "text", "1.0@x")]),
    "remove of no element": bad(changes=[remove_items_change(1, "k", "text")]),
}
TOO_LARGE = {
    "too many changes": bad(changes=[set_change(i, "k") for i in range(1, 12)]),
    "op too large": bad(changes=[raw_set(1, json.dumps({"x": "y" * MAX_RECORD}))]),
}


@pytest.mark.parametrize(
    ("request_", "code", "reason"),
    [
        pytest.param(r, grpc.StatusCode.INVALID_ARGUMENT, "BAD_REQUEST", id=n)
        for n, r in BAD_REQUESTS.items()
    ]
    + [
        pytest.param(r, grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_LARGE", id=n)
        for n, r in TOO_LARGE.items()
    ]
    + [
        pytest.param(
            bad(changes=[set_change(1, "k"), op_change(2, "k", FUTURE_OP)]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "UNSUPPORTED",
            id="an op kind from a newer client",
        )
    ],
)
async def test_invalid_pushes_fail_with_code_and_reason_and_store_nothing(
    stub: SyncStub, request_: pb.PushRequest, code: grpc.StatusCode, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Push(request_, timeout=DEADLINE)
    assert caught.value.code() == code
    assert reason_of(caught.value) == reason
    assert (await stub.Head(pb.HeadRequest(room="room"), timeout=DEADLINE)).head == 0
    ok = await stub.Push(push("room", set_change(1, "k", x=1)), timeout=DEADLINE)
    assert ok.results[0].seq == 1


async def test_a_record_growing_past_the_limit_is_too_large(stub: SyncStub) -> None:
    half = "x" * (MAX_RECORD // 2)
    await stub.Push(push("r", set_change(1, "k", a=half)), timeout=DEADLINE)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Push(
            push("r", set_change(2, "j", b=1), set_change(3, "k", b=half)), timeout=DEADLINE
        )
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(caught.value) == "TOO_LARGE"
    assert (await stub.Head(pb.HeadRequest(room="r"), timeout=DEADLINE)).head == 1


async def test_bad_reads_fail_with_code_and_reason(stub: SyncStub) -> None:
    for call in (
        lambda: stub.Head(pb.HeadRequest(room="no spaces"), timeout=DEADLINE),
        lambda: pull(stub, "no spaces"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason_of(caught.value) == "BAD_REQUEST"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pull(stub, "r", since=5, changes_only=True)
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE


async def test_subscribing_to_a_bad_room_ends_the_stream_with_bad_request(stub: SyncStub) -> None:
    call = stub.Subscribe()
    await call.write(pb.SubscribeRequest(add=["bad room"]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call.read(), DEADLINE)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == "BAD_REQUEST"
    fresh = stub.Subscribe()
    await fresh.write(pb.SubscribeRequest(add=["good"]))
    assert (await read(fresh)).changes.room == "good"
    fresh.cancel()


async def test_metrics_are_served(settings: Settings) -> None:
    with_metrics = dataclasses.replace(settings, metrics_addr=("127.0.0.1", 0))
    async with serve(with_metrics, grace=1.0) as running:
        async with create_channel(f"127.0.0.1:{running.port}") as channel:
            await SyncStub(channel).Push(push("r", set_change(1, "k", x=1)), timeout=DEADLINE)
        assert running.metrics_port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", running.metrics_port)
        writer.write(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        body = (await asyncio.wait_for(reader.read(), DEADLINE)).decode()
        writer.close()
    for name in (
        "accord_sync_push_seconds",
        'accord_sync_changes_total{status="applied"}',
        "accord_sync_conflicts_total",
        "accord_sync_subscribers",
        'accord_sync_grpc_handling_seconds_count{method="Push"}',
    ):
        assert name in body


async def test_push_many_answers_each_push_on_its_own(stub: SyncStub) -> None:
    half = "x" * (MAX_RECORD // 2)
    call = stub.Subscribe()
    await call.write(pb.SubscribeRequest(add=["r"]))
    assert not (await read(call)).changes.changes  # the confirmation
    response = await stub.PushMany(
        pb.PushManyRequest(
            pushes=[
                push("r", set_change(1, "k", a=half)),
                push("bad room", set_change(1, "k", a=1)),
                push("r", set_change(1, "k", b=half), client_id="c2"),  # k too large
                push("q", set_change(1, "k", a=1)),
                push("r", set_change(2, "j", a=2)),
                push("r", *[set_change(n, f"k{n}") for n in range(3, 20)]),  # over 10
            ]
        ),
        timeout=DEADLINE,
    )
    kinds = [r.WhichOneof("result") for r in response.results]
    assert kinds == ["response", "error", "error", "response", "response", "error"]
    errors = [r.error for r in response.results if r.HasField("error")]
    assert [e.reason for e in errors] == ["BAD_REQUEST", "TOO_LARGE", "TOO_LARGE"]
    assert all(e.message for e in errors)
    first, other_room, second = (r.response for r in response.results if r.HasField("response"))
    assert (first.room, first.results[0].seq) == ("r", 1)
    assert (other_room.room, other_room.results[0].seq) == ("q", 1)
    assert (second.results[0].seq, second.head) == (2, 2)
    # Subscribers get the room's committed changes, in order, with no gap.
    seqs: list[int] = []
    while len(seqs) < 2:
        seqs += [c.seq for c in (await read(call)).changes.changes]
    assert seqs == [1, 2]
    call.cancel()


async def test_push_many_refuses_too_many_pushes_and_accepts_none(stub: SyncStub) -> None:
    empty = await stub.PushMany(pb.PushManyRequest(), timeout=DEADLINE)
    assert list(empty.results) == []
    many = [push(f"r{n}", set_change(1, "k", a=1)) for n in range(1001)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PushMany(pb.PushManyRequest(pushes=many), timeout=DEADLINE)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == "BAD_REQUEST"
    assert (await stub.Head(pb.HeadRequest(room="r0"), timeout=DEADLINE)).head == 0


async def test_push_stream_answers_each_request_in_order(stub: SyncStub) -> None:
    call = stub.PushStream()
    await call.write(pb.PushManyRequest(pushes=[push("r", set_change(1, "k", a=1))]))
    await call.write(
        pb.PushManyRequest(
            pushes=[push("bad room", set_change(1, "k", a=1)), push("r", set_change(2, "k", a=2))]
        )
    )
    await call.write(pb.PushManyRequest())
    first, second, empty = [await asyncio.wait_for(call.read(), DEADLINE) for _ in range(3)]
    assert [r.response.results[0].seq for r in first.results] == [1]
    assert [r.WhichOneof("result") for r in second.results] == ["error", "response"]
    assert second.results[0].error.reason == "BAD_REQUEST"
    assert second.results[1].response.results[0].seq == 2
    assert list(empty.results) == []
    # Over the PushMany limit: the stream ends with INVALID_ARGUMENT, nothing committed.
    many = [push(f"r{n}", set_change(1, "k", a=1)) for n in range(1001)]
    await call.write(pb.PushManyRequest(pushes=many))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call.read(), DEADLINE)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == "BAD_REQUEST"
    assert (await stub.Head(pb.HeadRequest(room="r"), timeout=DEADLINE)).head == 2
    assert (await stub.Head(pb.HeadRequest(room="r0"), timeout=DEADLINE)).head == 0


async def test_the_edges_push_stream_reopens_after_a_failure_and_in_time(
    stub: SyncStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.edge import backends

    stream = backends.PushStream(stub, timeout=DEADLINE)
    answer = await stream.exchange(pb.PushManyRequest(pushes=[push("r", set_change(1, "k"))]))
    first_call = stream._call
    assert answer.results[0].response.results[0].seq == 1
    # Over the limit: the stream fails with the status, and is dropped.
    many = [push(f"r{n}", set_change(1, "k", a=1)) for n in range(1001)]
    with pytest.raises(grpc.aio.AioRpcError):
        await stream.exchange(pb.PushManyRequest(pushes=many))
    assert stream._call is None
    answer = await stream.exchange(pb.PushManyRequest(pushes=[push("r", set_change(2, "k"))]))
    assert answer.results[0].response.results[0].seq == 2
    assert stream._call is not None and stream._call is not first_call
    # A stream older than PUSH_STREAM_SECONDS is replaced before the next exchange.
    kept = stream._call
    monkeypatch.setattr(backends, "PUSH_STREAM_SECONDS", 0.0)
    answer = await stream.exchange(pb.PushManyRequest(pushes=[push("r", set_change(3, "k"))]))
    assert answer.results[0].response.results[0].seq == 3
    assert stream._call is not kept and kept.cancelled()


async def test_push_streams_end_between_requests_when_the_replica_shuts_down(
    settings: Settings,
) -> None:
    from accord.edge import backends

    stack = contextlib.AsyncExitStack()
    running = await stack.enter_async_context(serve(settings, grace=20.0))
    async with create_channel(f"127.0.0.1:{running.port}") as channel:
        stream = backends.PushStream(SyncStub(channel), timeout=DEADLINE)
        push_one = pb.PushManyRequest(pushes=[push("r", set_change(1, "k"))])
        answer = await stream.exchange(push_one)
        assert answer.results[0].response.results[0].seq == 1
        ended = stream._call
        stopping = asyncio.create_task(stack.aclose())
        # Ended at once and cleanly, not cut at the end of the 20 s grace.
        assert await asyncio.wait_for(ended.read(), DEADLINE) is grpc.aio.EOF
        assert await ended.code() == grpc.StatusCode.OK
        await asyncio.wait_for(stopping, DEADLINE)


async def test_a_push_stream_cancelled_by_its_caller_leaves_no_unretrieved_task(
    stub: SyncStub,
) -> None:
    """The edge replaces its stream every 20 s by cancelling it between exchanges: the
    servicer's pending read of the next request must not end as an error nobody read."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        for n in range(1, 4):
            call = stub.PushStream()
            await call.write(pb.PushManyRequest(pushes=[push("r", set_change(n, "k", a=n))]))
            answer = await asyncio.wait_for(call.read(), DEADLINE)
            assert answer.results[0].response.results[0].seq == n
            call.cancel()
        for _ in range(20):  # let the servicer see the cancellations and finish
            await asyncio.sleep(0.05)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert [c.get("message") for c in reported] == []


async def test_the_edges_push_stream_times_out_as_unavailable(stub: SyncStub) -> None:
    from accord.edge import backends
    from accord.edge.protocol import ProtocolError

    stream = backends.PushStream(stub, timeout=0.000001)
    with pytest.raises(ProtocolError) as caught:
        await stream.exchange(pb.PushManyRequest(pushes=[push("r", set_change(1, "k"))]))
    assert caught.value.code == "UNAVAILABLE"
    assert stream._call is None


async def test_a_batched_subscriber_gets_several_rooms_per_message(stub: SyncStub) -> None:
    call = stub.Subscribe()
    await call.write(pb.SubscribeRequest(add=["a", "b"], batched=True))
    confirmed: set[str] = set()
    while confirmed != {"a", "b"}:
        message = await read(call)
        assert not message.HasField("changes")
        confirmed |= {b.room for b in message.batches if not b.changes}
    await stub.PushMany(
        pb.PushManyRequest(
            pushes=[
                push("a", set_change(1, "k", v=1)),
                push("b", set_change(1, "k", v=1)),
                push("a", set_change(1, "j", v=2), client_id="c2"),
            ]
        ),
        timeout=DEADLINE,
    )
    seen: dict[str, list[int]] = {"a": [], "b": []}
    messages = 0
    while len(seen["a"]) < 2 or len(seen["b"]) < 1:
        message = await read(call)
        messages += 1
        assert not message.HasField("changes")
        for batch in message.batches:
            seen[batch.room] += [c.seq for c in batch.changes]
    assert seen == {"a": [1, 2], "b": [1]}
    # One group commit, published as one batch per room, read from the bus at once.
    assert messages == 1
    call.cancel()


async def test_the_epoch_on_head_pull_and_the_subscribe_confirmation(stub: SyncStub) -> None:
    empty = await stub.Head(pb.HeadRequest(room="e"), timeout=DEADLINE)
    await stub.Push(push("e", *(set_change(i, f"k{i}", n=i) for i in (1, 2, 3))), timeout=DEADLINE)
    head = await stub.Head(pb.HeadRequest(room="e"), timeout=DEADLINE)
    assert (empty.head, head.head) == (0, 3) and empty.epoch and head.epoch
    call = stub.Subscribe()
    await call.write(pb.SubscribeRequest(add=["e", "nothing-yet"]))
    confirmed = {}
    for _ in range(2):
        batch = (await read(call)).changes
        assert not batch.changes
        confirmed[batch.room] = batch.epoch
    assert confirmed["e"] == head.epoch
    assert confirmed["nothing-yet"] == empty.epoch  # every empty room: the initial epoch
    await stub.Push(push("e", set_change(4, "k4", n=4)), timeout=DEADLINE)
    live = (await read(call)).changes
    assert [c.seq for c in live.changes] == [4] and live.epoch == ""  # only on confirmations
    call.cancel()
    first = await pull(stub, "e", since=2)
    assert (first[0].head, first[0].epoch) == (4, head.epoch)
    assert all(not r.epoch for r in first[1:])


async def test_pull_with_a_stale_epoch_gets_a_snapshot_and_with_the_right_or_none_the_suffix(
    stub: SyncStub,
) -> None:
    await stub.Push(push("r", *(set_change(i, f"k{i}", n=i) for i in (1, 2, 3))), timeout=DEADLINE)
    epoch = (await stub.Head(pb.HeadRequest(room="r"), timeout=DEADLINE)).epoch
    for given in (epoch, ""):
        suffix = await pull(stub, "r", since=1, epoch=given)
        assert [r.WhichOneof("item") for r in suffix] == ["head", "changes"]
        assert [c.seq for c in suffix[1].changes.changes] == [2, 3]
    stale = await pull(stub, "r", since=1, epoch="0123456789abcdef")
    assert [r.WhichOneof("item") for r in stale] == ["head", "snapshot"]
    assert (stale[0].head, stale[0].epoch) == (3, epoch)
    assert (stale[1].snapshot.seq, stale[1].snapshot.last) == (3, True)
    assert sorted(r.key for r in stale[1].snapshot.records) == ["k1", "k2", "k3"]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await pull(stub, "r", since=1, epoch="0123456789abcdef", changes_only=True)
    assert raised.value.code() == grpc.StatusCode.OUT_OF_RANGE

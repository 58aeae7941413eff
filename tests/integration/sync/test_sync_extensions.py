"""Sync extensions on every store: before_commit refuses or rewrites one change at a time,
failures are that change's INTERNAL/UNAVAILABLE, after_commit sees each room's log once in
order, from a durable cursor, across restarts, and compaction waits for it."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.api.sync.v1.sync_pb2_grpc import SyncStub
from accord.common.grpc_security import ServerSecurity
from accord.common.grpcutil import create_channel
from accord.extensions import (
    AfterCommit,
    BeforeCommit,
    BeforeCommitReply,
    Extension,
    Refuse,
    Rewrite,
)
from accord.sync import wire
from accord.sync.app import serve
from accord.sync.dispatch import Dispatcher
from accord.sync.engine import Engine
from accord.sync.extensions import Screen
from accord.sync.hlc import HybridClock
from accord.sync.metrics import EXTENSION_ERRORS
from accord.sync.model import Limits, PushOutcome, Retention
from accord.sync.settings import Settings, parse_database_url
from accord.sync.store import Store

from tests.integration.sync.sync_helpers import push, set_change

LIMITS = Limits()
TIMEOUT = 0.2


class Gate:
    """Refuses titles with "no", masks "darn", and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[BeforeCommit] = []

    async def before_commit(self, change: BeforeCommit) -> BeforeCommitReply:
        self.seen.append(change)
        title = change.op.get("fields", {}).get("title")
        if title == "no":
            return Refuse("FORBIDDEN", "no titles of no")
        if isinstance(title, str) and "darn" in title:
            return Rewrite({"kind": "set", "fields": {"title": title.replace("darn", "****")}})
        return None


class Flaky:
    """before_commit raises on "boom" and sleeps past the timeout on "slow"."""

    async def before_commit(self, change: BeforeCommit) -> BeforeCommitReply:
        title = change.op.get("fields", {}).get("title")
        if title == "boom":
            raise RuntimeError("boom")
        if title == "slow":
            await asyncio.sleep(5)
        return None


class Recorder:
    """after_commit: records every (room, seq); fails the first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.seqs: list[tuple[str, int]] = []
        self.failures = failures
        self.calls = 0
        self.delivered = asyncio.Event()

    async def after_commit(self, committed: AfterCommit) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("downstream is down")
        self.seqs.extend((committed.room, c.seq) for c in committed.changes)
        self.delivered.set()


def screened(store: Store, *instances: object, retention: Retention | None = None) -> Engine:
    extensions = [Extension(f"ext{i}", obj) for i, obj in enumerate(instances)]
    return Engine(
        store,
        HybridClock(60_000_000),
        LIMITS,
        retention,
        screen=Screen(extensions, TIMEOUT, LIMITS),
    )


async def do_push(engine: Engine, request: pb.PushRequest) -> PushOutcome:
    return await engine.push(wire.push_batch(request, LIMITS))


async def test_a_refused_change_is_that_changes_error_and_the_rest_commit(store: Store) -> None:
    gate = Gate()
    engine = screened(store, gate)
    outcome = await do_push(
        engine,
        push(
            "r",
            set_change(1, "a", title="yes"),
            set_change(2, "b", title="no"),
            set_change(3, "c", title="ok"),
        ),
    )
    first, refused, third = outcome.results
    assert (first.seq, third.seq, outcome.head) == (1, 2, 2)
    assert refused.seq == 0 and refused.error is not None
    assert (refused.error.code, refused.error.message) == ("FORBIDDEN", "no titles of no")
    response = wire.push_response(outcome)
    assert response.results[1].error.reason == "FORBIDDEN"
    assert response.results[1].status == pb.CHANGE_STATUS_UNSPECIFIED
    assert response.results[2].status == pb.CHANGE_STATUS_APPLIED
    logged = await store.changes("r", 0, 10, 10)
    assert [(c.seq, c.key) for c in logged] == [(1, "a"), (2, "c")]
    # The refused change is passed by client_seq 3: a retry is a duplicate the log lacks.
    again = await do_push(engine, push("r", set_change(2, "b", title="no")))
    assert again.results[0].duplicate and again.results[0].seq == 0


async def test_a_trailing_refused_change_is_judged_again_on_retry(store: Store) -> None:
    engine = screened(store, Gate())
    outcome = await do_push(engine, push("r", set_change(1, "a", title="no")))
    assert outcome.results[0].error is not None and outcome.head == 0
    retry = await do_push(engine, push("r", set_change(1, "a", title="fine now")))
    assert retry.results[0].seq == 1 and retry.results[0].error is None


async def test_a_rewrite_is_what_is_stored_and_delivered(store: Store) -> None:
    engine = screened(store, Gate())
    outcome = await do_push(engine, push("r", set_change(1, "m", title="darn it")))
    (change,) = outcome.committed
    assert json.loads(change.patch_json) == {"set": {"title": "**** it"}}
    assert json.loads(change.op_json) == {"kind": "set", "fields": {"title": "**** it"}}
    pulled = [item async for item in engine.pull("r", 0, 0, 0, False)]
    assert json.loads(pulled[1].records[0].value_json) == {"title": "**** it"}  # type: ignore[union-attr]


async def test_before_commit_sees_the_record_as_the_earlier_changes_left_it(store: Store) -> None:
    gate = Gate()
    engine = screened(store, gate)
    await do_push(engine, push("r", set_change(1, "a", title="one"), set_change(2, "a", done=True)))
    await do_push(engine, push("r", set_change(3, "a", title="three")))
    assert [c.record for c in gate.seen] == [
        None,
        {"title": "one"},
        {"title": "one", "done": True},
    ]
    first = gate.seen[0]
    assert (first.room, first.user_id, first.client_id, first.client_seq) == ("r", "u1", "c1", 1)


@pytest.mark.parametrize(("title", "code"), [("boom", "INTERNAL"), ("slow", "UNAVAILABLE")])
async def test_a_failing_hook_fails_that_change_only_and_is_counted(
    store: Store, title: str, code: str
) -> None:
    engine = screened(store, Flaky())
    counted = EXTENSION_ERRORS.labels("before_commit", "ext0")
    before = counted._value.get()  # type: ignore[attr-defined]
    outcome = await do_push(
        engine, push("r", set_change(1, "a", title=title), set_change(2, "b", title="fine"))
    )
    failed, fine = outcome.results
    assert failed.error is not None and failed.error.code == code
    assert "boom" not in failed.error.message
    assert fine.seq == 1 and fine.error is None
    assert counted._value.get() == before + 1  # type: ignore[attr-defined]
    after = await do_push(engine, push("r", set_change(3, "c", title="fine")))
    assert after.results[0].seq == 2


async def deliver_until(recorder: Recorder, count: int) -> None:
    async def wait() -> None:
        while len(recorder.seqs) < count:
            recorder.delivered.clear()
            await recorder.delivered.wait()

    await asyncio.wait_for(wait(), 10)


async def test_after_commit_sees_every_change_once_in_order_across_restarts(store: Store) -> None:
    first = Recorder()
    dispatcher = Dispatcher(store, [Extension("rec", first)], TIMEOUT)
    engine = Engine(store, HybridClock(60_000_000), LIMITS, holds=dispatcher.holds())
    async with dispatcher.running():
        for n in range(1, 6):
            await do_push(engine, push("r", set_change(n, f"k{n}", n=n)))
            dispatcher.notify(["r"])
        await deliver_until(first, 5)
    assert first.seqs == [("r", n) for n in range(1, 6)]
    assert await store.cursor("rec", "r") == 5
    for n in range(6, 9):  # committed while no dispatcher runs (sync is down)
        await do_push(engine, push("r", set_change(n, f"k{n}", n=n)))
    second = Recorder()
    async with Dispatcher(store, [Extension("rec", second)], TIMEOUT).running():
        await deliver_until(second, 3)  # found by the start-up scan: nothing notified it
        probe = await do_push(engine, push("other", set_change(1, "x")))
        assert probe.head == 1
    assert second.seqs == [("r", 6), ("r", 7), ("r", 8)]


async def test_a_failing_after_commit_is_retried_and_commits_go_on(store: Store) -> None:
    recorder = Recorder(failures=2)
    dispatcher = Dispatcher(store, [Extension("flaky", recorder)], TIMEOUT)
    engine = Engine(store, HybridClock(60_000_000), LIMITS, holds=dispatcher.holds())
    async with dispatcher.running():
        await do_push(engine, push("r", set_change(1, "a")))
        dispatcher.notify(["r"])
        await do_push(engine, push("r", set_change(2, "b")))
        dispatcher.notify(["r"])
        await deliver_until(recorder, 2)
    assert recorder.calls >= 3
    assert recorder.seqs == [("r", 1), ("r", 2)]


async def test_compaction_keeps_what_an_extension_has_not_seen(store: Store) -> None:
    dispatcher = Dispatcher(store, [Extension("slow", Recorder())], TIMEOUT)
    engine = Engine(
        store, HybridClock(60_000_000), LIMITS, Retention(log_changes=2), holds=dispatcher.holds()
    )
    assert await store.advance("slow", "r", 0, 3)
    for n in range(1, 31):
        await do_push(engine, push("r", set_change(n, "k", n=n)))
    held = await store.changes("r", 0, 100, 100)
    assert held[0].seq == 4  # compacted up to the cursor, not to the tail
    plain = Engine(store, HybridClock(60_000_000), LIMITS, Retention(log_changes=2))
    for n in range(31, 61):
        await do_push(plain, push("r", set_change(n, "k", n=n)))
    assert (await store.changes("r", 0, 100, 100))[0].seq > 4


# --- the whole service: SYNC_EXTENSIONS loaded at start, a restart in the middle ------------


class FileRecorder:
    """after_commit appends each (room, seq) to $ACCORD_TEST_AFTER_COMMIT_LOG."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)

    async def after_commit(self, committed: AfterCommit) -> None:
        lines = "".join(f"{committed.room} {c.seq}\n" for c in committed.changes)
        await asyncio.to_thread(self._append, lines)

    def _append(self, lines: str) -> None:
        with self._path.open("a") as file:
            file.write(lines)


def file_recorder() -> FileRecorder:
    return FileRecorder(os.environ["ACCORD_TEST_AFTER_COMMIT_LOG"])


def recorded(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def wait_recorded(path: Path, count: int) -> list[str]:
    for _ in range(400):
        if len(recorded(path)) >= count:
            break
        await asyncio.sleep(0.025)
    return recorded(path)


@pytest.fixture
def after_commit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "after_commit.log"
    monkeypatch.setenv("ACCORD_TEST_AFTER_COMMIT_LOG", str(path))
    return path


@pytest.fixture
async def settings(sync_database_url: str) -> AsyncIterator[Settings]:
    yield Settings(
        sync_addr=("127.0.0.1", 0),
        metrics_addr=None,
        database=parse_database_url(sync_database_url),
        extensions=(f"{__name__}:file_recorder",),
        grpc=ServerSecurity.unprotected(),
    )


async def push_over_grpc(port: int, first: int, last: int) -> None:
    async with create_channel(f"127.0.0.1:{port}") as channel:
        stub = SyncStub(channel)
        for n in range(first, last + 1):
            request = push("room-a", set_change(n, f"k{n}", n=n))
            await stub.Push(request, timeout=10)


async def test_the_service_delivers_seq_1_to_n_once_across_a_restart(
    settings: Settings, after_commit_log: Path
) -> None:
    async with serve(settings) as running:
        await push_over_grpc(running.port, 1, 4)
        assert await wait_recorded(after_commit_log, 4) == [f"room-a {n}" for n in range(1, 5)]
    async with serve(settings) as running:
        await push_over_grpc(running.port, 5, 7)
        lines = await wait_recorded(after_commit_log, 7)
    assert lines == [f"room-a {n}" for n in range(1, 8)]


async def test_a_refusal_over_grpc_is_in_that_changes_result(
    sync_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODERATION_WORDS", "darn")
    settings = Settings(
        sync_addr=("127.0.0.1", 0),
        metrics_addr=None,
        database=parse_database_url(sync_database_url),
        extensions=("examples.moderation:factory",),
        grpc=ServerSecurity.unprotected(),
    )
    async with serve(settings) as running, create_channel(f"127.0.0.1:{running.port}") as channel:
        request = push("room-b", set_change(1, "m1", text="fine"), set_change(2, "m2", text="darn"))
        request.changes[0].collection = request.changes[1].collection = "messages"
        response = await SyncStub(channel).Push(request, timeout=10)
    ok, refused = response.results
    assert ok.status == pb.CHANGE_STATUS_APPLIED and ok.seq == 1
    assert refused.error.reason == "BAD_REQUEST" and refused.seq == 0
    assert response.head == 1

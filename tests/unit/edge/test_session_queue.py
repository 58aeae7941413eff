"""A session's outbound queue: bounded, and coalescing superseded presence when backlogged."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from accord.edge.auth import IdentitySettings
from accord.edge.protocol import Out
from accord.edge.session import COALESCE_AFTER, Session
from accord.edge.settings import Settings


def make_session(queue_size: int = 1024) -> Session:
    edge: Any = SimpleNamespace(
        settings=Settings(
            send_queue_size=queue_size, identity=IdentitySettings(allow_anonymous=True)
        )
    )
    session = Session(edge, ws=None, remote="127.0.0.1")  # type: ignore[arg-type]
    # A writer is busy (stalled): everything sent from here on stays queued.
    session._writer = SimpleNamespace()  # type: ignore[assignment]
    return session


def presence(event: str, peer: str, n: int) -> Out:
    return Out(
        {"type": "presence", "room": "r", "event": event, "peer": {"session_id": peer, "n": n}},
        ("presence", "r", peer),
    )


def queued(session: Session) -> list[dict[str, Any]]:
    return [slot.out.message for slot in session._queue]


def fill(session: Session, count: int) -> None:
    for n in range(count):
        session.send(Out({"type": "changes", "room": "r", "n": n}))


def test_nothing_is_coalesced_while_the_queue_is_short() -> None:
    session = make_session()
    session.send(presence("join", "p", 1))
    session.send(presence("update", "p", 2))
    assert [m["event"] for m in queued(session)] == ["join", "update"]


def test_backlogged_updates_of_one_peer_keep_only_the_newest() -> None:
    session = make_session()
    session.send(presence("update", "p", 1))
    fill(session, COALESCE_AFTER)
    for n in range(2, 10):
        session.send(presence("update", "p", n))
    session.send(presence("update", "q", 1))
    events = [m for m in queued(session) if m["type"] == "presence"]
    assert [(m["peer"]["session_id"], m["peer"]["n"]) for m in events] == [("p", 9), ("q", 1)]
    # The newest state takes the place of the first, so order per peer is kept.
    assert queued(session)[0]["peer"]["n"] == 9


def test_a_join_superseded_by_an_update_stays_a_join() -> None:
    session = make_session()
    session.send(presence("join", "p", 1))
    fill(session, COALESCE_AFTER)
    session.send(presence("update", "p", 2))
    first = queued(session)[0]
    assert (first["event"], first["peer"]["n"]) == ("join", 2)
    assert len(queued(session)) == COALESCE_AFTER + 1


def test_changes_are_never_coalesced_and_overflow_closes_the_session() -> None:
    closed: list[int] = []

    class Recording(Session):
        __slots__ = ()

        def close_soon(self, code: int, reason: str, *, flush: bool = True) -> None:
            closed.append(code)

    edge: Any = SimpleNamespace(
        settings=Settings(send_queue_size=8, identity=IdentitySettings(allow_anonymous=True))
    )
    session = Recording(edge, ws=None, remote="127.0.0.1")  # type: ignore[arg-type]
    session._writer = SimpleNamespace()  # type: ignore[assignment]
    fill(session, 8)
    assert len(queued(session)) == 8
    fill(session, 1)
    assert closed == [4009]
    assert len(queued(session)) == 8


class RecordingSocket:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.release = asyncio.Event()

    async def send_frame(self, data: bytes, opcode: Any) -> None:
        await self.release.wait()
        self.sent.append(data)


async def test_the_writer_runs_only_while_messages_are_queued() -> None:
    edge: Any = SimpleNamespace(settings=Settings(identity=IdentitySettings(allow_anonymous=True)))
    ws = RecordingSocket()
    session = Session(edge, ws=ws, remote="127.0.0.1")  # type: ignore[arg-type]
    assert session._writer is None and session.queued == 0  # idle: no task, no queue
    session.send(Out({"type": "changes", "n": 1}))
    session.send(Out({"type": "changes", "n": 2}))
    assert session._writer is not None and session.queued == 2
    ws.release.set()
    await asyncio.wait_for(session._flush(5.0), 6)
    await asyncio.sleep(0)
    assert [json.loads(d)["n"] for d in ws.sent] == [1, 2]
    assert session._writer is None and session.queued == 0
    # Another session's queue is never this one's.
    other = Session(edge, ws=RecordingSocket(), remote="127.0.0.1")  # type: ignore[arg-type]
    assert other.queued == 0

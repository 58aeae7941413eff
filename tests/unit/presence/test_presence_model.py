"""The presence rules, with time as a plain number."""

from __future__ import annotations

import pytest
from accord.presence.model import (
    Counts,
    Event,
    EventKind,
    LeaveReason,
    NotPresent,
    Peer,
    Presence,
    TooManyRooms,
    UserMismatch,
    user_key,
)

TTL = 10.0


def peer(session_id: str, state: str = "{}") -> Peer:
    return Peer(session_id, user_id=f"u-{session_id}", client_id="c", state_json=state)


@pytest.fixture
def presence() -> Presence:
    return Presence(ttl=TTL, max_rooms=3)


def test_first_join_is_a_join_and_a_rejoin_is_an_update(presence: Presence) -> None:
    first = presence.join("r", peer("s1", '{"a":1}'), "edge", now=0)
    again = presence.join("r", peer("s1", '{"a":2}'), "edge", now=1)
    assert first == [
        Event("r", EventKind.JOIN, peer("s1", '{"a":1}')),
        Event("r", EventKind.USER_ONLINE, peer("s1", '{"a":1}')),
    ]
    assert again == [Event("r", EventKind.UPDATE, peer("s1", '{"a":2}'))]
    page = presence.list("r", 0, "")
    assert page.count == 1
    assert page.peers == (peer("s1", '{"a":2}'),)


def test_update_replaces_state_and_keeps_identity(presence: Presence) -> None:
    presence.join("r", Peer("s1", "u1", "c1", '{"name":"Ann"}', "{}"), "e", now=0)
    event = presence.update("r", "s1", '{"cursor":3}', now=1)
    assert event.kind is EventKind.UPDATE
    assert event.peer == Peer("s1", "u1", "c1", '{"name":"Ann"}', '{"cursor":3}')
    assert presence.list("r", 0, "").peers == (event.peer,)


def test_update_of_an_absent_session_is_refused(presence: Presence) -> None:
    presence.join("other", peer("s1"), "e", now=0)
    with pytest.raises(NotPresent):
        presence.update("r", "s1", "{}", now=1)
    with pytest.raises(NotPresent):
        presence.update("r", "nobody", "{}", now=1)


def test_leave_one_room_keeps_the_others(presence: Presence) -> None:
    presence.join("a", peer("s1"), "e", now=0)
    presence.join("b", peer("s1"), "e", now=0)
    events = presence.leave("s1", "a", LeaveReason.UNSUBSCRIBE)
    assert events == [
        Event("a", EventKind.LEAVE, peer("s1"), LeaveReason.UNSUBSCRIBE),
        Event("a", EventKind.USER_OFFLINE, peer("s1"), LeaveReason.UNSUBSCRIBE),
    ]
    assert presence.rooms_of("s1") == {"b"}
    assert presence.list("a", 0, "").count == 0


def test_leave_all_rooms_emits_one_leave_per_room_and_forgets_the_session(
    presence: Presence,
) -> None:
    for room in ("b", "a", "c"):
        presence.join(room, peer("s1"), "e", now=0)
    events = presence.leave("s1", None, LeaveReason.DISCONNECT)
    assert [(e.room, e.kind, e.reason) for e in events] == [
        ("a", EventKind.LEAVE, LeaveReason.DISCONNECT),
        ("a", EventKind.USER_OFFLINE, LeaveReason.DISCONNECT),
        ("b", EventKind.LEAVE, LeaveReason.DISCONNECT),
        ("b", EventKind.USER_OFFLINE, LeaveReason.DISCONNECT),
        ("c", EventKind.LEAVE, LeaveReason.DISCONNECT),
        ("c", EventKind.USER_OFFLINE, LeaveReason.DISCONNECT),
    ]
    assert presence.session_count == 0
    assert presence.heartbeat("e", ["s1"], now=1) == ["s1"]


def test_leave_of_an_absent_session_or_room_does_nothing(presence: Presence) -> None:
    presence.join("a", peer("s1"), "e", now=0)
    assert presence.leave("s1", "b", LeaveReason.UNSUBSCRIBE) == []
    assert presence.leave("nobody", None, LeaveReason.DISCONNECT) == []
    assert presence.rooms_of("s1") == {"a"}


def test_room_limit_counts_distinct_rooms(presence: Presence) -> None:
    for room in ("a", "b", "c"):
        presence.join(room, peer("s1"), "e", now=0)
    presence.join("c", peer("s1", '{"x":1}'), "e", now=0)  # re-join: not a new room
    with pytest.raises(TooManyRooms):
        presence.join("d", peer("s1"), "e", now=0)
    assert presence.rooms_of("s1") == {"a", "b", "c"}
    presence.join("d", peer("s2"), "e", now=0)  # the limit is per session


def test_sessions_expire_after_ttl_from_every_room(presence: Presence) -> None:
    presence.join("a", peer("s1"), "e", now=0)
    presence.join("b", peer("s1"), "e", now=0)
    presence.join("a", peer("s2"), "e", now=5)
    assert presence.expire(now=TTL - 0.001).sessions == 0
    swept = presence.expire(now=TTL)
    assert swept.sessions == 1
    assert [(e.room, e.kind, e.peer, e.reason) for e in swept.events] == [
        ("a", EventKind.LEAVE, peer("s1"), LeaveReason.TIMEOUT),
        ("a", EventKind.USER_OFFLINE, peer("s1"), LeaveReason.TIMEOUT),
        ("b", EventKind.LEAVE, peer("s1"), LeaveReason.TIMEOUT),
        ("b", EventKind.USER_OFFLINE, peer("s1"), LeaveReason.TIMEOUT),
    ]
    assert presence.expire(now=TTL).sessions == 0  # once only
    assert presence.list("a", 0, "").peers == (peer("s2"),)


def test_heartbeat_pushes_the_deadline_and_reports_unknown_ids(presence: Presence) -> None:
    presence.join("a", peer("s1"), "e", now=0)
    assert presence.heartbeat("e", ["s1", "ghost"], now=8) == ["ghost"]
    assert presence.expire(now=TTL + 1).sessions == 0
    assert presence.expire(now=8 + TTL).sessions == 1


def test_update_and_rejoin_refresh_the_deadline(presence: Presence) -> None:
    presence.join("a", peer("s1"), "e", now=0)
    presence.update("a", "s1", "{}", now=5)
    assert presence.expire(now=TTL).sessions == 0
    presence.join("a", peer("s1"), "e", now=9)
    assert presence.expire(now=5 + TTL).sessions == 0
    assert presence.expire(now=9 + TTL).sessions == 1


def test_list_pages_in_session_id_order_with_a_cursor(presence: Presence) -> None:
    for sid in ("d", "b", "e", "a", "c"):
        presence.join("r", peer(sid), "e", now=0)
    first = presence.list("r", 2, "")
    assert [p.session_id for p in first.peers] == ["a", "b"]
    assert (first.next_cursor, first.count) == ("b", 5)
    second = presence.list("r", 2, first.next_cursor)
    assert [p.session_id for p in second.peers] == ["c", "d"]
    last = presence.list("r", 2, second.next_cursor)
    assert [p.session_id for p in last.peers] == ["e"]
    assert last.next_cursor == ""
    exact = presence.list("r", 5, "")
    assert len(exact.peers) == 5
    assert exact.next_cursor == ""


def test_list_of_an_unknown_room_is_empty(presence: Presence) -> None:
    page = presence.list("nowhere", 10, "")
    assert (page.peers, page.next_cursor, page.count) == ((), "", 0)


def tab(session_id: str, user_id: str = "ada") -> Peer:
    return Peer(session_id, user_id=user_id, client_id=f"tab-{session_id}")


def kinds(events: list[Event]) -> list[tuple[str, EventKind]]:
    return [(e.room, e.kind) for e in events]


def test_a_user_with_three_tabs_is_one_user_and_goes_offline_once(presence: Presence) -> None:
    assert kinds(presence.join("r", tab("t1"), "e", now=0)) == [
        ("r", EventKind.JOIN),
        ("r", EventKind.USER_ONLINE),
    ]
    assert kinds(presence.join("r", tab("t2"), "e", now=0)) == [("r", EventKind.JOIN)]
    assert kinds(presence.join("r", tab("t3"), "e", now=0)) == [("r", EventKind.JOIN)]
    presence.join("r", tab("b1", "bob"), "e", now=0)
    assert presence.counts("r") == Counts(sessions=4, users=2)
    assert presence.list("r", 1, "").users == 2
    assert presence.user_count == 2

    assert kinds(presence.leave("t2", "r", LeaveReason.UNSUBSCRIBE)) == [("r", EventKind.LEAVE)]
    assert kinds(presence.leave("t1", None, LeaveReason.DISCONNECT)) == [("r", EventKind.LEAVE)]
    assert presence.counts("r") == Counts(sessions=2, users=2)
    last = presence.leave("t3", None, LeaveReason.DISCONNECT)
    assert last == [
        Event("r", EventKind.LEAVE, tab("t3"), LeaveReason.DISCONNECT),
        Event("r", EventKind.USER_OFFLINE, tab("t3"), LeaveReason.DISCONNECT),
    ]
    assert presence.counts("r") == Counts(sessions=1, users=1)
    assert presence.user_count == 1


def test_users_are_counted_per_room(presence: Presence) -> None:
    presence.join("a", tab("t1"), "e", now=0)
    presence.join("b", tab("t1"), "e", now=0)
    presence.join("b", tab("t2"), "e", now=0)
    assert presence.user_count == 1
    assert kinds(presence.leave("t1", "a", LeaveReason.UNSUBSCRIBE)) == [
        ("a", EventKind.LEAVE),
        ("a", EventKind.USER_OFFLINE),
    ]
    assert kinds(presence.leave("t1", "b", LeaveReason.UNSUBSCRIBE)) == [("b", EventKind.LEAVE)]
    assert presence.counts("a") == Counts(0, 0)
    assert presence.counts("b") == Counts(1, 1)
    assert presence.user_count == 1


def test_the_user_goes_offline_when_its_last_session_times_out(presence: Presence) -> None:
    presence.join("r", tab("t1"), "e", now=0)
    presence.join("r", tab("t2"), "e", now=5)
    first = presence.expire(now=TTL)
    assert kinds(list(first.events)) == [("r", EventKind.LEAVE)]
    second = presence.expire(now=5 + TTL)
    assert [(e.kind, e.reason) for e in second.events] == [
        (EventKind.LEAVE, LeaveReason.TIMEOUT),
        (EventKind.USER_OFFLINE, LeaveReason.TIMEOUT),
    ]
    assert presence.user_count == 0


def test_sessions_without_a_user_id_are_users_of_their_own(presence: Presence) -> None:
    presence.join("r", Peer("s1"), "e", now=0)
    presence.join("r", Peer("s2"), "e", now=0)
    presence.join("r", tab("u1", user_id="s1"), "e", now=0)
    assert presence.counts("r") == Counts(sessions=3, users=3)
    assert user_key(Peer("s1")) != user_key(tab("x", user_id="s1"))


def test_a_session_cannot_change_its_user(presence: Presence) -> None:
    presence.join("a", tab("t1", "ada"), "e", now=0)
    with pytest.raises(UserMismatch):
        presence.join("b", tab("t1", "eve"), "e", now=0)
    with pytest.raises(UserMismatch):
        presence.join("a", tab("t1", "eve"), "e", now=0)
    assert presence.rooms_of("t1") == {"a"}
    assert presence.list("a", 0, "").peers == (tab("t1", "ada"),)
    assert presence.counts("b") == Counts(0, 0)
    # Once the session is gone, its id is free again.
    presence.leave("t1", None, LeaveReason.DISCONNECT)
    presence.join("b", tab("t1", "eve"), "e", now=1)
    assert presence.user_count == 1

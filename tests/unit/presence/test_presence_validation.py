"""Input checks: rooms, ids, JSON objects and their sizes."""

from __future__ import annotations

import pytest
from accord.presence import validation
from accord.presence.model import Peer


@pytest.mark.parametrize("room", ["a", "todo-demo", "org_1.team:chat", "A" * 128])
def test_good_rooms(room: str) -> None:
    assert validation.room(room) == room


@pytest.mark.parametrize("room", ["", "A" * 129, "has space", "slash/room", "é", "a\n"])
def test_bad_rooms(room: str) -> None:
    with pytest.raises(validation.Invalid):
        validation.room(room)


def test_session_id_is_required_and_bounded() -> None:
    assert validation.session_id("s" * 128) == "s" * 128
    with pytest.raises(validation.Invalid):
        validation.session_id("")
    with pytest.raises(validation.Invalid):
        validation.session_id("s" * 129)


def test_empty_json_stands_for_an_empty_object() -> None:
    assert validation.json_object("", "state_json", 10) == "{}"


def test_json_objects_pass_unchanged() -> None:
    text = '{"cursor": {"x": 1}, "name": "Zoë"}'
    assert validation.json_object(text, "state_json", 100) == text


@pytest.mark.parametrize("text", ["[]", "3", '"x"', "null", "{", "not json"])
def test_json_that_is_not_an_object_is_invalid(text: str) -> None:
    with pytest.raises(validation.Invalid):
        validation.json_object(text, "state_json", 100)


@pytest.mark.parametrize("text", ["[]", "3", '"x"', "null", '{"a":[1]}'])
def test_any_json_value_passes_where_values_are_allowed(text: str) -> None:
    assert validation.json_value(text, "data_json", 100) == text


@pytest.mark.parametrize("text", ["{", "not json", "NaN-ish"])
def test_bad_json_is_invalid_where_values_are_allowed(text: str) -> None:
    with pytest.raises(validation.Invalid):
        validation.json_value(text, "data_json", 100)
    with pytest.raises(validation.TooLarge):
        validation.json_value('"' + "x" * 200 + '"', "data_json", 100)


def test_json_over_the_limit_counts_utf8_bytes() -> None:
    text = '{"a":"' + "é" * 10 + '"}'  # 28 bytes, 18 chars
    assert validation.json_object(text, "state_json", 28) == text
    with pytest.raises(validation.TooLarge):
        validation.json_object(text, "state_json", 27)


def test_peer_normalizes_empty_json_and_checks_every_field() -> None:
    assert validation.peer(Peer("s1", "u", "c", "", ""), 100) == Peer("s1", "u", "c", "{}", "{}")
    with pytest.raises(validation.Invalid):
        validation.peer(Peer("s1", user_id="u" * 129), 100)
    with pytest.raises(validation.TooLarge):
        validation.peer(Peer("s1", user_json='{"a":"' + "x" * 100 + '"}'), 100)
    with pytest.raises(validation.Invalid):
        validation.peer(Peer(""), 100)

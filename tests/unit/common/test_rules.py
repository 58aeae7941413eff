"""accord.common.rules: the protocol's names, ranges, nesting walk and shared settings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from accord.common import rules
from accord.common.config import ConfigError
from accord.edge.settings import Settings as EdgeSettings
from accord.sync.settings import Settings as SyncSettings
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize("room", ["a", "todo-demo", "org_1.team:chat", "A" * 128])
def test_good_rooms(room: str) -> None:
    assert rules.is_room(room)
    assert rules.ROOM_RE.match(room) and rules.ROOM_RE.fullmatch(room)


@pytest.mark.parametrize(
    "room", ["", "A" * 129, "has space", "slash/room", "é", "a\n", "\na", "bad room", 5, None]
)
def test_bad_rooms_fail_with_match_as_with_fullmatch(room: Any) -> None:
    assert not rules.is_room(room)
    if isinstance(room, str):
        # \A...\Z: a prefix or a trailing newline never passes, whichever method is used.
        assert rules.ROOM_RE.match(room) is None
        assert rules.ROOM_RE.fullmatch(room) is None


def test_client_ids_and_channels_are_1_to_64_name_characters() -> None:
    assert rules.is_client_id("replica-7f3a") and rules.is_client_id("c" * 64)
    for bad in ("", "c" * 65, "c/1", "c\n", 7):
        assert not rules.is_client_id(bad)
    assert rules.CHANNEL_RE.match("cursor") and rules.CHANNEL_RE.match("x" * 64)
    assert rules.CHANNEL_RE.match("x" * 65) is None and rules.CHANNEL_RE.match("") is None


@pytest.mark.parametrize(
    ("value", "ok"),
    [(0, True), (2**63 - 1, True), (2**63, False), (-1, False), (True, False), (1.0, False)],
)
def test_in_range_wants_a_true_integer(value: Any, ok: bool) -> None:
    assert rules.in_range(value, 0, rules.MAX_INT64) is ok


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    return 0


documents = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=30,
)


@given(documents, st.integers(0, 8))
def test_too_deep_agrees_with_a_recursive_depth(value: Any, limit: int) -> None:
    assert rules.too_deep(value, limit) is (reference_depth(value) > limit)


def test_too_deep_walks_nesting_beyond_the_recursion_limit() -> None:
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    assert rules.too_deep(deep, 32)
    assert not rules.too_deep({"a": [1, {"b": {}}]}, 4)
    assert rules.too_deep({"a": [1, {"b": {}}]}, 3)


def test_the_batch_limit_is_one_setting_read_by_the_edge_and_sync() -> None:
    env = {"MAX_BATCH_CHANGES": "25", "ALLOW_ANONYMOUS": "true"}
    assert EdgeSettings.from_env(env).max_batch_changes == 25
    assert SyncSettings.from_env(env).max_batch_changes == 25
    defaults = {"ALLOW_ANONYMOUS": "true"}
    assert EdgeSettings.from_env(defaults).max_batch_changes == rules.DEFAULT_MAX_BATCH == 1000
    assert SyncSettings.from_env(defaults).max_batch_changes == 1000


@pytest.mark.parametrize("raw", ["0", "100001", "lots", "1.5"])
def test_a_bad_batch_limit_stops_either_service_naming_the_setting(raw: str) -> None:
    env = {rules.MAX_BATCH_SETTING: raw, "ALLOW_ANONYMOUS": "true"}
    for settings in (EdgeSettings, SyncSettings):
        with pytest.raises(ConfigError, match="MAX_BATCH_CHANGES"):
            settings.from_env(env)


@given(documents, st.integers(0, 8), st.booleans())
def test_text_too_deep_agrees_with_a_recursive_depth(value: Any, limit: int, raw: bool) -> None:
    # Brackets inside strings (hypothesis writes some) only make it walk.
    text = json.dumps(value)
    assert rules.text_too_deep(text.encode() if raw else text, value, limit) is (
        reference_depth(value) > limit
    )

"""The edge's hook settings and the checks of what hooks answer (no server: pure parts)."""

from __future__ import annotations

from typing import Any

import pytest
from accord.common.config import ConfigError
from accord.edge.hooks import NO_HOOKS, _checked_change, _checked_identity
from accord.edge.settings import Settings
from accord.extensions import Identity

from tests.support.wsclient import SECRET

BASE = {"JWT_SECRET": SECRET}


def test_edge_extensions_and_their_timeout_are_read_once() -> None:
    settings = Settings.from_env(
        {**BASE, "EDGE_EXTENSIONS": "a.b:make, c:d.e", "EXTENSION_TIMEOUT": "0.25"}
    )
    assert settings.extensions == ("a.b:make", "c:d.e")
    assert settings.extension_timeout == 0.25
    assert Settings.from_env(BASE).extensions == ()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EDGE_EXTENSIONS": "not-a-spec"}, "EDGE_EXTENSIONS: 'not-a-spec' is not"),
        ({"EXTENSION_TIMEOUT": "0"}, "EXTENSION_TIMEOUT"),
    ],
)
def test_bad_hook_settings_stop_start_up(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, **env})


def test_without_extensions_no_hook_runs() -> None:
    assert not NO_HOOKS.active and not NO_HOOKS.on_disconnect_active
    runners = (NO_HOOKS.on_connect, NO_HOOKS.on_authenticate, NO_HOOKS.on_subscribe)
    assert not any(r.active for r in (*runners, NO_HOOKS.before_push))


def test_a_rewritten_identity_is_checked_and_normalised() -> None:
    checked = _checked_identity(Identity("u", {"a": 1}, ["r-*"], None))  # type: ignore[arg-type]
    assert (checked.rooms, checked.write) == (("r-*",), None)
    for bad in (Identity("", {}), Identity("u", {}, "r-*"), Identity("u", {}, (1,)), "u"):  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            _checked_identity(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "a change",
        {"client_seq": 1, "collection": "c", "key": "k", "op": {"kind": "explode"}},
        {"client_seq": 0, "collection": "c", "key": "k", "op": {"kind": "delete"}},
    ],
)
def test_a_rewritten_change_is_checked_like_a_pushed_one(bad: Any) -> None:
    with pytest.raises(ValueError):
        _checked_change(bad)
    good = {"client_seq": 1, "collection": "c", "key": "k", "op": {"kind": "delete"}}
    assert _checked_change(good) == good

"""API keys: the file's format, hashes only, and reloading that keeps the last good keys."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from accord.common.config import ConfigError
from accord.edge.api.keys import KeyRing, entry, hash_key, new_key, parse_keys, read_keys


def test_a_new_key_is_found_by_its_hash_with_its_grants(tmp_path: Path) -> None:
    key = new_key()
    assert key.startswith("ak_") and len(key) == 46
    assert new_key() != key
    item = entry("billing", key, ["todo-*"], None)
    assert item["hash"] == hash_key(key) and key not in json.dumps(item)
    (parsed,) = parse_keys(json.dumps({"keys": [item]}), "f")
    identity = parsed.identity()
    assert identity.user_id == "billing" and identity.expires_at is None
    assert identity.can_write("todo-1") and not identity.can_read("chat-1")
    (read_only,) = parse_keys(json.dumps({"keys": [entry("r", key, ["*"], [])]}), "f")
    assert read_only.identity().can_read("x") and not read_only.identity().can_write("x")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[]", "must be an object"),
        ('{"keys": [1]}', "must be an object"),
        ('{"keys": [{"name": "bad name", "hash": "x", "rooms": []}]}', "'name'"),
        ('{"keys": [{"name": "a", "hash": "sha256:XYZ", "rooms": []}]}', "'hash'"),
        ('{"keys": [{"name": "a", "hash": "sha256:' + "a" * 64 + '", "rooms": "*"}]}', "'rooms'"),
        (
            '{"keys": [{"name": "a", "hash": "sha256:' + "a" * 64 + '", "rooms": ["*"]},'
            '{"name": "a", "hash": "sha256:' + "b" * 64 + '", "rooms": ["*"]}]}',
            "appears twice",
        ),
    ],
)
def test_a_bad_file_names_what_is_wrong(document: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_keys(document, "keys.json")


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        read_keys(str(tmp_path / "absent.json"))


def test_the_ring_reloads_a_changed_file_and_keeps_the_last_good_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first, second = new_key(), new_key()
    path.write_text(json.dumps({"keys": [entry("one", first, ["*"], None)]}))
    ring = KeyRing(str(path), read_keys(str(path)), interval=0)
    assert ring.identity(first) is not None and ring.identity(second) is None
    path.write_text(json.dumps({"keys": [entry("two", second, ["*"], None)]}))
    os.utime(path, ns=(10**18, 10**18))
    identity = ring.identity(second)
    assert identity is not None and identity.user_id == "two"
    assert ring.identity(first) is None
    path.write_text("{broken")
    os.utime(path, ns=(2 * 10**18, 2 * 10**18))
    assert ring.identity(second) is not None
    path.unlink()
    assert ring.identity(second) is not None and len(ring) == 1

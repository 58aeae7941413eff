"""End-to-end encrypted fields, pure: the acc1 format, its test vector, AAD binding, tampering,
wrong keys, rotation, and the ops an encrypted field refuses."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from accord.client import EncryptedFieldError, Encryption, Undecryptable, generate_key
from accord.client.changes import RecordChange
from accord.client.cipher import FieldCipher
from accord.client.encryption import (
    Location,
    associated_data,
    canonical_json,
    open_value,
    seal_value,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The vector of docs/encryption.md; clients/js/test/encryption.test.mjs checks the same bytes.
VECTOR_KEY = bytes(range(32))
VECTOR_NONCE = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafb")
VECTOR_WHERE = Location("vector-room", "notes", "n-1", "body")
VECTOR_VALUE = {"text": "Grüße 🌍", "n": [1, True, None]}
VECTOR_PLAINTEXT = (
    "7b226e223a5b312c747275652c6e756c6c5d2c2274657874223a224772c3bcc39f6520f09f8c8d227d"
)
VECTOR_AAD = (
    "6163636f72642d6532656501000000026b310000000b766563746f722d726f6f6d000000056e6f746573"
    "000000036e2d3100000004626f6479"
)
VECTOR_STORED = (
    "acc1:AQJrMfDx8vP09fb3-Pn6-xIkLSJGYeNY64WC_6IkF9p8vHXgTGI37HRsEecr8G7Eg3U2dN8PPLvlbWz8P2VBorc"
    "tie4uWqU-gQ"
)

K1, K2 = generate_key(), generate_key()


def keyring(**keys: bytes) -> dict[str, AESGCM]:
    return {key_id: AESGCM(key) for key_id, key in keys.items()}


def reason(keys: dict[str, AESGCM], where: Location, stored: Any) -> str:
    with pytest.raises(Undecryptable) as caught:
        open_value(keys, where, stored)
    assert caught.value.field == where.field and caught.value.key == where.key
    return caught.value.reason


def blob(stored: str) -> bytearray:
    text = stored.removeprefix("acc1:")
    return bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def text(data: bytes | bytearray) -> str:
    return "acc1:" + base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode()


def test_the_shared_vector_byte_for_byte() -> None:
    assert canonical_json(VECTOR_VALUE).encode().hex() == VECTOR_PLAINTEXT
    assert associated_data("k1", VECTOR_WHERE).hex() == VECTOR_AAD
    sealed = seal_value("k1", AESGCM(VECTOR_KEY), VECTOR_WHERE, VECTOR_VALUE, nonce=VECTOR_NONCE)
    assert sealed == VECTOR_STORED
    assert open_value(keyring(k1=VECTOR_KEY), VECTOR_WHERE, VECTOR_STORED) == VECTOR_VALUE
    layout = blob(VECTOR_STORED)
    assert layout[0] == 1 and layout[1] == 2 and layout[2:4] == b"k1"
    assert layout[4:16] == VECTOR_NONCE
    assert len(layout) == 4 + 12 + len(bytes.fromhex(VECTOR_PLAINTEXT)) + 16


@pytest.mark.parametrize(
    "value", [None, "", "héllo\u0000", 0, -7, 2.5, True, [1, [2, {"a": None}]], {"z": 1, "a": "b"}]
)
def test_round_trip_of_any_json_value(value: Any) -> None:
    where = Location("r", "c", "k", "f")
    sealed = seal_value("k1", AESGCM(K1), where, value)
    assert sealed.startswith("acc1:")
    assert open_value(keyring(k1=K1), where, sealed) == value


def test_every_encryption_gets_a_fresh_nonce() -> None:
    where = Location("r", "c", "k", "f")
    values = {seal_value("k1", AESGCM(K1), where, "same") for _ in range(50)}
    assert len(values) == 50
    assert len({bytes(blob(v)[4:16]) for v in values}) == 50


@pytest.mark.parametrize(
    "moved",
    [
        Location("r", "c", "k", "other-field"),
        Location("r", "c", "other-key", "f"),
        Location("r", "other-collection", "k", "f"),
        Location("other-room", "c", "k", "f"),
        # Length prefixes: shifting a character from one part to the next is another location.
        Location("r", "c", "kf", ""),
        Location("r", "ck", "", "f"),
    ],
)
def test_a_ciphertext_moved_elsewhere_does_not_decrypt(moved: Location) -> None:
    sealed = seal_value("k1", AESGCM(K1), Location("r", "c", "k", "f"), {"secret": 1})
    assert reason(keyring(k1=K1), moved, sealed) == "auth_failed"


def test_tampering_is_detected_wherever_it_is() -> None:
    where = Location("r", "c", "k", "f")
    sealed = seal_value("k1", AESGCM(K1), where, "a private note")
    keys = keyring(k1=K1)
    for index in range(4, len(blob(sealed))):  # nonce, ciphertext and tag
        data = blob(sealed)
        data[index] ^= 0x01
        assert reason(keys, where, text(data)) == "auth_failed", index
    # The key id is bound too: relabelling k1 as k2 fails even when k2 is known.
    data = blob(sealed)
    data[3] = ord("2")
    assert reason(keyring(k1=K1, k2=K1), where, text(data)) == "auth_failed"


def test_malformed_and_plain_values_are_never_shown() -> None:
    where = Location("r", "c", "k", "f")
    keys = keyring(k1=K1)
    sealed = seal_value("k1", AESGCM(K1), where, "x")
    assert reason(keys, where, sealed[:-3]) == "auth_failed"
    assert reason(keys, where, sealed[:20]) == "malformed"
    assert reason(keys, where, "acc1:***") == "malformed"
    assert reason(keys, where, "acc1:A") == "malformed"
    assert reason(keys, where, "acc1:") == "malformed"
    version2 = blob(sealed)
    version2[0] = 2
    assert reason(keys, where, text(version2)) == "malformed"
    no_key_id = bytes([1, 0]) + bytes(40)
    assert reason(keys, where, text(no_key_id)) == "malformed"
    for plain in ("a private note", 42, None, ["x"], {"v": sealed}):
        assert reason(keys, where, plain) == "not_encrypted"


def test_wrong_key_and_unknown_key() -> None:
    where = Location("r", "c", "k", "f")
    sealed = seal_value("k1", AESGCM(K1), where, "x")
    assert reason(keyring(k1=K2), where, sealed) == "auth_failed"
    assert reason(keyring(k2=K1), where, sealed) == "unknown_key"
    with pytest.raises(Undecryptable) as caught:
        open_value(keyring(k2=K1), where, sealed)
    assert caught.value.key_id == "k1" and "k1" in str(caught.value)


def test_rotation_writes_under_the_new_id_and_reads_the_old() -> None:
    first = Encryption(keys={"k1": K1}, current="k1", fields={"notes": ["body"]})
    second = first.rotated("k2", K2)
    assert second.current == "k2" and set(second.keys) == {"k1", "k2"}
    old = FieldCipher("r", first, lambda error: None)
    before = old.seal_op("notes", "n", {"kind": "set", "fields": {"body": "old"}})["fields"]["body"]
    cipher = FieldCipher("r", second, lambda error: None)
    after = cipher.seal_op("notes", "n", {"kind": "set", "fields": {"body": "new"}})
    assert blob(before)[2:4] == b"k1" and blob(after["fields"]["body"])[2:4] == b"k2"
    record = {"body": before}
    assert cipher.present("notes", "n", record) == {"body": "old"}
    fresh = FieldCipher("r", second, lambda error: None)  # nothing cached from sealing
    assert fresh.present("notes", "n", after["fields"]) == {"body": "new"}
    assert fresh.present("notes", "n", record) == {"body": "old"}


def test_configuration_is_checked_and_keys_stay_out_of_repr() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Encryption(keys={"k1": b"short"}, current="k1", fields={})
    with pytest.raises(ValueError, match="not in keys"):
        Encryption(keys={"k1": K1}, current="k2", fields={})
    with pytest.raises(ValueError, match="key ids"):
        Encryption(keys={"k 1": K1}, current="k 1", fields={})
    with pytest.raises(TypeError, match="list of field names"):
        Encryption(keys={"k1": K1}, current="k1", fields={"notes": "body"})
    config = Encryption(keys={"k1": VECTOR_KEY}, current="k1", fields={"notes": ["body"]})
    assert VECTOR_KEY.hex() not in repr(config) and repr(VECTOR_KEY) not in repr(config)
    assert config.encrypts("notes", "body") and not config.encrypts("notes", "title")


@pytest.mark.parametrize(
    "op",
    [
        {"kind": "incr", "field": "body", "by": 1},
        {"kind": "add", "field": "body", "values": ["a"]},
        {"kind": "remove", "field": "body", "values": ["a"], "seen": 0},
        {"kind": "insert", "field": "body", "after": None, "values": ["a"]},
        {"kind": "remove_items", "field": "body", "ids": ["1.0@x"]},
    ],
)
def test_counters_sets_and_lists_are_refused_on_encrypted_fields(op: dict[str, Any]) -> None:
    config = Encryption(keys={"k1": K1}, current="k1", fields={"notes": ["body"]})
    cipher = FieldCipher("r", config, lambda error: None)
    with pytest.raises(EncryptedFieldError, match="only set and delete"):
        cipher.seal_op("notes", "n", op)
    # The same op on another field, or in another collection, is fine and untouched.
    other = {**op, "field": "tags"}
    assert cipher.seal_op("notes", "n", other) == other
    assert cipher.seal_op("todos", "n", op) == op


def test_a_set_seals_only_the_configured_fields() -> None:
    config = Encryption(keys={"k1": K1}, current="k1", fields={"notes": ["body", "title"]})
    cipher = FieldCipher("r", config, lambda error: None)
    fields = {"body": "secret", "title": None, "pinned": True}
    sealed = cipher.seal_op("notes", "n", {"kind": "set", "fields": fields})["fields"]
    assert sealed["pinned"] is True
    assert sealed["body"].startswith("acc1:") and sealed["title"].startswith("acc1:")
    assert fields["body"] == "secret"  # the caller's op is not modified
    assert cipher.seal_op("notes", "n", {"kind": "delete"}) == {"kind": "delete"}
    with pytest.raises(TypeError, match="must be JSON"):
        cipher.seal_op("notes", "n", {"kind": "set", "fields": {"body": {1, 2}}})


def test_present_opens_marks_and_reports_once() -> None:
    reports: list[Undecryptable] = []
    config = Encryption(keys={"k1": K1}, current="k1", fields={"notes": ["body", "title"]})
    cipher = FieldCipher("r", config, reports.append)
    good = seal_value("k1", AESGCM(K1), Location("r", "notes", "n", "body"), "hi")
    moved = seal_value("k1", AESGCM(K1), Location("r", "notes", "other", "title"), "x")
    record = {"body": good, "title": moved, "pinned": 1}
    shown: dict[str, Any] = {}
    for _ in range(3):
        shown = cipher.present("notes", "n", record) or {}
        assert shown["body"] == "hi" and shown["pinned"] == 1
        marker = shown["title"]
        assert isinstance(marker, Undecryptable) and marker.reason == "auth_failed"
        assert moved not in repr(marker) and moved not in str(marker)
    assert [r.field for r in reports] == ["title"]
    assert record["body"] == good  # the replica's record is not modified
    with pytest.raises(EncryptedFieldError, match="undecryptable"):
        cipher.seal_op("notes", "n", {"kind": "set", "fields": dict(shown)})
    change = RecordChange("r", "notes", "n", record, None, "remote")
    presented = cipher.present_change(change)
    assert presented.value is not None and presented.value["body"] == "hi"
    assert presented.previous is None


def test_the_documented_vector_is_the_tested_one() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "encryption.md").read_text()
    rows = dict(re.findall(r"^\| ([^|]+?) \| `([^`]+)`", doc, re.MULTILINE))
    assert rows["key"] == VECTOR_KEY.hex()
    assert rows["nonce"] == VECTOR_NONCE.hex()
    assert rows["plaintext (hex)"] == VECTOR_PLAINTEXT
    assert rows["associated data (hex)"] == VECTOR_AAD
    assert rows["stored value"] == VECTOR_STORED

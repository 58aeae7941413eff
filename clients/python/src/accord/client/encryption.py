"""End-to-end encrypted fields: the keyring an app configures, and the ``acc1:`` value format.

A field value is encrypted with AES-256-GCM over its canonical JSON text; the
format version, the key id, the room, the collection, the record key and the
field name are bound as associated data, so a ciphertext moved anywhere else
fails to decrypt. The server stores the result as an opaque JSON string.
docs/encryption.md defines the format and gives a test vector.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from accord.client.errors import ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "PREFIX",
    "VERSION",
    "EncryptedFieldError",
    "Encryption",
    "EncryptionError",
    "Location",
    "Reason",
    "Undecryptable",
    "associated_data",
    "canonical_json",
    "generate_key",
    "open_value",
    "seal_value",
]

PREFIX = "acc1:"
VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
AAD_DOMAIN = b"accord-e2ee"
KEY_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
BASE64URL = re.compile(r"[A-Za-z0-9_-]*")

Reason = Literal["unknown_key", "auth_failed", "malformed", "not_encrypted"]


class EncryptionError(ClientError):
    """Base of the SDK's end-to-end encryption errors."""


class EncryptedFieldError(EncryptionError, TypeError):
    """An op the server would have to read the value for (``incr``, sets, lists) on an
    encrypted field, or an ``Undecryptable`` marker written back: refused before queueing."""


class Undecryptable(EncryptionError):
    """What a read shows instead of an encrypted field's value that cannot be trusted.

    ``reason``: ``unknown_key`` (the value names a key id not in the keyring),
    ``auth_failed`` (the tag does not check: altered, moved from another field,
    record or room, or encrypted under another key with this id), ``malformed``
    (not the ``acc1:`` format) or ``not_encrypted`` (a plain value in a field
    configured as encrypted: not authenticated, so not shown).
    """

    def __init__(
        self, reason: Reason, message: str, where: Location, key_id: str | None = None
    ) -> None:
        super().__init__(f"{where.room}/{where.collection}/{where.key}.{where.field}: {message}")
        self.reason: Reason = reason
        self.room = where.room
        self.collection = where.collection
        self.key = where.key
        self.field = where.field
        self.key_id = key_id

    def __repr__(self) -> str:
        return f"<Undecryptable {self.reason} {self.collection}/{self.key}.{self.field}>"


@dataclass(frozen=True)
class Location:
    """Where a value lives: what its associated data binds it to."""

    room: str
    collection: str
    key: str
    field: str


@dataclass(frozen=True)
class Encryption:
    """A room's end-to-end encryption: keys by id, the id new writes use, and the
    encrypted fields per collection. The keys never leave this process.

    ``Encryption(keys={"k1": key}, current="k1", fields={"notes": ["body", "title"]})``
    """

    keys: Mapping[str, bytes] = field(repr=False)
    current: str
    fields: Mapping[str, Collection[str]]

    def __post_init__(self) -> None:
        keys: dict[str, bytes] = {}
        for key_id, key in dict(self.keys).items():
            if not isinstance(key_id, str) or not KEY_ID.fullmatch(key_id):
                raise ValueError("key ids are 1-64 characters of [A-Za-z0-9_.:-]")
            if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id} must be {KEY_BYTES} bytes (AES-256)")
            keys[key_id] = bytes(key)
        if self.current not in keys:
            raise ValueError(f"current key id {self.current!r} is not in keys")
        fields: dict[str, frozenset[str]] = {}
        for collection, names in dict(self.fields).items():
            if isinstance(names, str):
                raise TypeError(f"fields[{collection!r}] must be a list of field names")
            chosen = frozenset(names)
            if not all(isinstance(n, str) and n for n in chosen) or not collection:
                raise ValueError("collections and field names must be non-empty strings")
            fields[collection] = chosen
        object.__setattr__(self, "keys", MappingProxyType(keys))
        object.__setattr__(self, "fields", MappingProxyType(fields))

    def encrypts(self, collection: str, name: str) -> bool:
        return name in self.fields.get(collection, ())

    def rotated(self, key_id: str, key: bytes) -> Encryption:
        """The same, with ``key`` added under ``key_id`` and made current (old keys kept)."""
        return Encryption({**self.keys, key_id: key}, key_id, self.fields)


def generate_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_BYTES)


def canonical_json(value: Any) -> str:
    """The plaintext: JSON with sorted keys and no whitespace (UTF-8 when encrypted)."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as error:
        raise TypeError(f"an encrypted field's value must be JSON: {error}") from None


def _prefixed(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">I", len(data)) + data


def associated_data(key_id: str, where: Location, version: int = VERSION) -> bytes:
    """``"accord-e2ee" ‖ version ‖ lp(key_id) ‖ lp(room) ‖ lp(collection) ‖ lp(key) ‖ lp(field)``,
    ``lp(s)`` = the 4-byte big-endian length of UTF-8 ``s``, then ``s``."""
    parts = (key_id, where.room, where.collection, where.key, where.field)
    return AAD_DOMAIN + bytes([version]) + b"".join(_prefixed(p) for p in parts)


def seal_value(
    key_id: str, aead: AESGCM, where: Location, value: Any, *, nonce: bytes | None = None
) -> str:
    """Encrypt ``value`` for ``where``: ``"acc1:" + base64url(version ‖ len ‖ key_id ‖ nonce ‖
    ciphertext+tag)``. ``nonce`` is for test vectors only; normally 96 fresh random bits."""
    plaintext = canonical_json(value).encode("utf-8")
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"the nonce must be {NONCE_BYTES} bytes")
    sealed = aead.encrypt(nonce, plaintext, associated_data(key_id, where))
    kid = key_id.encode("utf-8")
    blob = bytes([VERSION, len(kid)]) + kid + nonce + sealed
    return PREFIX + base64.urlsafe_b64encode(blob).rstrip(b"=").decode("ascii")


def open_value(keys: Mapping[str, AESGCM], where: Location, stored: Any) -> Any:
    """The value ``stored`` encrypts for ``where``; raises ``Undecryptable``."""
    if not isinstance(stored, str) or not stored.startswith(PREFIX):
        raise Undecryptable("not_encrypted", "a plain value in an encrypted field", where)
    blob = _decode(stored[len(PREFIX) :], where)
    if len(blob) < 2 or blob[0] != VERSION:
        raise Undecryptable("malformed", "unknown format version", where)
    end = 2 + blob[1]
    if blob[1] == 0 or len(blob) < end + NONCE_BYTES + TAG_BYTES:
        raise Undecryptable("malformed", "the value is truncated", where)
    try:
        key_id = blob[2:end].decode("utf-8")
    except UnicodeDecodeError:
        raise Undecryptable("malformed", "the key id is not UTF-8", where) from None
    aead = keys.get(key_id)
    if aead is None:
        raise Undecryptable("unknown_key", f"no key with id {key_id!r}", where, key_id)
    nonce, sealed = blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :]
    try:
        plaintext = aead.decrypt(nonce, sealed, associated_data(key_id, where))
    except InvalidTag:
        message = "authentication failed: altered, moved, or encrypted under another key"
        raise Undecryptable("auth_failed", f"{message} with id {key_id!r}", where, key_id) from None
    try:
        return json.loads(plaintext.decode("utf-8"))
    except ValueError:
        raise Undecryptable("malformed", "the plaintext is not JSON", where, key_id) from None


def _decode(text: str, where: Location) -> bytes:
    if not BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise Undecryptable("malformed", "not base64url", where)
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise Undecryptable("malformed", "not base64url", where) from None

"""A room's encrypted fields at work: ops sealed on the way out, records opened when shown.

The replica, the offline store and the server only ever hold the ``acc1:``
ciphertexts; ``FieldCipher.present`` is where a read turns them back into
values — or into ``Undecryptable`` markers, never into the raw ciphertext.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from accord.client.changes import RecordChange
from accord.client.encryption import (
    EncryptedFieldError,
    Encryption,
    Location,
    Undecryptable,
    canonical_json,
    open_value,
    seal_value,
)
from accord.client.patch import Record
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["FieldCipher"]

CACHE_LIMIT = 20_000


class FieldCipher:
    """Seals and opens the encrypted fields of one room.

    ``report`` hears of each value that fails to decrypt, once per distinct value.
    """

    def __init__(
        self, room: str, encryption: Encryption, report: Callable[[Undecryptable], None]
    ) -> None:
        self.room = room
        self.encryption = encryption
        self._report = report
        self._keys = {key_id: AESGCM(key) for key_id, key in encryption.keys.items()}
        # (collection, key, field, stored JSON) -> the value's JSON text, or its marker
        self._opened: dict[tuple[str, str, str, str], str | Undecryptable] = {}

    # Writing

    def seal_op(self, collection: str, key: str, op: Mapping[str, Any]) -> dict[str, Any]:
        """``op`` with its encrypted fields' values sealed; refuses ops that need plaintext."""
        fields = self.encryption.fields.get(collection)
        kind = op.get("kind")
        if not fields or kind == "delete":
            return dict(op)
        if kind != "set":
            name = op.get("field")
            if isinstance(name, str) and name in fields:
                raise EncryptedFieldError(
                    f"{kind} on {collection}/{key}.{name}: an encrypted field is an opaque "
                    "last-writer-wins value; only set and delete are possible"
                )
            return dict(op)
        values = op.get("fields")
        if not isinstance(values, Mapping):
            return dict(op)
        current = self.encryption.current
        aead = self._keys[current]
        sealed: dict[str, Any] = {}
        for name, value in values.items():
            if name not in fields:
                sealed[name] = value
                continue
            if isinstance(value, Undecryptable):
                raise EncryptedFieldError(
                    f"{collection}/{key}.{name} holds an undecryptable value; write a new value"
                )
            where = Location(self.room, collection, key, name)
            sealed[name] = seal_value(current, aead, where, value)
            self._opened[(collection, key, name, canonical_json(sealed[name]))] = canonical_json(
                value
            )
        return {**op, "fields": sealed}

    # Reading

    def present(self, collection: str, key: str, record: Record | None) -> Record | None:
        """A copy of ``record`` with its encrypted fields opened (or marked undecryptable)."""
        if record is None:
            return None
        fields = self.encryption.fields.get(collection)
        names = [name for name in fields or () if name in record]
        shown = dict(record)
        for name in names:
            shown[name] = self._open(collection, key, name, record[name])
        return shown

    def present_all(self, collection: str, records: Mapping[str, Record]) -> dict[str, Record]:
        shown: dict[str, Record] = {}
        for key, record in records.items():
            shown[key] = self.present(collection, key, record) or {}
        return shown

    def present_change(self, change: RecordChange) -> RecordChange:
        if change.collection not in self.encryption.fields:
            return change
        return dataclasses.replace(
            change,
            value=self.present(change.collection, change.key, change.value),
            previous=self.present(change.collection, change.key, change.previous),
        )

    def _open(self, collection: str, key: str, name: str, stored: Any) -> Any:
        cache_key = (collection, key, name, canonical_json(stored))
        opened = self._opened.get(cache_key)
        if opened is None:
            try:
                value = open_value(self._keys, Location(self.room, collection, key, name), stored)
                opened = canonical_json(value)
            except Undecryptable as error:
                opened = error
                self._report(error)
            if len(self._opened) >= CACHE_LIMIT:
                self._opened.clear()
            self._opened[cache_key] = opened
        if isinstance(opened, Undecryptable):
            return opened
        return json.loads(opened)

"""Encrypted fields through the real suite: clients converge, while the database, the offline
store and every frame the edge fans out hold only ciphertext; wrong keys, tampering and moved
ciphertexts are reported, never shown; key rotation."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import uuid
from pathlib import Path

import aiohttp
from accord.client import (
    EncryptedFieldError,
    Encryption,
    Undecryptable,
    generate_key,
)

from tests.sdk.python.conftest import MakeClient, server_state, within
from tests.support.suite import Suite
from tests.support.wsclient import Client as RawClient
from tests.support.wsclient import make_token

K1, K2 = generate_key(), generate_key()
NOTES = {"notes": ["body", "title"]}


def secret() -> str:
    return f"PLAINTEXT-{uuid.uuid4().hex}"


def key_id(stored: str) -> str:
    data = stored.removeprefix("acc1:")
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return raw[2 : 2 + raw[1]].decode()


class Tap:
    """A raw protocol client subscribed to the room: it sees every frame the edge fans out."""

    def __init__(self, raw: RawClient, room: str) -> None:
        self.raw = raw
        self.room = room
        self.frames: list[str] = []
        self.seq = 0

    @classmethod
    async def open(cls, suite: Suite, room: str) -> Tap:
        raw = await RawClient.connect(suite.ws_url)
        await raw.hello(make_token("u-tap"), client_id="tap")
        await raw.subscribe(room)
        return cls(raw, room)

    async def read_until(self, head: int) -> str:
        """Read frames until the changes up to ``head`` have arrived; all frames' text."""
        async with asyncio.timeout(30):
            while self.seq < head:
                msg = await self.raw.ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                self.frames.append(msg.data)
                message = json.loads(msg.data)
                if message.get("type") == "changes":
                    self.seq = max(self.seq, *(c["seq"] for c in message["changes"]))
        return "\n".join(self.frames)


def database_text(path: Path) -> str:
    """Every row of every table, and the raw bytes of the database and its WAL."""
    parts: list[str] = []
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            parts.extend(repr(row) for row in db.execute(f"SELECT * FROM {table}"))
    for file in path.parent.glob(path.name + "*"):
        parts.append(file.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


async def test_clients_converge_and_the_server_holds_only_ciphertext(
    suite: Suite, make_client: MakeClient, tmp_path: Path
) -> None:
    room_name = "e2ee-converge"
    secrets = [secret() for _ in range(5)]
    encryption = Encryption(keys={"k1": K1}, current="k1", fields=NOTES)
    tap = await Tap.open(suite, room_name)
    offline = tmp_path / "alice-offline.db"
    alice = await make_client(suite.ws_url, "u-a", client_id="alice", offline_path=offline)
    bob = await make_client(suite.ws_url, "u-b", client_id="bob")
    ra = await alice.join(room_name, encryption=encryption)
    rb = await bob.join(room_name, encryption=encryption)

    await ra.set("notes", "n-1", title=secrets[0], body={"text": secrets[1]}, pinned=True)
    await rb.update("notes", "n-1", {"body": {"text": secrets[2], "by": "bob"}})
    await rb.set("notes", "n-2", title=secrets[3])
    await ra.incr("notes", "n-2", "views", 2)  # plain fields keep every op
    assert ra.get("notes", "n-1") == {
        "title": secrets[0],
        "body": {"text": secrets[1]},
        "pinned": True,
    }
    await within(alice.wait_synced())
    await within(bob.wait_synced())

    # Offline, a queued encrypted write is ciphertext in the offline store too.
    await alice.go_offline()
    await ra.set("notes", "n-3", body=secrets[4])
    assert ra.get("notes", "n-3") == {"body": secrets[4]}
    stored = offline.read_bytes().decode("utf-8", "replace")
    assert ra.pending == 1 and "n-3" in database_text(offline)
    for plaintext in secrets:
        assert plaintext not in stored and plaintext not in database_text(offline)
    alice.go_online()
    await within(alice.wait_synced())
    head, server = await server_state(suite.ws_url, room_name)
    await within(rb.wait_until(lambda: rb.seq == head))

    expected = {
        "n-1": {"title": secrets[0], "body": {"text": secrets[2], "by": "bob"}, "pinned": True},
        "n-2": {"title": secrets[3], "views": 2},
        "n-3": {"body": secrets[4]},
    }
    assert ra.records("notes") == rb.records("notes") == expected
    # The server's records: the same keys and plain fields, opaque strings for the rest.
    assert server["notes/n-1"]["pinned"] is True and server["notes/n-2"]["views"] == 2
    for name in ("notes/n-1", "notes/n-2", "notes/n-3"):
        for field in ("title", "body"):
            if field in server[name]:
                assert server[name][field].startswith("acc1:")
                assert key_id(server[name][field]) == "k1"

    frames = await tap.read_until(head)
    everything = "\n".join([frames, database_text(tmp_path / "accord.db"), database_text(offline)])
    assert "acc1:" in frames and "acc1:" in database_text(tmp_path / "accord.db")
    for plaintext in secrets:
        assert plaintext not in everything
    await tap.raw.close()


async def test_counters_sets_and_lists_on_encrypted_fields_queue_nothing(
    suite: Suite, make_client: MakeClient
) -> None:
    client = await make_client(suite.ws_url, client_id="refuse")
    room = await client.join("e2ee-refuse", encryption=Encryption({"k1": K1}, "k1", NOTES))
    refused = [
        room.incr("notes", "n", "body"),
        room.add("notes", "n", "title", "a"),
        room.remove("notes", "n", "title", "a"),
        room.insert("notes", "n", "body", "x"),
        room.remove_items("notes", "n", "body", "1.0@x"),
        room.apply("notes", "n", {"kind": "incr", "field": "title", "by": 1}),
    ]
    for call in refused:
        try:
            await call
        except EncryptedFieldError as error:
            assert "only set and delete" in str(error)
        else:
            raise AssertionError("an op on an encrypted field was queued")
    assert room.pending == 0 and room.records("notes") == {}
    await room.incr("notes", "n", "likes")  # a plain field of the same record is fine
    await room.delete("notes", "n")
    await within(client.wait_synced())
    head, server = await server_state(suite.ws_url, "e2ee-refuse")
    assert head == 2 and server == {}


async def test_wrong_keys_tampering_and_moves_are_reported_never_shown(
    suite: Suite, make_client: MakeClient
) -> None:
    room_name = "e2ee-hostile"
    good = Encryption(keys={"k1": K1}, current="k1", fields=NOTES)
    alice = await make_client(suite.ws_url, "u-a", client_id="alice")
    ra = await alice.join(room_name, encryption=good)
    await ra.set("notes", "n-1", body="the real note", title="t")
    await within(alice.wait_synced())
    _, server = await server_state(suite.ws_url, room_name)
    body = server["notes/n-1"]["body"]
    flipped = body[:-6] + ("A" if body[-6] != "A" else "B") + body[-5:]

    # A hostile writer (or server) moves, alters and forges values.
    async with await RawClient.connect(suite.ws_url) as mallory:
        await mallory.hello(make_token("u-m"), client_id="mallory")
        await mallory.subscribe(room_name)
        forged = {
            "n-2": {"body": body},  # another record
            "n-1": {"title": body},  # another field of the same record
            "n-3": {"body": flipped},  # altered
            "n-4": {"body": "forged plaintext", "title": 7},  # not encrypted at all
            "n-5": {"body": "acc1:not-a-value"},
        }
        changes = [
            {"client_seq": n, "collection": "notes", "key": key, "op": {"kind": "set", "fields": f}}
            for n, (key, f) in enumerate(forged.items(), start=1)
        ]
        ack = await mallory.push(room_name, changes)
        assert ack["type"] == "ack", ack

    errors: list[Exception] = []
    bob = await make_client(suite.ws_url, "u-b", client_id="bob", on_error=errors.append)
    rb = await bob.join(room_name, encryption=good)
    head, _ = await server_state(suite.ws_url, room_name)
    await within(rb.wait_until(lambda: rb.seq == head))
    records = rb.records("notes")

    def why(key: str, field: str) -> str:
        marker = records[key][field]
        assert isinstance(marker, Undecryptable), (key, field, marker)
        return marker.reason

    assert records["n-1"]["body"] == "the real note"
    assert why("n-1", "title") == "auth_failed"
    assert why("n-2", "body") == "auth_failed"
    assert why("n-3", "body") == "auth_failed"
    assert why("n-4", "body") == why("n-4", "title") == "not_encrypted"
    assert why("n-5", "body") == "malformed"
    assert body not in repr(records) and "forged plaintext" not in repr(records)
    reported = {(e.key, e.field, e.reason) for e in errors if isinstance(e, Undecryptable)}
    assert ("n-2", "body", "auth_failed") in reported and (
        "n-4",
        "body",
        "not_encrypted",
    ) in reported

    # A reader with another key under the same id: nothing shows; the sync loop goes on.
    eve_errors: list[Exception] = []
    eve = await make_client(suite.ws_url, "u-e", client_id="eve", on_error=eve_errors.append)
    wrong = Encryption(keys={"k1": K2}, current="k1", fields=NOTES)
    re_ = await eve.join(room_name, encryption=wrong)
    await within(re_.wait_until(lambda: re_.seq == head))
    marker = (re_.get("notes", "n-1") or {})["body"]
    assert isinstance(marker, Undecryptable) and marker.reason == "auth_failed"
    assert any(isinstance(e, Undecryptable) for e in eve_errors)
    await ra.set("notes", "n-1", body="after the attack")
    await within(
        rb.wait_until(lambda: (rb.get("notes", "n-1") or {}).get("body") == "after the attack")
    )
    await within(re_.wait_until(lambda: re_.seq == rb.seq))
    assert isinstance((re_.get("notes", "n-1") or {})["body"], Undecryptable)
    assert bob.error is None and eve.error is None


async def test_rotation_new_writes_use_the_new_key_old_values_stay_readable(
    suite: Suite, make_client: MakeClient
) -> None:
    room_name = "e2ee-rotate"
    first = Encryption(keys={"k1": K1}, current="k1", fields=NOTES)
    alice = await make_client(suite.ws_url, "u-a", client_id="alice")
    ra = await alice.join(room_name, encryption=first)
    await ra.set("notes", "old", body="written under k1")
    ra.set_encryption(first.rotated("k2", K2))
    assert ra.encryption is not None and ra.encryption.current == "k2"
    await ra.set("notes", "new", body="written under k2")
    await within(alice.wait_synced())
    head, server = await server_state(suite.ws_url, room_name)
    assert key_id(server["notes/old"]["body"]) == "k1"
    assert key_id(server["notes/new"]["body"]) == "k2"
    assert ra.records("notes") == {
        "old": {"body": "written under k1"},
        "new": {"body": "written under k2"},
    }

    # A member given only the new key reads the new value; the old one names its missing key.
    carol = await make_client(suite.ws_url, "u-c", client_id="carol")
    only_new = Encryption(keys={"k2": K2}, current="k2", fields=NOTES)
    rc = await carol.join(room_name, encryption=only_new)
    await within(rc.wait_until(lambda: rc.seq == head))
    assert rc.get("notes", "new") == {"body": "written under k2"}
    marker = (rc.get("notes", "old") or {})["body"]
    assert isinstance(marker, Undecryptable)
    assert (marker.reason, marker.key_id) == ("unknown_key", "k1")

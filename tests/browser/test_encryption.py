"""Encrypted fields across SDKs: a Python client and a browser client (Chromium, the SDK from
/sdk/accord.js) exchange encrypted fields in one room and converge, while PostgreSQL, the
frames the edge fans out and the browser's IndexedDB hold only ciphertext; forged values show
as Undecryptable in the browser, never as data."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from accord.client import Client, Encryption, Undecryptable, generate_key
from playwright.async_api import Browser, Page

from tests.sdk.python.conftest import FAST
from tests.support.suite import Suite
from tests.support.wsclient import Client as RawClient
from tests.support.wsclient import make_token

pytestmark = pytest.mark.browser

FIELDS = {"notes": ["body", "title"]}
WAIT = 20.0

# In the page: the SDK joins the room with the same key, given as bytes.
JOIN = """async ({url, room, key, fields}) => {
    const sdk = await import("/sdk/accord.js");
    window.sdk = sdk;
    window.errors = [];
    const client = await sdk.connect({url, dbName: "e2ee-test"});
    window.client = client;
    const encryption = {keys: {k1: new Uint8Array(key)}, current: "k1", fields};
    window.room = await client.join(room, {encryption});
    window.room.on("error", (e) => window.errors.push({reason: e.reason, key: e.key}));
    await window.room.synced();
}"""

# The visible records, with any Undecryptable marker shown as {"undecryptable": reason}.
LIST = """(collection) => window.room.list(collection).map(({key, value}) => [key,
    Object.fromEntries(Object.entries(value).map(([f, v]) =>
        [f, v instanceof window.sdk.Undecryptable ? {undecryptable: v.reason} : v]))])"""

# Everything the SDK stored in IndexedDB, as JSON text.
DUMP_INDEXEDDB = """async () => {
    const db = await new Promise((ok, fail) => {
        const r = indexedDB.open("e2ee-test");
        r.onsuccess = () => ok(r.result);
        r.onerror = fail;
    });
    const out = {};
    for (const name of db.objectStoreNames) {
        out[name] = await new Promise((ok, fail) => {
            const r = db.transaction(name).objectStore(name).getAll();
            r.onsuccess = () => ok(r.result); r.onerror = fail; });
    }
    db.close();
    return JSON.stringify(out);
}"""


async def until(check: Callable[[], Any], what: str) -> None:
    """Poll ``check`` (a browser and a client share no event to wait on)."""
    async with asyncio.timeout(WAIT):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert await check(), what


async def database_text(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        rows: list[str] = []
        for table in tables:
            for row in await conn.fetch(f'SELECT * FROM "{table["table_name"]}"'):
                rows.append(repr(tuple(row)))
        return "\n".join(rows)
    finally:
        await conn.close()


async def tap(url: str, room: str, frames: list[str], stop: asyncio.Event) -> None:
    """A raw subscriber: keeps the text of every frame the edge fans out to the room."""
    async with await RawClient.connect(url) as raw:
        await raw.hello(make_token("u-tap"), client_id="tap")
        await raw.subscribe(room)
        while not stop.is_set():
            try:
                msg = await raw.ws.receive(timeout=0.2)
            except TimeoutError:
                continue
            if msg.type == aiohttp.WSMsgType.TEXT:
                frames.append(msg.data)
            elif msg.type != aiohttp.WSMsgType.PING:
                return


def tapped_seq(frames: list[str]) -> int:
    seqs = [
        change["seq"]
        for frame in frames
        if (message := json.loads(frame)).get("type") == "changes"
        for change in message["changes"]
    ]
    return max(seqs, default=0)


async def visible(page: Page, collection: str = "notes") -> dict[str, Any]:
    return dict(await page.evaluate(LIST, collection))


async def test_python_and_browser_exchange_encrypted_fields_and_the_server_sees_ciphertext(
    browser: Browser, make_suite: Callable[..., Any], database_url: str
) -> None:
    suite: Suite = await make_suite(database_url=database_url, edge_env={"ALLOW_ANONYMOUS": "true"})
    room = f"e2ee-{uuid.uuid4().hex[:8]}"
    key = generate_key()
    secrets = {name: f"PLAINTEXT-{name}-{uuid.uuid4().hex}" for name in "abcdef"}
    frames: list[str] = []
    stop = asyncio.Event()
    tapping = asyncio.create_task(tap(suite.ws_url, room, frames, stop))

    encryption = Encryption(keys={"k1": key}, current="k1", fields=FIELDS)
    async with Client(suite.ws_url, token=make_token("u-py"), client_id="py", backoff=FAST) as py:
        rp = await py.join(room, encryption=encryption)
        page = await (await browser.new_context()).new_page()
        page_errors: list[str] = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        await page.goto(suite.http_url + "/")
        await page.evaluate(
            JOIN, {"url": suite.ws_url, "room": room, "key": list(key), "fields": FIELDS}
        )

        # Both write encrypted and plain fields, in the same records and in their own.
        await rp.set("notes", "n-1", body=secrets["a"], pinned=True)
        await page.evaluate(
            """(s) => {
            room.set("notes", "n-2", {body: {text: s.b, tags: ["x"]}, title: s.c});
            room.set("notes", "n-1", {title: s.d});
            room.incr("notes", "n-2", "views", 2);
        }""",
            secrets,
        )
        refused = await page.evaluate(
            """() => { try { room.incr("notes", "n-1", "body"); return null; }
                       catch (e) { return [e.name, room.pendingCount]; } }"""
        )
        assert refused is not None and refused[0] == "EncryptedFieldError"
        # A concurrent write of one encrypted field from both sides: one value wins everywhere.
        await asyncio.gather(
            rp.set("notes", "n-3", body=secrets["e"]),
            page.evaluate("(v) => room.set('notes', 'n-3', {body: v})", secrets["f"]),
        )
        await asyncio.wait_for(py.wait_synced(), WAIT)
        await page.evaluate("() => room.synced()")

        async def converged() -> bool:
            return rp.seq >= 6 and await visible(page) == rp.records("notes")

        await until(converged, "the browser and the Python client converge")
        records = rp.records("notes")
        assert records["n-1"] == {"body": secrets["a"], "title": secrets["d"], "pinned": True}
        assert records["n-2"] == {
            "body": {"text": secrets["b"], "tags": ["x"]},
            "title": secrets["c"],
            "views": 2,
        }
        assert records["n-3"]["body"] in (secrets["e"], secrets["f"])

        # What the server and the network saw, and what the browser stored.
        async def tapped() -> bool:
            return tapped_seq(frames) >= rp.seq

        await until(tapped, "the tap saw every change")

        async def persisted() -> bool:
            # The SDK writes a room to IndexedDB when it subscribes (seq 0, no records) and
            # again after changes: wait for the write that holds everything the client has.
            rooms = json.loads(await page.evaluate(DUMP_INDEXEDDB))["rooms"]
            return any(room.get("seq", 0) >= rp.seq and room.get("records") for room in rooms)

        await until(persisted, "the page stored the room in IndexedDB")
        stored = await page.evaluate(DUMP_INDEXEDDB)
        database = await database_text(database_url)
        for place, text in (
            ("frames", "\n".join(frames)),
            ("database", database),
            ("indexeddb", stored),
        ):
            assert "acc1:" in text, place
            for plaintext in secrets.values():
                assert plaintext not in text, (place, plaintext)

        # A forged plain value and a ciphertext moved to another record: never shown as data.
        body = (rp.replica.confirmed_record(("notes", "n-1")) or {})["body"]
        assert isinstance(body, str) and body.startswith("acc1:")
        async with await RawClient.connect(suite.ws_url) as mallory:
            await mallory.hello(make_token("u-m"), client_id="mallory")
            await mallory.subscribe(room)
            forged = [("n-4", {"body": "forged plaintext"}), ("n-5", {"body": body})]
            ack = await mallory.push(
                room,
                [
                    {
                        "client_seq": n,
                        "collection": "notes",
                        "key": k,
                        "op": {"kind": "set", "fields": f},
                    }
                    for n, (k, f) in enumerate(forged, start=1)
                ],
            )
            assert ack["type"] == "ack", ack

        async def forged_seen() -> bool:
            return {"n-4", "n-5"} <= set(await visible(page)) and rp.seq >= ack["results"][-1][
                "seq"
            ]

        await until(forged_seen, "both clients got the forged changes")
        shown = await visible(page)
        assert shown["n-4"]["body"] == {"undecryptable": "not_encrypted"}
        assert shown["n-5"]["body"] == {"undecryptable": "auth_failed"}
        assert "forged plaintext" not in json.dumps(shown) and body not in json.dumps(shown)
        reasons = {e["key"]: e["reason"] for e in await page.evaluate("() => window.errors")}
        assert reasons.get("n-4") == "not_encrypted" and reasons.get("n-5") == "auth_failed"
        python_view = rp.records("notes")
        assert isinstance(python_view["n-5"]["body"], Undecryptable)
        assert python_view["n-5"]["body"].reason == "auth_failed"
        assert page_errors == []
        await page.evaluate("() => client.close()")
    stop.set()
    await tapping

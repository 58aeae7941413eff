// End-to-end encrypted fields: the acc1 format and the vector shared with the Python SDK,
// AAD binding, tampering, wrong keys, rotation, refused ops, and the Room's write/read path
// against the fake edge (order of queued writes, only ciphertext leaves the client).
// Run: node --test clients/js/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { EncryptedFieldError, EncryptionError, FieldCipher, Undecryptable, connect, generateKey } from "../src/accord.js";
import { associatedData, importKey, openValue, parseValue, plaintextOf, sealValue } from "../src/encryption.js";
import { FakeEdge, options, until } from "./fake-edge.mjs";

// docs/encryption.md; tests/sdk/python/test_encryption.py checks the same bytes.
const VECTOR = {
  key: Uint8Array.from({ length: 32 }, (_, i) => i),
  nonce: Uint8Array.from([0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb]),
  where: { room: "vector-room", collection: "notes", key: "n-1", field: "body" },
  value: { text: "Grüße 🌍", n: [1, true, null] },
  plaintext: "7b226e223a5b312c747275652c6e756c6c5d2c2274657874223a224772c3bcc39f6520f09f8c8d227d",
  aad: "6163636f72642d6532656501000000026b310000000b766563746f722d726f6f6d000000056e6f746573000000036e2d3100000004626f6479",
  stored: "acc1:AQJrMfDx8vP09fb3-Pn6-xIkLSJGYeNY64WC_6IkF9p8vHXgTGI37HRsEecr8G7Eg3U2dN8PPLvlbWz8P2VBorctie4uWqU-gQ",
};

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const blob = (stored) => new Uint8Array(Buffer.from(stored.slice(5), "base64url"));
const text = (bytes) => `acc1:${Buffer.from(bytes).toString("base64url")}`;
const K1 = generateKey();
const K2 = generateKey();
const at = (collection, key, field, room = "r") => ({ room, collection, key, field });

async function reason(keys, where, stored) {
  try {
    await openValue(keys, where, stored);
  } catch (error) {
    assert.ok(error instanceof Undecryptable, String(error));
    assert.equal(error.field, where.field);
    return error.reason;
  }
  assert.fail("decrypted");
}

test("the shared vector, byte for byte", async () => {
  assert.equal(hex(new TextEncoder().encode(plaintextOf(VECTOR.value))), VECTOR.plaintext);
  assert.equal(hex(associatedData("k1", VECTOR.where)), VECTOR.aad);
  const key = await importKey(VECTOR.key);
  assert.equal(await sealValue("k1", key, VECTOR.where, VECTOR.value, { nonce: VECTOR.nonce }), VECTOR.stored);
  assert.deepEqual(await openValue(new Map([["k1", key]]), VECTOR.where, VECTOR.stored), VECTOR.value);
  const parts = parseValue(VECTOR.stored, VECTOR.where);
  assert.equal(parts.keyId, "k1");
  assert.deepEqual([...parts.nonce], [...VECTOR.nonce]);
});

test("round trip, a fresh nonce every time, and a ciphertext moved anywhere fails", async () => {
  const key = await importKey(K1);
  const keys = new Map([["k1", key]]);
  const where = at("c", "k", "f");
  for (const value of [null, "", "héllo\u0000", 0, -7, 2.5, true, [1, [2, { a: null }]], { z: 1, a: "b" }]) {
    assert.deepEqual(await openValue(keys, where, await sealValue("k1", key, where, value)), value);
  }
  const many = await Promise.all(Array.from({ length: 30 }, () => sealValue("k1", key, where, "same")));
  assert.equal(new Set(many.map((s) => hex(blob(s).subarray(4, 16)))).size, 30);
  const sealed = many[0];
  for (const moved of [at("c", "k", "other"), at("c", "other", "f"), at("other", "k", "f"), at("c", "k", "f", "other-room"), at("c", "kf", ""), at("ck", "", "f")]) {
    assert.equal(await reason(keys, moved, sealed), "auth_failed", JSON.stringify(moved));
  }
});

test("tampering, wrong keys, unknown keys, malformed and plain values", async () => {
  const key = await importKey(K1);
  const keys = new Map([["k1", key]]);
  const where = at("c", "k", "f");
  const sealed = await sealValue("k1", key, where, "a private note");
  for (let i = 4; i < blob(sealed).length; i++) {
    const data = blob(sealed);
    data[i] ^= 1;
    assert.equal(await reason(keys, where, text(data)), "auth_failed", `byte ${i}`);
  }
  const relabelled = blob(sealed);
  relabelled[3] = "2".charCodeAt(0);
  assert.equal(await reason(new Map([["k1", key], ["k2", key]]), where, text(relabelled)), "auth_failed");
  assert.equal(await reason(new Map([["k1", await importKey(K2)]]), where, sealed), "auth_failed");
  assert.equal(await reason(new Map([["k2", key]]), where, sealed), "unknown_key");
  assert.equal(await reason(keys, where, sealed.slice(0, 20)), "malformed");
  assert.equal(await reason(keys, where, "acc1:***"), "malformed");
  assert.equal(await reason(keys, where, "acc1:A"), "malformed");
  const v2 = blob(sealed);
  v2[0] = 2;
  assert.equal(await reason(keys, where, text(v2)), "malformed");
  for (const plain of ["a private note", 42, null, ["x"], { v: sealed }]) assert.equal(await reason(keys, where, plain), "not_encrypted");
});

test("options are checked; ops that need the plaintext are refused before queueing", async () => {
  await assert.rejects(FieldCipher.create("r", { keys: { k1: new Uint8Array(16) }, current: "k1", fields: {} }), EncryptionError);
  await assert.rejects(FieldCipher.create("r", { keys: { k1: K1 }, current: "k2", fields: {} }), /not in keys/);
  await assert.rejects(FieldCipher.create("r", { keys: { "k 1": K1 }, current: "k 1", fields: {} }), /key ids/);
  await assert.rejects(FieldCipher.create("r", { keys: { k1: K1 }, current: "k1", fields: { notes: "body" } }), /array of field names/);
  const cipher = await FieldCipher.create("r", { keys: { k1: K1 }, current: "k1", fields: { notes: ["body"] } });
  for (const op of [
    { kind: "incr", field: "body", by: 1 },
    { kind: "add", field: "body", values: ["a"] },
    { kind: "remove", field: "body", values: ["a"], seen: 0 },
    { kind: "insert", field: "body", after: null, values: ["a"] },
    { kind: "remove_items", field: "body", ids: ["1.0@x"] },
  ]) {
    assert.throws(() => cipher.prepareOp("notes", "n", op), EncryptedFieldError);
    assert.equal(cipher.prepareOp("notes", "n", { ...op, field: "tags" }), null);
    assert.equal(cipher.prepareOp("todos", "n", op), null);
  }
  assert.equal(cipher.prepareOp("notes", "n", { kind: "delete" }), null);
  assert.throws(() => cipher.prepareOp("notes", "n", { kind: "set", fields: { body: () => 1 } }), /must be JSON/);
});

test("a room: encrypted writes show at once, leave in client_seq order as ciphertext, and converge", async () => {
  const edge = new FakeEdge();
  const encryption = { keys: { k1: K1 }, current: "k1", fields: { notes: ["body", "title"] } };
  const a = await connect(options(edge, "a"));
  const b = await connect(options(edge, "b"));
  const ra = await a.join("diary", { encryption });
  const rb = await b.join("diary", { encryption });
  await until(() => ra.status.state === "synced" && rb.status.state === "synced", "both synced");
  const seen = [];
  rb.on("change", (change) => seen.push(change));

  ra.set("notes", "n-1", { body: "secret one", pinned: true });
  ra.set("todos", "t-1", { title: "plain" });
  ra.set("notes", "n-1", { title: { deep: "secret two" } });
  ra.incr("notes", "n-1", "views", 3);
  assert.deepEqual(ra.get("notes", "n-1"), { body: "secret one", pinned: true, title: { deep: "secret two" }, views: 3 });
  assert.throws(() => ra.incr("notes", "n-1", "body"), EncryptedFieldError);
  assert.throws(() => ra.insert("notes", "n-1", "title", null, ["x"]), EncryptedFieldError);
  assert.equal(ra.pendingCount, 4);

  await until(() => rb.get("notes", "n-1")?.views === 3, "b sees every write");
  await until(() => ra.status.state === "synced", "a synced");
  // Pushed once each, in client_seq order: the plain writes waited for the encrypted ones before them.
  assert.deepEqual(edge.received.map((c) => `${c.collection}.${c.op.kind}`), ["notes.set", "todos.set", "notes.set", "notes.incr"]);
  assert.deepEqual(edge.received.map((c) => c.client_seq - edge.received[0].client_seq), [0, 1, 2, 3]);
  const wire = JSON.stringify(edge.received) + JSON.stringify([...edge.log.values()]);
  assert.ok(!wire.includes("secret one") && !wire.includes("secret two"), wire);
  assert.ok(edge.received[0].op.fields.body.startsWith("acc1:") && edge.received[1].op.fields.title === "plain");
  assert.deepEqual(rb.get("notes", "n-1"), ra.get("notes", "n-1"));
  assert.ok(seen.every((c) => !JSON.stringify(c.value).includes("acc1:")), JSON.stringify(seen));
  // The replica itself holds only ciphertext.
  assert.ok(ra.replica.get("notes", "n-1").body.startsWith("acc1:"));
  a.close();
  b.close();
});

test("a room: forged values and wrong keys give Undecryptable and an error event; rotation", async () => {
  const edge = new FakeEdge();
  const first = { keys: { k1: K1 }, current: "k1", fields: { notes: ["body"] } };
  const a = await connect(options(edge, "a"));
  const ra = await a.join("diary", { encryption: first });
  ra.set("notes", "old", { body: "under k1" });
  await until(() => ra.status.state === "synced", "a synced");
  const body = edge.log.get("diary")[0].patch.set.body;
  // The edge is hostile: it moves a ciphertext and forges a plain value.
  edge.log.get("diary").push(
    { seq: 2, collection: "notes", key: "moved", client_id: "m", client_seq: 1, ts: 1, patch: { set: { body } } },
    { seq: 3, collection: "notes", key: "forged", client_id: "m", client_seq: 2, ts: 2, patch: { set: { body: "plain!" } } },
  );

  await ra.setEncryption({ ...first, keys: { k1: K1, k2: K2 }, current: "k2" });
  assert.equal(ra.encryption.current, "k2");
  ra.set("notes", "new", { body: "under k2" });
  await until(() => ra.status.state === "synced", "a synced again");
  const stored = edge.log.get("diary").find((c) => c.key === "new").patch.set.body;
  assert.equal(parseValue(stored, {}).keyId, "k2");

  const errors = [];
  const b = await connect(options(edge, "b"));
  const rb = await b.join("diary", { encryption: { keys: { k2: K2 }, current: "k2", fields: { notes: ["body"] } } });
  rb.on("error", (e) => errors.push(e));
  await until(() => rb.seq === 4, "b caught up");
  assert.deepEqual(rb.get("notes", "new"), { body: "under k2" });
  const old = rb.get("notes", "old").body;
  assert.ok(old instanceof Undecryptable && old.reason === "unknown_key" && old.keyId === "k1");
  assert.equal(rb.get("notes", "moved").body.reason, "unknown_key");
  assert.equal(rb.get("notes", "forged").body.reason, "not_encrypted");
  assert.ok(errors.some((e) => e.code === "UNDECRYPTABLE" && e.key === "forged"), JSON.stringify(errors));
  assert.throws(() => rb.set("notes", "old", { body: rb.get("notes", "old").body }), EncryptedFieldError);

  const ra2 = a.rooms.get("diary");
  assert.equal(ra2.get("notes", "moved").body.reason, "auth_failed");
  assert.deepEqual(ra2.get("notes", "old"), { body: "under k1" });
  a.close();
  b.close();
});

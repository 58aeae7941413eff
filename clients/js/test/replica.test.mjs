// Unit tests of the replica: patches, optimistic apply, rebase, snapshots. Run: node --test clients/js/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { Replica, applyOp, applyPatch } from "../src/replica.js";

const change = (seq, key, patch, extra = {}) => ({ seq, collection: "todos", key, client_id: "other", client_seq: seq, ts: seq, patch, ...extra });
const local = (client_seq, key, op) => ({ client_seq, collection: "todos", key, ts: client_seq, op });

test("patches apply in the listed order", () => {
  assert.deepEqual(applyPatch(undefined, { set: { a: 1 } }), { a: 1 });
  assert.deepEqual(applyPatch({ a: 1, b: 2 }, { unset: ["a"], set: { c: 3 }, incr: { b: 5 } }), { b: 7, c: 3 });
  assert.equal(applyPatch({ a: 1 }, { deleted: true }), undefined);
  assert.deepEqual(applyPatch(undefined, { incr: { n: 2 } }), { n: 2 });
  assert.deepEqual(applyPatch({ a: 1 }, {}), { a: 1 });
});

test("ops apply like the server without conflicts", () => {
  assert.deepEqual(applyOp({ a: 1 }, { kind: "set", fields: { b: 2 } }), { a: 1, b: 2 });
  assert.equal(applyOp({ a: 1 }, { kind: "delete" }), undefined);
  assert.deepEqual(applyOp({ n: 1 }, { kind: "incr", field: "n", by: 4 }), { n: 5 });
  assert.deepEqual(applyOp({ n: "x" }, { kind: "incr", field: "n", by: 4 }), { n: "x" });
});

test("a local change shows at once and leaves the queue when its own change arrives", () => {
  const events = [];
  const replica = new Replica({ onChange: (c, k, v) => events.push([k, v]) });
  replica.addLocal(local(1, "t-1", { kind: "set", fields: { title: "milk", done: false } }));
  assert.deepEqual(replica.get("todos", "t-1"), { title: "milk", done: false });
  assert.equal(replica.pending.length, 1);
  replica.applyChanges([change(1, "t-1", { set: { title: "milk", done: false } }, { client_id: "me", client_seq: 1 })], "me");
  assert.equal(replica.pending.length, 0);
  assert.equal(replica.seq, 1);
  assert.deepEqual(replica.get("todos", "t-1"), { title: "milk", done: false });
  assert.equal(events.length, 1, "confirming an optimistic change changes nothing visible");
});

test("pending changes are rebased over concurrent remote changes", () => {
  const replica = new Replica();
  replica.applyChanges([change(1, "t-1", { set: { title: "milk", done: false } })], "me");
  replica.addLocal(local(1, "t-1", { kind: "set", fields: { done: true } }));
  replica.addLocal(local(2, "t-1", { kind: "incr", field: "votes", by: 2 }));
  // Someone else renames it and votes meanwhile.
  replica.applyChanges([change(2, "t-1", { set: { title: "oat milk" }, incr: {} }), change(3, "t-1", { incr: { votes: 1 } })], "me");
  assert.deepEqual(replica.get("todos", "t-1"), { title: "oat milk", done: true, votes: 3 });
  // The server merged ours too: the view is now exactly the confirmed state.
  replica.applyChanges([change(4, "t-1", { set: { done: true } }, { client_id: "me", client_seq: 1 })], "me");
  assert.deepEqual(replica.get("todos", "t-1"), { title: "oat milk", done: true, votes: 3 });
  replica.applyChanges([change(5, "t-1", { incr: { votes: 2 } }, { client_id: "me", client_seq: 2 })], "me");
  assert.deepEqual(replica.get("todos", "t-1"), { title: "oat milk", done: true, votes: 3 });
  assert.equal(replica.pending.length, 0);
});

test("a local set that lost on the server falls back to the server's value", () => {
  const replica = new Replica();
  replica.addLocal(local(1, "t-1", { kind: "set", fields: { title: "mine" } }));
  replica.applyChanges([change(1, "t-1", { set: { title: "theirs" } })], "me");
  assert.deepEqual(replica.get("todos", "t-1"), { title: "mine" }, "still pending: ours shows");
  // Ours was stored but lost to a later clock: its patch is empty.
  replica.applyChanges([change(2, "t-1", {}, { client_id: "me", client_seq: 1 })], "me");
  assert.deepEqual(replica.get("todos", "t-1"), { title: "theirs" });
});

test("a delete wins locally until confirmed, and a remote delete hides the record", () => {
  const replica = new Replica();
  replica.applyChanges([change(1, "a", { set: { x: 1 } }), change(2, "b", { set: { x: 2 } })], "me");
  replica.addLocal(local(1, "a", { kind: "delete" }));
  assert.equal(replica.get("todos", "a"), undefined);
  replica.applyChanges([change(3, "b", { deleted: true })], "me");
  assert.deepEqual(replica.entries("todos"), []);
});

test("acks confirm once the seq they name is applied; duplicates with seq 0 at once", () => {
  const replica = new Replica();
  replica.addLocal(local(1, "a", { kind: "set", fields: { x: 1 } }));
  replica.addLocal(local(2, "b", { kind: "set", fields: { x: 2 } }));
  replica.acknowledge({ client_seq: 1, seq: 1, status: "applied" });
  assert.equal(replica.pending.length, 2, "seq 1 not applied yet");
  replica.acknowledge({ client_seq: 2, seq: 0, status: "duplicate" });
  assert.deepEqual(replica.pending.map((p) => p.client_seq), [1]);
  replica.applySnapshotChunk({ seq: 5, records: [{ collection: "todos", key: "a", value: { x: 1 } }], last: true });
  assert.equal(replica.pending.length, 0);
  assert.deepEqual(replica.get("todos", "a"), { x: 1 });
});

test("a snapshot in chunks replaces the records and keeps pending changes on top", () => {
  const replica = new Replica();
  replica.applyChanges([change(1, "old", { set: { x: 1 } })], "me");
  replica.addLocal(local(1, "mine", { kind: "set", fields: { y: 1 } }));
  replica.applySnapshotChunk({ seq: 10, records: [{ collection: "todos", key: "a", value: { x: 1 } }], last: false });
  assert.deepEqual(replica.get("todos", "old"), { x: 1 }, "nothing changes before the last chunk");
  replica.applySnapshotChunk({ seq: 10, records: [{ collection: "todos", key: "b", value: { x: 2 } }], last: true });
  assert.deepEqual(replica.entries("todos").map(([k]) => k), ["a", "b", "mine"]);
  assert.equal(replica.seq, 10);
});

test("old seqs are skipped and a gap is reported", () => {
  const replica = new Replica();
  assert.equal(replica.applyChanges([change(1, "a", { set: { x: 1 } }), change(2, "a", { set: { x: 2 } })], "me"), true);
  assert.equal(replica.applyChanges([change(2, "a", { set: { x: 9 } })], "me"), true);
  assert.deepEqual(replica.get("todos", "a"), { x: 2 });
  assert.equal(replica.applyChanges([change(4, "a", { set: { x: 4 } })], "me"), false);
  assert.equal(replica.seq, 2);
});

test("two replicas fed the same changes in seq order end equal, whatever they queued", () => {
  const server = [
    change(1, "a", { set: { x: 1 } }),
    change(2, "b", { set: { y: 1 } }, { client_id: "A", client_seq: 1 }),
    change(3, "a", { unset: ["x"], set: { z: 3 } }, { client_id: "B", client_seq: 1 }),
    change(4, "b", { deleted: true }),
  ];
  const a = new Replica();
  const b = new Replica();
  a.addLocal(local(1, "b", { kind: "set", fields: { y: 1 } }));
  b.addLocal(local(1, "a", { kind: "set", fields: { z: 3 } }));
  a.applyChanges(server.slice(0, 2), "A");
  a.applyChanges(server.slice(2), "A");
  for (const c of server) b.applyChanges([c], "B");
  assert.deepEqual(a.entries("todos"), b.entries("todos"));
  assert.deepEqual(a.entries("todos"), [["a", { z: 3 }]]);
});

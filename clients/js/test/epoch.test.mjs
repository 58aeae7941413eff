// The room's epoch (docs/protocol.md): stored with `since`, sent on resume, and a
// snapshot in another history replaces the replica. Run: node --test clients/js/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { MemoryStore, connect } from "../src/accord.js";
import { FakeEdge, options, until } from "./fake-edge.mjs";

const change = (seq, key, fields) => ({ seq, collection: "todos", key, client_id: "other", client_seq: seq, ts: seq, patch: { set: fields } });

test("the epoch is stored with since and sent back on resume, also after a restart", async () => {
  const edge = new FakeEdge();
  edge.epochs.set("r", "e-first");
  const store = new MemoryStore();
  const a = await connect({ ...options(edge, "a"), storage: store });
  const ra = await a.join("r");
  await ra.synced();
  ra.set("todos", "t", { title: "milk" });
  await until(() => ra.seq === 1 && a.status.state === "synced", "push");
  await until(() => store.rooms.get("r")?.seq === 1, "saved");
  assert.equal(store.rooms.get("r").epoch, "e-first");
  edge.cut();
  await until(() => edge.subscribes.length === 2 && a.status.state === "synced", "resume");
  assert.deepEqual([edge.subscribes[1].since, edge.subscribes[1].epoch], [1, "e-first"]);
  a.close();

  const again = await connect({ ...options(edge, "a"), storage: store });
  const rAgain = await again.join("r");
  await rAgain.synced();
  assert.deepEqual([edge.subscribes[2].since, edge.subscribes[2].epoch], [1, "e-first"]);
  assert.deepEqual(rAgain.get("todos", "t"), { title: "milk" });
  again.close();
});

test("a snapshot after a resume with since > 0 replaces the state and its epoch is kept", async () => {
  const edge = new FakeEdge();
  const store = new MemoryStore();
  const a = await connect({ ...options(edge, "a"), storage: store });
  const ra = await a.join("r");
  await ra.synced();
  ra.set("todos", "old-1", { n: 1 });
  ra.set("todos", "old-2", { n: 2 });
  ra.set("todos", "shared", { v: "old" });
  await until(() => ra.seq === 3 && a.status.state === "synced", "pushes");
  edge.cut();
  // Restored from a backup and written on: 5 changes (since 3 <= head 5, so only the epoch tells).
  edge.restore("r", [1, 2, 3, 4, 5].map((seq) => change(seq, seq === 5 ? "shared" : `new-${seq}`, { seq })), "e2");
  await until(() => edge.subscribes.length === 2 && ra.seq === 5 && a.status.state === "synced", "resync");
  assert.equal(edge.subscribes[1].epoch, "e1");
  assert.deepEqual(ra.list("todos").map((e) => e.key), ["new-1", "new-2", "new-3", "new-4", "shared"]);
  assert.deepEqual(ra.get("todos", "shared"), { seq: 5 }, "the new history's value, not a merge with the old");
  await until(() => store.rooms.get("r")?.epoch === "e2" && store.rooms.get("r").seq === 5, "saved");
  assert.deepEqual(store.rooms.get("r").records.map((r) => r.key).sort(), ["new-1", "new-2", "new-3", "new-4", "shared"]);
  a.close();
});

test("a resume the server takes in its history keeps the suffix and learns the epoch from it", async () => {
  const edge = new FakeEdge();
  const a = await connect(options(edge, "a"));
  const ra = await a.join("r");
  await ra.synced();
  ra.set("todos", "t", { n: 1 });
  await until(() => ra.seq === 1 && a.status.state === "synced", "push");
  edge.cut();
  // A later name of the same history (as sync renames a room's initial epoch once it
  // has changes): the fake answers with the changes, not a snapshot.
  edge.epochs.set("r", "e1-later");
  edge.aliases.set("r", ["e1"]);
  edge.log.get("r").push(change(2, "u", { n: 2 }));
  await until(() => ra.seq === 2 && a.status.state === "synced", "resume");
  assert.equal(edge.snapshots, 0);
  assert.deepEqual(ra.get("todos", "t"), { n: 1 });
  assert.equal(ra.replica.epoch, "e1-later", "taken with the changes that followed");
  a.close();
});

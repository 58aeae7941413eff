// The Client and Room against an in-memory fake of the edge: queueing, acks,
// reconnect with resume, lost acks, status. Run: node --test clients/js/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { connect } from "../src/accord.js";
import { FakeEdge, options, until } from "./fake-edge.mjs";

test("two clients converge and their queues empty", async () => {
  const edge = new FakeEdge();
  const a = await connect(options(edge, "a"));
  const b = await connect(options(edge, "b"));
  const ra = await a.join("r");
  const rb = await b.join("r");
  await Promise.all([ra.synced(), rb.synced()]);
  ra.set("todos", "t1", { title: "milk" });
  assert.equal(a.status.text, "pending 1");
  rb.incr("todos", "t1", "votes", 2);
  await until(() => a.status.state === "synced" && b.status.state === "synced" && ra.seq === 2 && rb.seq === 2, "sync");
  assert.deepEqual(ra.get("todos", "t1"), { title: "milk", votes: 2 });
  assert.deepEqual(rb.list("todos"), ra.list("todos"));
  a.close();
  b.close();
});

test("changes made while disconnected are queued, then sent after resuming", async () => {
  const edge = new FakeEdge();
  const a = await connect(options(edge, "a"));
  const b = await connect(options(edge, "b"));
  const ra = await a.join("r");
  const rb = await b.join("r");
  await Promise.all([ra.synced(), rb.synced()]);
  const statuses = [];
  a.on("status", (s) => statuses.push(s.text));
  edge.cut();
  ra.set("todos", "x", { title: "offline 1" });
  ra.set("todos", "y", { title: "offline 2" });
  assert.equal(ra.pendingCount, 2);
  assert.deepEqual(ra.get("todos", "x"), { title: "offline 1" });
  await until(() => ra.seq === 2 && rb.seq === 2 && a.status.state === "synced", "catch-up");
  assert.ok(statuses.includes("offline, pending 2") || statuses.includes("offline, pending 1"), statuses.join());
  assert.ok(statuses.includes("connecting"), statuses.join());
  assert.deepEqual(rb.list("todos").map((e) => e.key), ["x", "y"]);
  a.close();
  b.close();
});

test("a push whose ack was lost is retried and recognised as a duplicate", async () => {
  const edge = new FakeEdge();
  const a = await connect(options(edge, "a"));
  const ra = await a.join("r");
  await ra.synced();
  edge.dropNextAck = true;
  ra.incr("c", "k", "n", 5);
  await until(() => ra.seq === 1 && a.status.state === "synced", "retry");
  assert.equal(edge.log.get("r").length, 1, "stored once");
  assert.deepEqual(ra.get("c", "k"), { n: 5 });
  a.close();
});

test("a later joiner catches up from the log and keeps its own writes on top", async () => {
  const edge = new FakeEdge();
  const a = await connect(options(edge, "a"));
  const ra = await a.join("r");
  for (let i = 0; i < 5; i++) ra.set("todos", `t${i}`, { i });
  await until(() => ra.seq === 5, "writes");
  const c = await connect(options(edge, "c"));
  const rc = await c.join("r");
  rc.set("todos", "t0", { i: 100 });
  await until(() => c.status.state === "synced" && rc.seq === 6 && ra.seq === 6, "late joiner");
  assert.deepEqual(rc.get("todos", "t0"), { i: 100 });
  assert.deepEqual(ra.list("todos"), rc.list("todos"));
  a.close();
  c.close();
});

test("list and set ops: ids known before the ack, pushed as the protocol says, seen by the other client", async () => {
  const edge = new FakeEdge();
  const a = await connect(options(edge, "a"));
  const b = await connect(options(edge, "b"));
  const ra = await a.join("r");
  const rb = await b.join("r");
  await Promise.all([ra.synced(), rb.synced()]);
  const ids = ra.insert("docs", "main", "text", null, ["h", "i"]);
  assert.deepEqual(ids, ["1.0@a", "1.1@a"]);
  const [bang] = ra.insert("docs", "main", "text", ids[1], ["!"]); // after an element not acknowledged yet
  ra.removeItems("docs", "main", "text", [ids[0]]);
  ra.add("docs", "main", "tags", ["red", "blue"]);
  assert.equal(bang, "2.0@a");
  assert.deepEqual(ra.get("docs", "main"), { text: [{ id: "1.1@a", value: "i" }, { id: "2.0@a", value: "!" }], tags: ["blue", "red"] });
  await until(() => a.status.state === "synced" && rb.seq === 4, "sync");
  rb.remove("docs", "main", "tags", ["red"]);
  await until(() => ra.seq === 5 && b.status.state === "synced", "remove");
  const pushed = edge.log.get("r").map((c) => c.client_seq);
  assert.deepEqual(pushed, [1, 2, 3, 4, 1]);
  const remove = [...edge.received].find((m) => m.op.kind === "remove");
  assert.deepEqual(remove.op, { kind: "remove", field: "tags", values: ["red"], seen: 4 });
  assert.deepEqual(rb.get("docs", "main"), ra.get("docs", "main"));
  assert.deepEqual(ra.get("docs", "main"), { text: [{ id: "1.1@a", value: "i" }, { id: "2.0@a", value: "!" }], tags: ["blue"] });
  assert.throws(() => ra.add("docs", "main", "tags", [1.5]), TypeError);
  assert.throws(() => ra.insert("docs", "main", "text", null, []), TypeError);
  a.close();
  b.close();
});

test("a change refused in its ack result is dropped, rolled back and reported; the others apply", async () => {
  const edge = new FakeEdge();
  edge.refuse = (c) => (c.op.fields?.text === "heck" ? { code: "BAD_REQUEST", message: "blocked word", json_path: "$.text" } : null);
  const a = await connect(options(edge, "a"));
  const ra = await a.join("r");
  await ra.synced();
  const errors = [];
  ra.on("error", (e) => errors.push(e));
  ra.set("messages", "m1", { text: "hello" });
  ra.set("messages", "m2", { text: "heck" });
  ra.set("messages", "m3", { text: "bye" });
  assert.deepEqual(ra.get("messages", "m2"), { text: "heck" }, "shown optimistically");
  await until(() => a.status.state === "synced" && ra.seq === 2, "acks");
  assert.equal(ra.get("messages", "m2"), undefined, "rolled back");
  assert.deepEqual(ra.get("messages", "m3"), { text: "bye" });
  assert.equal(ra.pendingCount, 0);
  assert.equal(errors.length, 1);
  assert.deepEqual(
    { code: errors[0].code, message: errors[0].message, json_path: errors[0].json_path, room: errors[0].room, key: errors[0].change.key },
    { code: "BAD_REQUEST", message: "blocked word", json_path: "$.text", room: "r", key: "m2" },
  );
  assert.equal(edge.received.filter((c) => c.key === "m2").length, 1, "not sent again");
  a.close();
});

test("a hello refused for now (INTERNAL, UNAVAILABLE) is retried with backoff, even on a fixed token", async () => {
  const edge = new FakeEdge();
  edge.helloErrors.push({ code: "INTERNAL", message: "the hook raised" }, { code: "UNAVAILABLE", message: "timed out" });
  const errors = [];
  const client = await connect({ ...options(edge, "a"), token: "fixed" });
  client.on("error", (error) => errors.push(error.code));
  const room = await client.join("r");
  await room.synced();
  assert.equal(edge.hellos, 3);
  assert.deepEqual(errors, ["INTERNAL", "UNAVAILABLE"]);
  assert.equal(client.status.error, null);
  client.close();
});

test("a hello refused for good ends a fixed-token client with that error", async () => {
  const edge = new FakeEdge();
  edge.helloErrors.push({ code: "FORBIDDEN", message: "this user is banned" });
  const client = await connect({ ...options(edge, "a"), token: "fixed" });
  await until(() => client.status.error !== null, "failed");
  assert.deepEqual([client.status.error.code, client.status.error.message], ["FORBIDDEN", "this user is banned"]);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(edge.hellos, 1);
  client.close();
});

// The Client and Room against an in-memory fake of the edge: queueing, acks,
// reconnect with resume, lost acks, status. Run: node --test clients/js/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { applyOp, applyPatch, connect, elementId } from "../src/accord.js";

/** Just enough of the edge's protocol (docs/protocol.md) to drive the SDK. */
class FakeEdge {
  constructor() {
    this.log = new Map(); // room -> [change]
    this.marks = new Map(); // `${client_id}/${room}` -> {cseq: seq}
    this.sockets = new Set();
    this.dropNextAck = false;
    this.received = []; // every pushed change, as sent
    const edge = this;
    this.WebSocket = class {
      constructor() {
        this.readyState = 0;
        this.rooms = new Set();
        edge.sockets.add(this);
        setTimeout(() => {
          this.readyState = 1;
          this.onopen?.();
        }, 0);
      }
      send(data) {
        const message = JSON.parse(data);
        setTimeout(() => edge.receive(this, message), 0);
      }
      close(code = 1000) {
        if (this.readyState === 3) return;
        this.readyState = 3;
        edge.sockets.delete(this);
        setTimeout(() => this.onclose?.({ code, reason: "" }), 0);
      }
      deliver(message) {
        if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(message) });
      }
    };
  }

  receive(ws, m) {
    if (ws.readyState !== 1) return;
    const reply = (body) => ws.deliver({ ...body, id: m.id });
    switch (m.type) {
      case "hello":
        ws.clientId = m.client_id;
        return reply({ type: "welcome", session_id: `s-${m.client_id}`, user_id: "u", server: {} });
      case "ping":
        return reply({ type: "pong" });
      case "subscribe": {
        const log = this.log.get(m.room) ?? [];
        ws.rooms.add(m.room);
        reply({ type: "subscribed", room: m.room, head: log.length });
        const since = m.since ?? 0;
        if (log.length > 0 && (since === 0 || since > log.length)) {
          const records = new Map();
          for (const c of log) {
            const id = `${c.collection}/${c.key}`;
            const value = applyPatch(records.get(id)?.value, c.patch);
            if (value === undefined) records.delete(id);
            else records.set(id, { collection: c.collection, key: c.key, value });
          }
          ws.deliver({ type: "snapshot", room: m.room, seq: log.length, records: [...records.values()], last: true });
        } else if (since < log.length) {
          ws.deliver({ type: "changes", room: m.room, changes: log.slice(since) });
        }
        return ws.deliver({ type: "presence", room: m.room, event: "sync", peers: [] });
      }
      case "push": {
        const log = this.log.get(m.room) ?? [];
        this.log.set(m.room, log);
        const mark = this.marks.get(`${ws.clientId}/${m.room}`) ?? {};
        this.marks.set(`${ws.clientId}/${m.room}`, mark);
        const results = [];
        const fresh = [];
        for (const c of m.changes) {
          this.received.push(c);
          if (mark[c.client_seq]) {
            results.push({ client_seq: c.client_seq, seq: mark[c.client_seq], status: "duplicate" });
            continue;
          }
          const patch = this.patchOf(log, c, ws.clientId);
          const stored = { seq: log.length + 1, collection: c.collection, key: c.key, client_id: ws.clientId, client_seq: c.client_seq, ts: c.ts, patch };
          log.push(stored);
          fresh.push(stored);
          mark[c.client_seq] = stored.seq;
          results.push({ client_seq: c.client_seq, seq: stored.seq, status: "applied" });
        }
        if (this.dropNextAck) {
          this.dropNextAck = false;
          ws.close(1006); // stored, but the ack never arrives
          ws.onclose?.({ code: 1006, reason: "" });
          ws.onclose = null;
        } else {
          reply({ type: "ack", room: m.room, results });
        }
        if (fresh.length) for (const s of this.sockets) if (s.rooms.has(m.room)) s.deliver({ type: "changes", room: m.room, changes: fresh });
        return undefined;
      }
      default:
        return reply({ type: "error", code: "UNSUPPORTED" });
    }
  }

  /** The patch of a change merged after the log (no concurrency to merge: the fake applies in order). */
  patchOf(log, c, clientId) {
    const { op } = c;
    if (op.kind === "set") return { set: op.fields };
    if (op.kind === "delete") return { deleted: true };
    if (op.kind === "incr") return { incr: { [op.field]: op.by } };
    let before;
    for (const old of log) if (old.collection === c.collection && old.key === c.key) before = applyPatch(before, old.patch);
    const ids = op.kind === "insert" ? op.values.map((_, i) => elementId(c.client_seq, i, clientId)) : undefined;
    const after = applyOp(before, op, { ids });
    if (after === undefined) return {};
    if (before === undefined) return { set: after };
    if (op.kind === "add" || op.kind === "remove") {
      const had = before[op.field] ?? [];
      const gone = had.filter((v) => !after[op.field].includes(v));
      const added = after[op.field].filter((v) => !had.includes(v));
      return { ...(gone.length ? { remove: { [op.field]: gone } } : {}), ...(added.length ? { add: { [op.field]: added } } : {}) };
    }
    if (op.kind === "insert") return { list: { [op.field]: [{ insert: ids.map((id, i) => ({ id, value: op.values[i] })), after: op.after }] } };
    return { list: { [op.field]: op.ids.map((id) => ({ delete: id })) } };
  }

  /** Cut every connection, as a network failure would. */
  cut() {
    for (const ws of [...this.sockets]) {
      ws.readyState = 3;
      this.sockets.delete(ws);
      ws.onclose?.({ code: 1006, reason: "" });
    }
  }
}

const options = (edge, clientId) => ({ url: "ws://fake/ws", storage: "memory", clientId, WebSocket: edge.WebSocket, backoff: { initial: 5, max: 20 } });

async function until(predicate, what, timeout = 2000) {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

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

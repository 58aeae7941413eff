// The Client and Room against an in-memory fake of the edge: queueing, acks,
// reconnect with resume, lost acks, status. Run: node --test clients/js/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { applyPatch, connect } from "../src/accord.js";

/** Just enough of the edge's protocol (docs/protocol.md) to drive the SDK. */
class FakeEdge {
  constructor() {
    this.log = new Map(); // room -> [change]
    this.marks = new Map(); // `${client_id}/${room}` -> {cseq: seq}
    this.sockets = new Set();
    this.dropNextAck = false;
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
          if (mark[c.client_seq]) {
            results.push({ client_seq: c.client_seq, seq: mark[c.client_seq], status: "duplicate" });
            continue;
          }
          const patch = c.op.kind === "set" ? { set: c.op.fields } : c.op.kind === "delete" ? { deleted: true } : { incr: { [c.op.field]: c.op.by } };
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

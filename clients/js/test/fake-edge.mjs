// An in-memory fake of the edge (docs/protocol.md), enough to drive the SDK in node tests.
import { applyOp, applyPatch, elementId } from "../src/accord.js";

/** Just enough of the edge's protocol (docs/protocol.md) to drive the SDK. */
export class FakeEdge {
  constructor() {
    this.log = new Map(); // room -> [change]
    this.marks = new Map(); // `${client_id}/${room}` -> {cseq: seq}
    this.sockets = new Set();
    this.dropNextAck = false;
    this.received = []; // every pushed change, as sent
    this.epochs = new Map(); // room -> its epoch (default "e1")
    this.aliases = new Map(); // room -> earlier names of its history, still accepted
    this.snapshots = 0; // snapshot frames sent
    this.subscribes = []; // every subscribe message, as sent
    this.refuse = null; // (change) => {code, message} to refuse it in the ack ("status":"error"), or null
    this.helloErrors = []; // {code, message} answers for the next hellos, each then closed with 4001
    this.hellos = 0;
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
      case "hello": {
        this.hellos += 1;
        const refusal = this.helloErrors.shift();
        if (refusal) {
          reply({ type: "error", ...refusal });
          return setTimeout(() => ws.close(4001), 0);
        }
        ws.clientId = m.client_id;
        return reply({ type: "welcome", session_id: `s-${m.client_id}`, user_id: "u", server: {} });
      }
      case "ping":
        return reply({ type: "pong" });
      case "subscribe": {
        this.subscribes.push(m);
        const log = this.log.get(m.room) ?? [];
        const epoch = this.epochOf(m.room);
        ws.rooms.add(m.room);
        reply({ type: "subscribed", room: m.room, head: log.length, epoch });
        const since = m.since ?? 0;
        const known = m.epoch === epoch || (this.aliases.get(m.room) ?? []).includes(m.epoch);
        const foreign = since > 0 && m.epoch && !known; // another history: a snapshot
        if ((log.length > 0 && (since === 0 || since > log.length)) || foreign) {
          ws.deliver(this.snapshot(m.room));
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
          const refusal = this.refuse?.(c);
          if (refusal) {
            results.push({ client_seq: c.client_seq, seq: 0, status: "error", error: refusal });
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

  epochOf(room) {
    return this.epochs.get(room) ?? "e1";
  }

  /** The room's records at its head, as one snapshot frame. */
  snapshot(room) {
    const log = this.log.get(room) ?? [];
    const records = new Map();
    for (const c of log) {
      const id = `${c.collection}/${c.key}`;
      const value = applyPatch(records.get(id)?.value, c.patch);
      if (value === undefined) records.delete(id);
      else records.set(id, { collection: c.collection, key: c.key, value });
    }
    this.snapshots += 1;
    return { type: "snapshot", room, seq: log.length, records: [...records.values()], last: true, epoch: this.epochOf(room) };
  }

  /** A restore: the room's log becomes `log` (another history) under a new `epoch`. */
  restore(room, log, epoch) {
    this.log.set(room, log);
    this.epochs.set(room, epoch);
    this.marks.clear();
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

export const options = (edge, clientId) => ({ url: "ws://fake/ws", storage: "memory", clientId, WebSocket: edge.WebSocket, backoff: { initial: 5, max: 20 } });

export async function until(predicate, what, timeout = 2000) {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

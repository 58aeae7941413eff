// Accord's JavaScript SDK: an ES module with no dependencies and no build step.
//
//   import { connect } from "/sdk/accord.js";
//   const client = await connect({ url: "ws://localhost:8080/ws", token, user: { name: "Ada" } });
//   const room = await client.join("todo-demo", { presence: { status: "online" } });
//   room.on("change", ({ collection, key, value }) => render());
//   room.set("todos", "t-1", { title: "milk", done: false });
//
//   room.add("todos", "t-1", "tags", ["red"]);                 // add-wins set
//   const [id] = room.insert("docs", "main", "text", ["h"]);       // ordered list (RGA)
//
//   // end-to-end encrypted fields (docs/encryption.md): the server sees only ciphertext
//   await client.join("diary", { encryption: { keys: { k1: keyBytes }, current: "k1", fields: { notes: ["body"] } } });
//
// Protocol: docs/protocol.md. SDK guide: docs/sdk-js.md.

import { Emitter } from "./emitter.js";
import { FieldCipher } from "./fieldcipher.js";
import { Replica, elementId } from "./replica.js";
import { MemoryStore, openStore } from "./store.js";
import { SseSocket, sseUrl } from "./transport.js";

export { Replica, Tombstones, applyOp, applyPatch, canonicalJson, elementId } from "./replica.js";
export { MemoryStore, IndexedDBStore } from "./store.js";
export { PositionSource, midpoint } from "./sequence.js";
export { EncryptedFieldError, EncryptionError, Undecryptable, generateKey } from "./encryption.js";
export { FieldCipher } from "./fieldcipher.js";
export { SseSocket, sseUrl } from "./transport.js";

export const VERSION = "0.1.0";
const MAX_BATCH = 500;
const PING_EVERY_MS = 10_000;
const SILENCE_LIMIT_MS = 25_000;
const SAVE_DELAY_MS = 100;
/** A hello refused with these is retried with backoff, even on a fixed token (the rest end it). */
const RETRY_HELLO = new Set(["INTERNAL", "UNAVAILABLE", "RATE_LIMITED"]);
// Errors after which a push will never succeed as it is: drop it rather than retry forever.
const FATAL_PUSH_ERRORS = new Set(["BAD_REQUEST", "FORBIDDEN", "TOO_LARGE", "UNSUPPORTED", "INTERNAL"]);

/** Set elements must be values every client compares exactly (docs/merge.md). */
function setElements(values) {
  const ok = (v) => v === null || typeof v === "string" || typeof v === "boolean" || Number.isSafeInteger(v);
  if (!Array.isArray(values) || values.length === 0 || !values.every(ok)) {
    throw new TypeError("set values must be a non-empty array of strings, safe integers, booleans or null");
  }
  return values;
}

/** Open local storage, claim a client id and start connecting. */
export async function connect(options = {}) {
  const storage = options.storage ?? "indexeddb";
  const store = storage === "memory" ? new MemoryStore() : typeof storage === "object" ? storage : await openStore(options.dbName ?? "accord");
  const clientId = options.clientId ?? (await store.claimClientId());
  const client = new Client({ ...options, store, clientId });
  client.start();
  return client;
}

/** A hybrid logical clock in microseconds: never goes backwards, stays after every ts it has seen. */
class Clock {
  constructor() {
    this.last = 0;
  }
  now() {
    this.last = Math.max(Date.now() * 1000, this.last + 1);
    return this.last;
  }
  observe(ts) {
    if (Number.isSafeInteger(ts) && ts > this.last) this.last = ts;
  }
}

function defaultUrl() {
  const { protocol, host } = globalThis.location;
  return `${protocol === "https:" ? "wss" : "ws"}://${host}/ws`;
}

/** Emit `target`'s "status" when it differs from the one it emitted last. */
function emitStatus(target) {
  const status = target.status;
  const signature = JSON.stringify(status);
  if (signature !== target.lastStatus) {
    target.lastStatus = signature;
    target.emit("status", status);
  }
}

/**
 * One connection to an edge, shared by any number of rooms.
 * Events: "status" ({state, pending, text}), "error" ({code, message, room?}),
 * "connected" (welcome), "disconnected" ({code, reason}).
 * Transports (docs/transport.md): the WebSocket, or after `fallbackAfter` failures in a row
 * (refused, or closed before welcome) the HTTP fallback (`sse`), retrying the WebSocket every
 * `websocketRetryMs` and moving back once it works; `status.transport` says which is in use.
 */
export class Client extends Emitter {
  constructor({
    url,
    token,
    user,
    store,
    clientId,
    backoff = {},
    WebSocket: WS,
    transports = ["websocket", "sse"],
    fallbackAfter = 2,
    websocketRetryMs = 30_000,
    streamTimeoutMs = 10_000,
    fetch: fetchImpl,
  }) {
    super();
    this.url = url ?? defaultUrl();
    this.token = token;
    this.user = user;
    this.store = store;
    this.clientId = clientId;
    this.backoff = { initial: 250, max: 10_000, ...backoff };
    this.WebSocket = WS ?? globalThis.WebSocket;
    this.transports = transports;
    this.fallbackAfter = fallbackAfter;
    this.websocketRetryMs = websocketRetryMs;
    this.streamTimeoutMs = streamTimeoutMs;
    this.fetch = fetchImpl;
    this.wsFailures = 0;
    this.fellBackAt = 0;
    this.probe = null;
    this.clock = new Clock();
    this.rooms = new Map();
    this.ws = null;
    this.phase = "offline"; // offline | connecting | open
    this.welcome = null;
    this.attempt = 0;
    this.nextId = 1;
    this.requests = new Map();
    this.closed = false;
    this.authFailed = null;
    this.reconnectTimer = null;
    this.lastReceived = 0;
    this.lastStatus = "";
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => this.drop("browser offline");
    this.onPageHide = () => {
      for (const room of this.rooms.values()) room.saveNow();
    };
  }

  get sessionId() {
    return this.welcome?.session_id ?? null;
  }
  get userId() {
    return this.welcome?.user_id ?? null;
  }

  start() {
    globalThis.addEventListener?.("online", this.onOnline);
    globalThis.addEventListener?.("offline", this.onOffline);
    globalThis.addEventListener?.("pagehide", this.onPageHide);
    this.pinger = setInterval(() => this.checkAlive(), PING_EVERY_MS);
    this.pinger.unref?.(); // under node, a forgotten client does not keep the process alive
    this.open();
  }

  /**
   * Join a room: its saved replica and queue load at once; it syncs whenever the client is online.
   * `encryption`: {keys, current, fields} — the room's end-to-end encrypted fields (docs/encryption.md).
   */
  async join(name, { presence, users = false, encryption } = {}) {
    if (this.rooms.has(name)) return this.rooms.get(name);
    const cipher = encryption ? await FieldCipher.create(name, encryption) : null;
    if (this.rooms.has(name)) return this.rooms.get(name);
    const room = new Room(this, name, presence, users, cipher);
    this.rooms.set(name, room);
    await room.load();
    if (this.rooms.get(name) === room && this.phase === "open") room.subscribe();
    this.updateStatus();
    return room;
  }

  /** Close the connection for good (local state stays in storage). */
  close() {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.pinger);
    globalThis.removeEventListener?.("online", this.onOnline);
    globalThis.removeEventListener?.("offline", this.onOffline);
    globalThis.removeEventListener?.("pagehide", this.onPageHide);
    this.onPageHide();
    this.drop("closed by the application");
    this.store.close();
  }

  /** Overall sync status: connecting, synced, offline or pending (with the number of queued changes). */
  get status() {
    const pending = [...this.rooms.values()].reduce((n, room) => n + room.pendingCount, 0);
    let state;
    if (this.phase === "offline") state = "offline";
    else if (this.phase === "connecting" || [...this.rooms.values()].some((r) => !r.caughtUp)) state = "connecting";
    else state = pending > 0 ? "pending" : "synced";
    const text = state === "pending" ? `pending ${pending}` : state === "offline" && pending > 0 ? `offline, pending ${pending}` : state;
    const transport = this.phase === "open" ? this.ws.transport : null;
    return { state, pending, text, error: this.authFailed, transport };
  }

  updateStatus() {
    emitStatus(this);
    for (const room of this.rooms.values()) room.updateStatus();
  }

  // -- connection ---------------------------------------------------------

  async open() {
    if (this.closed || this.ws || this.authFailed) return;
    if (globalThis.navigator && navigator.onLine === false) {
      this.phase = "offline";
      this.updateStatus();
      return; // the "online" event reconnects
    }
    this.phase = "connecting";
    this.updateStatus();
    let token;
    try {
      token = typeof this.token === "function" ? await this.token() : this.token;
    } catch (error) {
      this.emit("error", { code: "TOKEN_PROVIDER", message: String(error) });
      this.scheduleReconnect();
      return;
    }
    if (this.closed || this.ws) return;
    this.lastToken = token;
    const ws = this.openTransport(this.chooseTransport());
    this.ws = ws;
    this.lastReceived = Date.now();
    ws.onopen = () => {
      const hello = { type: "hello", client_id: this.clientId };
      if (token) hello.token = token;
      if (this.user) hello.user = this.user;
      this.request(hello).then((reply) => this.onHello(ws, reply), () => {});
    };
    ws.onmessage = (event) => this.onFrame(ws, event.data);
    ws.onclose = (event) => this.onClose(ws, event.code, event.reason);
    ws.onerror = () => {}; // onclose follows with the code
  }

  /** The transport for the next connection: the WebSocket unless it has been failing. */
  chooseTransport() {
    if (!this.transports.includes("sse")) return "websocket";
    if (!this.transports.includes("websocket")) return "sse";
    const fallen = this.wsFailures >= this.fallbackAfter && Date.now() - this.fellBackAt < this.websocketRetryMs;
    return fallen ? "sse" : "websocket";
  }

  openTransport(kind) {
    if (kind === "sse") return new SseSocket(sseUrl(this.url), { fetch: this.fetch, streamTimeoutMs: this.streamTimeoutMs });
    const ws = new this.WebSocket(this.url);
    ws.transport = "websocket";
    return ws;
  }

  /** On the fallback: try a WebSocket every websocketRetryMs; once one answers a hello, move back. */
  startProbe() {
    clearInterval(this.probe);
    this.probe = setInterval(() => {
      let probe;
      try {
        probe = new this.WebSocket(this.url);
      } catch {
        return;
      }
      probe.onopen = () => {
        const hello = { type: "hello", id: 1, client_id: this.clientId };
        if (this.lastToken) hello.token = this.lastToken;
        probe.send(JSON.stringify(hello));
      };
      probe.onmessage = (event) => {
        probe.onclose = null;
        probe.close(1000);
        const answer = JSON.parse(event.data);
        if (answer.type !== "welcome" && answer.type !== "error") return;
        this.wsFailures = 0;
        if (this.ws?.transport === "sse") this.drop("moving back to the WebSocket");
      };
      probe.onerror = () => {};
    }, this.websocketRetryMs);
    this.probe.unref?.();
  }

  onHello(ws, reply) {
    if (ws !== this.ws) return;
    if (reply.type === "error") {
      // The server closes with 4001 next; onClose decides by this error's code.
      this.helloError = reply;
      if (!RETRY_HELLO.has(reply.code)) this.lastAuthError = reply;
      return;
    }
    this.welcome = reply;
    if (ws.transport === "websocket") this.wsFailures = 0;
    else if (this.transports.includes("websocket")) this.startProbe();
    this.phase = "open";
    this.attempt = 0;
    this.emit("connected", reply);
    for (const room of this.rooms.values()) if (room.loaded) room.subscribe();
    this.updateStatus();
  }

  onFrame(ws, data) {
    if (ws !== this.ws) return;
    this.lastReceived = Date.now();
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (Number.isInteger(message.id) && this.requests.has(message.id)) {
      const { resolve, onReply } = this.requests.get(message.id);
      this.requests.delete(message.id);
      onReply?.(message);
      resolve(message);
      return;
    }
    const room = message.room === undefined ? undefined : this.rooms.get(message.room);
    switch (message.type) {
      case "snapshot":
        room?.onSnapshot(message);
        break;
      case "changes":
        room?.onChanges(message.changes);
        break;
      case "presence":
        room?.onPresence(message);
        break;
      case "broadcast":
        room?.onBroadcast(message);
        break;
      case "error":
        if (message.code === "UNAUTHENTICATED" || message.code === "TOKEN_EXPIRED") this.lastAuthError = message;
        if (room && message.code === "FORBIDDEN") room.onForbidden(message);
        this.emit("error", message);
        break;
      default:
        break;
    }
  }

  onClose(ws, code, reason) {
    if (ws !== this.ws) return;
    const refused = this.helloError; // a hello answered with an error: the transport works
    this.helloError = null;
    if (ws.transport === "websocket" && this.phase !== "open" && !refused && ++this.wsFailures >= this.fallbackAfter) {
      this.fellBackAt = Date.now();
    }
    if (ws.buffered) this.emit("error", { code: "STREAM_BUFFERED", message: reason });
    this.detach();
    this.emit("disconnected", { code, reason });
    if (refused && RETRY_HELLO.has(refused.code)) {
      // Refused for now (a failing identity hook, an edge under load): not the token's fault.
      this.emit("error", refused);
      this.scheduleReconnect(refused.retry_after_ms ?? 0);
      return;
    }
    if (code === 4001 && typeof this.token !== "function") {
      // A fixed token will not get better by retrying.
      this.authFailed = this.lastAuthError ?? { code: "UNAUTHENTICATED", message: reason || "authentication failed" };
      this.emit("error", this.authFailed);
      this.updateStatus();
      return;
    }
    this.scheduleReconnect(code === 1013 || code === 4008 ? 5000 : 0);
  }

  /** Forget the socket and everything tied to it (requests, in-flight pushes, presence). */
  detach() {
    clearInterval(this.probe);
    const ws = this.ws;
    this.ws = null;
    this.welcome = null;
    this.phase = "offline";
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    for (const { reject } of this.requests.values()) reject(new Error("disconnected"));
    this.requests.clear();
    for (const room of this.rooms.values()) room.onDisconnect();
    this.updateStatus();
  }

  /** Close the socket now (offline, or gone silent) and reconnect when possible. */
  drop(why) {
    if (this.ws) {
      this.detach();
      this.emit("disconnected", { code: 1000, reason: why });
    }
    if (!this.closed) this.scheduleReconnect();
  }

  scheduleReconnect(minimum = 0) {
    clearTimeout(this.reconnectTimer);
    if (this.closed || this.authFailed) return;
    const base = Math.min(this.backoff.max, this.backoff.initial * 2 ** this.attempt);
    const delay = Math.max(minimum, base / 2 + Math.random() * (base / 2));
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }

  reconnectNow() {
    this.attempt = 0;
    clearTimeout(this.reconnectTimer);
    if (!this.ws) this.open();
  }

  checkAlive() {
    if (this.phase !== "open") return;
    const silent = Date.now() - this.lastReceived;
    if (silent > SILENCE_LIMIT_MS) this.drop("connection went silent");
    else if (silent > PING_EVERY_MS) this.request({ type: "ping" }).catch(() => {});
  }

  /**
   * Send a request with an id; resolves with the reply (an error reply too), rejects on disconnect.
   * `onReply` runs synchronously on the reply, before any later frame is handled.
   */
  request(message, onReply) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== 1) {
        reject(new Error("not connected"));
        return;
      }
      const id = this.nextId++;
      this.requests.set(id, { resolve, reject, onReply });
      this.ws.send(JSON.stringify({ ...message, id }));
    });
  }

  /** Send a message that gets no reply on success. */
  send(message) {
    if (this.phase !== "open" || this.ws?.readyState !== 1) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }
}

/**
 * One joined room: a local replica, an offline queue, presence and broadcast.
 * Events: "change" ({collection, key, value}), "presence" (peers),
 * "broadcast" ({from, data, peer}), "status" ({state, pending, text}), "error".
 */
export class Room extends Emitter {
  constructor(client, name, presence, users, cipher = null) {
    super();
    this.client = client;
    this.name = name;
    this.cipher = null;
    this.quiet = false; // a refresh that changes nothing the app sees (a local value got its ciphertext)
    this.sealed = Promise.resolve(); // encrypted writes are stored and pushed in client_seq order
    this.inbox = Promise.resolve(); // with encryption: server records decrypted, then applied, in order
    this.generation = 0; // which subscription an inbox entry belongs to
    this.presenceState = presence ?? null;
    this.wantUsers = users;
    this.presenceCount = 0; // sessions present (may exceed peers.size in big rooms)
    this.presenceUsers = 0; // distinct users present
    this.replica = new Replica({
      clientId: client.clientId,
      onChange: (collection, key, value) => this.quiet || this.emit("change", { collection, key, value: this.present(collection, key, value) }),
    });
    this.useCipher(cipher);
    this.lastClientSeq = 0;
    this.subscribed = false;
    this.caughtUp = false;
    this.head = 0;
    this.expectSnapshot = false;
    this.inflight = false;
    this.isolate = 0;
    this.retryTimer = null;
    this.saveTimer = null;
    this.peers = new Map();
    this.lastStatus = "";
    this.error = null;
    this.storedSeqs = new Set(); // client_seqs of the changes in the stored queue
    this.loaded = false; // saved state read: only then may it subscribe (since = the saved seq)
    this.subscribing = false;
  }

  async load() {
    const saved = await this.client.store.loadRoom(this.client.clientId, this.name);
    await this.cipher?.prepareRecords(saved.records);
    await this.cipher?.prepareChanges(saved.pending.filter((p) => p.op.kind === "set"));
    this.replica.loadConfirmed(saved.seq, saved.records, saved.epoch ?? "");
    this.replica.pending = saved.pending;
    this.storedSeqs = new Set(saved.pending.map((p) => p.client_seq));
    this.loaded = true;
    this.lastClientSeq = Math.max(saved.lastClientSeq, ...saved.pending.map((p) => p.client_seq), 0);
    this.replica.rebuild();
  }

  // -- reading ------------------------------------------------------------

  /** The record's fields, or undefined. Encrypted fields show their value or an `Undecryptable`. */
  get(collection, key) {
    return this.present(collection, key, this.replica.get(collection, key));
  }

  /**
   * The visible records of a collection by key, in key order: confirmed state,
   * pending writes on top (the Python SDK's `room.records(collection)`).
   */
  records(collection) {
    return Object.fromEntries(this.replica.entries(collection).map(([key, value]) => [key, this.present(collection, key, value)]));
  }

  /**
   * Every record of a collection as [{key, value}], in key order.
   * @deprecated Use `records(collection)` (an object by key, as in the Python SDK);
   * `list` stays for existing code.
   */
  list(collection) {
    return this.replica.entries(collection).map(([key, value]) => ({ key, value: this.present(collection, key, value) }));
  }

  present(collection, key, value) {
    return this.cipher ? this.cipher.present(collection, key, value) : value;
  }

  // -- encryption -----------------------------------------------------------

  /** The room's encryption options ({keys, current, fields}), or null. */
  get encryption() {
    return this.cipher?.options ?? null;
  }

  /**
   * Replace the keys or the encrypted fields, e.g. to rotate: new writes use the
   * new `current` key, values under the old ids stay readable while their keys are kept.
   */
  setEncryption(options) {
    const swap = async () => {
      const cipher = options ? await FieldCipher.create(this.name, options) : null;
      await cipher?.prepareReplica(this.replica);
      const affected = new Set([...(this.cipher?.fields.keys() ?? []), ...(cipher?.fields.keys() ?? [])]);
      this.useCipher(cipher);
      for (const collection of affected) for (const { key, value } of this.list(collection)) this.emit("change", { collection, key, value });
    };
    const done = this.inbox.then(swap);
    this.inbox = done.catch(() => {});
    return done;
  }

  useCipher(cipher) {
    this.cipher = cipher;
    if (!cipher) return;
    cipher.report = (error) => this.emit("error", { code: "UNDECRYPTABLE", reason: error.reason, message: error.message, room: this.name, collection: error.collection, key: error.key, field: error.field, keyId: error.keyId, error });
    cipher.onReady = (collection, key) => this.emit("change", { collection, key, value: this.get(collection, key) });
  }

  get pendingCount() {
    return this.replica.pending.length;
  }

  get seq() {
    return this.replica.seq;
  }

  get status() {
    const pending = this.pendingCount;
    let state;
    if (this.client.phase === "offline") state = "offline";
    else if (!this.caughtUp) state = "connecting";
    else state = pending > 0 ? "pending" : "synced";
    return { state, pending, text: state === "pending" ? `pending ${pending}` : state };
  }

  updateStatus() {
    emitStatus(this);
  }

  /** Resolves once the room has caught up with the server and has nothing queued. */
  synced() {
    return new Promise((resolve) => {
      if (this.status.state === "synced") return resolve();
      const off = this.on("status", (s) => {
        if (s.state === "synced") {
          off();
          resolve();
        }
      });
    });
  }

  // -- writing ------------------------------------------------------------

  /** Set fields of a record (last writer wins per field); creates it if absent. */
  set(collection, key, fields) {
    return this.write(collection, key, { kind: "set", fields });
  }

  delete(collection, key) {
    return this.write(collection, key, { kind: "delete" });
  }

  /** Add `by` (an integer) to a counter field; concurrent increments all count. */
  incr(collection, key, field, by = 1) {
    if (!Number.isInteger(by)) throw new TypeError("incr needs an integer");
    return this.write(collection, key, { kind: "incr", field, by });
  }

  /** Add elements (strings, safe integers, booleans, null) to an add-wins set field. */
  add(collection, key, field, values) {
    return this.write(collection, key, { kind: "add", field, values: setElements(values) });
  }

  /**
   * Remove elements from a set field: the adds this replica has seen (up to its
   * current seq, plus its own earlier adds). A concurrent add elsewhere survives.
   */
  remove(collection, key, field, values) {
    return this.write(collection, key, { kind: "remove", field, values: setElements(values), seen: this.replica.seq });
  }

  /**
   * Insert `values` into the list field after the element `options.after` (null or
   * absent: at the start) — `insert(collection, key, field, values, {after})`, the
   * Python SDK's order. Returns the new elements' ids — known at once, so the app can
   * insert after them or remove them before the server has acknowledged anything.
   * The old order `insert(collection, key, field, after, values)` (after: an id or
   * null) still works and is deprecated.
   */
  insert(collection, key, field, values, options) {
    let after;
    if (Array.isArray(values)) after = options?.after; // insert(c, k, f, values, {after}): the Python SDK's order
    else [after, values] = [values, options]; // the deprecated insert(c, k, f, after, values)
    if (!Array.isArray(values) || values.length === 0) throw new TypeError("insert needs a non-empty array of values");
    if (after !== null && after !== undefined && (typeof after !== "string" || after.length === 0)) throw new TypeError("after must be an element id or null");
    const clientSeq = this.write(collection, key, { kind: "insert", field, after: after ?? null, values });
    return values.map((_, i) => elementId(clientSeq, i, this.client.clientId));
  }

  /** Remove list elements by id (removed ids stay valid as `after` anchors). */
  removeItems(collection, key, field, ids) {
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => typeof id === "string" && id.length > 0)) {
      throw new TypeError("removeItems needs a non-empty array of element ids");
    }
    return this.write(collection, key, { kind: "remove_items", field, ids });
  }

  write(collection, key, op) {
    const sealing = this.cipher?.prepareOp(collection, key, op) ?? null; // refuses before anything is queued
    const change = { client_seq: ++this.lastClientSeq, collection, key, ts: this.client.clock.now(), op: sealing?.shown ?? op };
    if (this.cipher) this.storeSealed(change, sealing);
    else this.store(change);
    this.replica.addLocal(change);
    this.client.updateStatus();
    queueMicrotask(() => this.flush());
    return change.client_seq;
  }

  store(change) {
    this.client.store.putPending(this.client.clientId, this.name, change);
    this.storedSeqs.add(change.client_seq);
  }

  /**
   * Encryption is async: a change is shown at once (with its plaintext, in memory
   * only), then stored and pushed once sealed — every change of the room in
   * client_seq order, so the stored counter never goes back and nothing overtakes.
   */
  storeSealed(change, sealing) {
    if (sealing) change.sealing = true;
    const step = async () => {
      if (sealing) {
        change.op = await sealing.seal();
        delete change.sealing;
        this.quiet = true;
        try {
          this.replica.refresh(change.collection, change.key);
        } finally {
          this.quiet = false;
        }
      }
      this.store(change);
      this.flush();
    };
    this.sealed = this.sealed.then(step).catch((error) => {
      this.replica.reject([change.client_seq]);
      this.client.updateStatus();
      this.emit("error", { code: "ENCRYPTION", message: String(error), room: this.name, change });
    });
  }

  // -- presence and broadcast ----------------------------------------------

  /** This session's presence state in the room (kept across reconnects). */
  setPresence(state) {
    this.presenceState = state;
    const own = this.peers.get(this.client.sessionId);
    if (own) {
      own.state = state;
      this.emitPresence();
    }
    if (this.subscribed) this.client.send({ type: "presence", room: this.name, state });
  }

  /**
   * Send ephemeral data to every other subscriber; false when offline (nothing is queued).
   * On a `channel` the server coalesces floods to the newest message (e.g. cursor moves).
   */
  broadcast(data, { channel } = {}) {
    if (!this.subscribed) return false;
    const message = { type: "broadcast", room: this.name, data };
    if (channel) message.channel = channel;
    return this.client.send(message);
  }

  /**
   * One page of the room's presence (big rooms list only the first 100 peers in
   * `peers`): {peers, count, users, nextCursor} — the Python SDK's `list_presence`.
   */
  async listPresence({ cursor, limit = 100, countsOnly = false } = {}) {
    const message = { type: "presence_list", room: this.name, limit };
    if (cursor) message.cursor = cursor;
    if (countsOnly) message.counts_only = true;
    const reply = await this.client.request(message);
    if (reply.type === "error") throw Object.assign(new Error(reply.message), reply);
    return { peers: reply.peers ?? [], count: reply.count, users: reply.users, nextCursor: reply.next_cursor ?? null };
  }

  /** @deprecated The old name of `listPresence` (same options, same result). */
  presencePage(options) {
    return this.listPresence(options);
  }

  /** The peers present in the room (this session included once it has joined presence). */
  get peerList() {
    return [...this.peers.values()];
  }

  emitPresence() {
    this.emit("presence", this.peerList);
  }

  async leave() {
    this.client.rooms.delete(this.name);
    this.saveNow();
    if (this.subscribed) await this.client.request({ type: "unsubscribe", room: this.name }).catch(() => {});
    this.onDisconnect();
    this.client.updateStatus();
  }

  // -- protocol -------------------------------------------------------------

  subscribe() {
    if (this.subscribing || this.subscribed) return;
    this.subscribing = true;
    this.generation += 1;
    this.caughtUp = false;
    const since = this.replica.seq;
    const message = { type: "subscribe", room: this.name, since };
    if (this.presenceState) message.presence = this.presenceState;
    if (this.wantUsers) message.users = true;
    if (this.replica.epoch) message.epoch = this.replica.epoch;
    // The catch-up follows the reply at once: handle the reply before the next frame.
    this.client.request(message, (reply) => this.onSubscribed(since, reply)).catch(() => {
      // disconnected: subscribing again is part of reconnecting
    });
  }

  onSubscribed(since, reply) {
    this.subscribing = false;
    if (this.client.rooms.get(this.name) !== this) return;
    if (reply.type === "error") {
      this.error = reply;
      this.emit("error", reply);
      if (reply.code === "UNAVAILABLE" || reply.code === "RATE_LIMITED") {
        this.retryTimer = setTimeout(() => this.client.phase === "open" && this.subscribe(), reply.retry_after_ms ?? 1000);
      }
      return;
    }
    this.error = null;
    this.subscribed = true;
    this.head = reply.head;
    if (this.replica.subscribed(since, reply.head, reply.epoch)) this.saveSoon();
    // Ahead of the server (its data was reset): what we hold is void until the snapshot replaces it.
    this.expectSnapshot = since > reply.head;
    if (reply.head === 0 && since > 0) {
      // The server holds nothing for this room any more: drop what we had.
      this.replica.applySnapshotChunk({ seq: 0, records: [], last: true });
      this.afterServerUpdate();
    }
    this.checkCaughtUp();
  }

  checkCaughtUp() {
    if (!this.subscribed || this.caughtUp) return;
    if (!this.expectSnapshot && this.replica.seq >= this.head) {
      this.caughtUp = true;
      this.client.updateStatus();
      this.flush();
    }
  }

  /**
   * Server records reach the replica in order; with encryption, once their values
   * are decrypted (dropped if their subscription ended meanwhile).
   */
  inbound(prepare, apply) {
    if (!this.cipher) return apply();
    const generation = this.generation;
    const cipher = this.cipher;
    this.inbox = this.inbox
      .then(() => prepare(cipher))
      .then(() => {
        if (generation !== this.generation) return;
        apply();
        this.cipher?.prune(this.replica);
      })
      .catch((error) => this.emit("error", { code: "ENCRYPTION", message: String(error), room: this.name }));
  }

  onSnapshot(message) {
    this.inbound(
      (cipher) => cipher.prepareRecords(message.records ?? []),
      () => this.applySnapshot(message),
    );
  }

  applySnapshot(message) {
    if (!this.subscribed) return;
    this.replica.applySnapshotChunk(message);
    if (message.last) {
      this.expectSnapshot = false;
      this.afterServerUpdate();
      this.checkCaughtUp();
      this.flush(); // changes whose acks belonged to another history go again
    }
  }

  onChanges(changes) {
    for (const change of changes) this.client.clock.observe(change.ts);
    this.inbound(
      (cipher) => cipher.prepareChanges(changes),
      () => this.applyChanges(changes),
    );
  }

  applyChanges(changes) {
    if (!this.subscribed) return;
    const inOrder = this.replica.applyChanges(changes, this.client.clientId);
    this.afterServerUpdate();
    if (!inOrder) {
      this.resync();
      return;
    }
    this.checkCaughtUp();
  }

  /** A gap in the seqs (should never happen): subscribe again from what we hold. */
  async resync() {
    this.subscribed = false;
    await this.client.request({ type: "unsubscribe", room: this.name }).catch(() => {});
    if (this.client.phase === "open") this.subscribe();
  }

  onPresence(message) {
    switch (message.event) {
      case "sync":
        this.peers = new Map(message.peers.map((p) => [p.session_id, p]));
        this.presenceCount = message.count ?? message.peers.length;
        this.presenceUsers = message.users ?? new Set(message.peers.map((p) => p.user_id)).size;
        this.morePeers = message.next_cursor ?? null;
        break;
      case "join":
        if (!this.peers.has(message.peer.session_id)) this.presenceCount += 1;
        this.peers.set(message.peer.session_id, message.peer);
        break;
      case "update":
        this.peers.set(message.peer.session_id, message.peer);
        break;
      case "leave":
        this.peers.delete(message.peer.session_id);
        this.presenceCount = Math.max(0, this.presenceCount - 1);
        break;
      case "user_online":
      case "user_offline":
        this.emit("user", { event: message.event, peer: message.peer, reason: message.reason });
        return;
      default:
        return;
    }
    this.emitPresence();
  }

  onBroadcast(message) {
    this.emit("broadcast", { from: message.from, data: message.data, channel: message.channel ?? null, peer: this.peers.get(message.from) });
  }

  onForbidden(message) {
    this.subscribed = false;
    this.caughtUp = false;
    this.error = message;
    this.emit("error", message);
  }

  onDisconnect() {
    this.generation += 1;
    this.subscribing = false;
    this.subscribed = false;
    this.caughtUp = false;
    this.inflight = false;
    clearTimeout(this.retryTimer);
    this.presenceCount = 0;
    this.presenceUsers = 0;
    if (this.peers.size > 0) {
      this.peers.clear();
      this.emitPresence();
    }
  }

  /** Send the queued changes not sent yet, one push in flight at a time. */
  async flush() {
    if (!this.caughtUp || this.inflight || this.client.phase !== "open") return;
    const waiting = this.replica.pending.filter((p) => p.ackSeq === undefined);
    const sealing = waiting.findIndex((p) => p.sealing);
    const unsent = sealing < 0 ? waiting : waiting.slice(0, sealing); // nothing overtakes a change being encrypted
    if (unsent.length === 0) return;
    const batch = unsent.slice(0, this.isolate > 0 ? 1 : MAX_BATCH);
    this.inflight = true;
    let reply;
    try {
      reply = await this.client.request({
        type: "push",
        room: this.name,
        changes: batch.map(({ client_seq, collection, key, ts, op }) => ({ client_seq, collection, key, ts, op })),
      });
    } catch {
      return; // disconnected: the batch is sent again after reconnecting (duplicates are recognised)
    }
    if (!this.inflight) return; // disconnected and reconnected meanwhile
    this.inflight = false;
    if (reply.type === "ack") {
      for (const result of reply.results) {
        this.client.clock.observe(result.ts);
        if (result.status === "error") this.refused(result);
        else this.replica.acknowledge(result);
      }
      if (this.isolate > 0) this.isolate -= batch.length;
      this.forgetConfirmed();
      this.client.updateStatus();
      this.flush();
      return;
    }
    if (FATAL_PUSH_ERRORS.has(reply.code)) {
      if (batch.length > 1) {
        this.isolate = batch.length; // find the bad change: send them one by one
      } else {
        this.replica.reject([batch[0].client_seq]);
        this.forgetConfirmed();
        this.emit("error", { ...reply, change: batch[0] });
        if (this.isolate > 0) this.isolate -= 1;
      }
      this.client.updateStatus();
      this.flush();
      return;
    }
    // UNAVAILABLE, RATE_LIMITED, NOT_SUBSCRIBED: try again shortly.
    this.retryTimer = setTimeout(() => this.flush(), reply.retry_after_ms ?? 1000);
  }

  /** An ack result with status "error" (an extension or a record schema refused the change,
   * or its hook failed): final, like a refused push — dropped, reported as an "error". */
  refused(result) {
    const change = this.replica.pending.find((p) => p.client_seq === result.client_seq);
    if (change === undefined) return;
    this.replica.reject([change.client_seq]);
    this.emit("error", { ...result.error, room: this.name, change });
  }

  /** Remove the changes that left the queue (confirmed or rejected) from storage. */
  forgetConfirmed() {
    const still = new Set(this.replica.pending.map((p) => p.client_seq));
    const gone = [...this.storedSeqs].filter((cseq) => !still.has(cseq));
    if (gone.length === 0) return;
    this.client.store.deletePending(this.client.clientId, this.name, gone);
    this.storedSeqs = still;
  }

  afterServerUpdate() {
    this.forgetConfirmed();
    this.saveSoon();
    this.client.updateStatus();
  }

  saveSoon() {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => this.saveNow(), SAVE_DELAY_MS);
  }

  saveNow() {
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    const { seq, epoch } = this.replica;
    this.client.store.saveRoom(this.client.clientId, this.name, { seq, epoch, records: this.replica.confirmedRecords() });
  }
}

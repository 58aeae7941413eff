// Where a client keeps its replicas and its offline queue between page loads.
//
// IndexedDBStore layout (database `name`, version 1):
//   clients  key clientId                 {clientId, created}
//   rooms    key [clientId, room]         {seq, epoch, records: [{collection, key, value}]}
//            (epoch: the history seq belongs to; absent in rooms stored before epochs,
//            which resume unchecked until the server tells it)
//   pending  key [clientId, room, cseq]   the queued change, written before it is sent
//   counters key [clientId, room]         the highest client_seq ever used
// One client id belongs to one tab at a time (a Web Lock held for the page's
// life), so two tabs never share a client_seq counter; a new tab takes over an
// unlocked id, and with it the queue a closed tab left behind.

const LOCK_PREFIX = "accord-client:";

function newClientId() {
  const bytes = new Uint8Array(9);
  globalThis.crypto.getRandomValues(bytes);
  return `js-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Keeps nothing beyond the page: for tests, or where IndexedDB is unavailable. */
export class MemoryStore {
  constructor() {
    this.rooms = new Map();
    this.pending = new Map();
    this.counters = new Map();
  }
  async claimClientId() {
    return newClientId();
  }
  async loadRoom(clientId, room) {
    const saved = this.rooms.get(room) ?? { seq: 0, records: [] };
    const pending = [...(this.pending.get(room)?.values() ?? [])].sort((a, b) => a.client_seq - b.client_seq);
    return { ...saved, epoch: saved.epoch ?? "", pending, lastClientSeq: this.counters.get(room) ?? 0 };
  }
  saveRoom(clientId, room, state) {
    this.rooms.set(room, structuredClone(state));
  }
  putPending(clientId, room, change) {
    if (!this.pending.has(room)) this.pending.set(room, new Map());
    this.pending.get(room).set(change.client_seq, structuredClone(change));
    this.counters.set(room, Math.max(this.counters.get(room) ?? 0, change.client_seq));
  }
  deletePending(clientId, room, clientSeqs) {
    for (const cseq of clientSeqs) this.pending.get(room)?.delete(cseq);
  }
  close() {}
}

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export class IndexedDBStore {
  static async open(name = "accord") {
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore("clients");
      db.createObjectStore("rooms");
      db.createObjectStore("pending");
      db.createObjectStore("counters");
    };
    return new IndexedDBStore(await promised(request));
  }

  constructor(db) {
    this.db = db;
    this.onerror = (error) => console.error("accord: local storage failed", error);
  }

  async claimClientId() {
    const tx = this.db.transaction("clients", "readonly");
    const known = await promised(tx.objectStore("clients").getAllKeys());
    if (globalThis.navigator?.locks) {
      for (const clientId of known) if (await holdLock(clientId)) return clientId;
      const clientId = newClientId();
      await holdLock(clientId);
      await this.write("clients", (s) => s.put({ clientId, created: Date.now() }, clientId));
      return clientId;
    }
    // No Web Locks (an insecure context): one id per tab, kept across reloads of that tab.
    let clientId = globalThis.sessionStorage?.getItem("accord-client-id");
    if (!clientId) {
      clientId = newClientId();
      globalThis.sessionStorage?.setItem("accord-client-id", clientId);
      await this.write("clients", (s) => s.put({ clientId, created: Date.now() }, clientId));
    }
    return clientId;
  }

  async loadRoom(clientId, room) {
    const tx = this.db.transaction(["rooms", "pending", "counters"], "readonly");
    const range = IDBKeyRange.bound([clientId, room, 0], [clientId, room, Infinity]);
    const [saved, pending, counter] = await Promise.all([
      promised(tx.objectStore("rooms").get([clientId, room])),
      promised(tx.objectStore("pending").getAll(range)),
      promised(tx.objectStore("counters").get([clientId, room])),
    ]);
    return {
      seq: saved?.seq ?? 0,
      epoch: saved?.epoch ?? "",
      records: saved?.records ?? [],
      pending: pending.sort((a, b) => a.client_seq - b.client_seq),
      lastClientSeq: counter ?? 0,
    };
  }

  saveRoom(clientId, room, state) {
    this.write("rooms", (s) => s.put(state, [clientId, room])).catch(this.onerror);
  }

  putPending(clientId, room, change) {
    // One transaction: the counter can never fall behind a queued change.
    this.write(["pending", "counters"], (stores) => {
      stores.pending.put(change, [clientId, room, change.client_seq]);
      stores.counters.put(change.client_seq, [clientId, room]);
    }).catch(this.onerror);
  }

  deletePending(clientId, room, clientSeqs) {
    if (clientSeqs.length === 0) return;
    this.write("pending", (s) => {
      for (const cseq of clientSeqs) s.delete([clientId, room, cseq]);
    }).catch(this.onerror);
  }

  /** Run `body` in a readwrite transaction; resolves when it commits. */
  write(names, body) {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(names, "readwrite");
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
      if (Array.isArray(names)) body(Object.fromEntries(names.map((n) => [n, tx.objectStore(n)])));
      else body(tx.objectStore(names));
    });
  }

  close() {
    this.db.close();
  }
}

/** Take the tab-lifetime lock of a client id; false when another tab holds it. */
function holdLock(clientId) {
  return new Promise((resolve) => {
    navigator.locks.request(LOCK_PREFIX + clientId, { ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      return lock === null ? undefined : new Promise(() => {});
    });
  });
}

/** IndexedDB when the browser has it and lets us open it, memory otherwise. */
export async function openStore(name) {
  if (globalThis.indexedDB) {
    try {
      return await IndexedDBStore.open(name);
    } catch (error) {
      console.warn("accord: IndexedDB unavailable, keeping state in memory", error);
    }
  }
  return new MemoryStore();
}

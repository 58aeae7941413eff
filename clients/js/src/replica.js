// The local replica of one room: the records the server confirmed (built only
// from patches, in seq order) plus the local changes not yet confirmed, applied
// optimistically on top. When a confirmed change arrives the affected records
// are recomputed from the new confirmed state and the still-pending changes:
// that is the rebase. Pure: no I/O, no timers, so it is unit-tested with node.

/** JSON text with object keys sorted: how the server keys set elements (Python's canonical_json). */
export function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort(compareCodePoints);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Strings in code point order (the server's order), not UTF-16 code unit order. */
export function compareCodePoints(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (astral code points) sort after every BMP code unit above them.
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy && (x >= 0xe000 || y >= 0xe000)) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** The id of the `index`-th value (from 0) of the insert with this client_seq by this client. */
export function elementId(clientSeq, index, clientId) {
  return `${clientSeq}.${index}@${clientId}`;
}

const arrayOf = (record, field) => (Array.isArray(record[field]) ? record[field] : []);

/** A set field's elements plus `values`, without duplicates, sorted by canonical JSON like the server. */
function addToSet(current, values) {
  const merged = new Map();
  for (const v of [...current, ...values]) {
    const k = canonicalJson(v);
    if (!merged.has(k)) merged.set(k, v);
  }
  return [...merged.keys()].sort(compareCodePoints).map((k) => merged.get(k));
}

function removeFromSet(current, values) {
  const gone = new Set(values.map(canonicalJson));
  return current.filter((v) => !gone.has(canonicalJson(v)));
}

/**
 * Where removed list elements were: per field, removed id -> the id of the item
 * left of it when it was removed (null: the start). Only a hint, for placing a
 * local insert after an element someone removed meanwhile; the server's patch
 * then says where it really went.
 */
export class Tombstones {
  constructor(parent = null) {
    this.parent = parent;
    this.fields = new Map();
  }
  note(field, id, left) {
    if (!this.fields.has(field)) this.fields.set(field, new Map());
    this.fields.get(field).set(id, left);
  }
  lookup(field, id) {
    const own = this.fields.get(field);
    if (own?.has(id)) return { left: own.get(id) };
    return this.parent?.lookup(field, id);
  }
}

/** Remove the item with `id` (if held) from `items` in place, noting where it was. */
function deleteItem(items, id, field, tombstones) {
  const at = items.findIndex((item) => item?.id === id);
  if (at < 0) return;
  tombstones?.note(field, id, at === 0 ? null : items[at - 1].id);
  items.splice(at, 1);
}

/**
 * The index right after element `after` in `items` (null: 0). An element no
 * longer held is looked up in `tombstones`, left neighbour by left neighbour;
 * an unknown one puts the insert at the end.
 */
function insertionIndex(items, after, field, tombstones) {
  let id = after ?? null;
  for (let guard = 0; guard <= 100_000; guard++) {
    if (id === null) return 0;
    const at = items.findIndex((item) => item?.id === id);
    if (at >= 0) return at + 1;
    const known = tombstones?.lookup(field, id);
    if (known === undefined) break;
    id = known.left;
  }
  return items.length;
}

/**
 * Apply a server patch to one record (undefined: absent), as docs/merge.md and
 * the reference `apply_patch` (services/sync/src/accord/sync/patch.py) do: the
 * keys deleted, unset, set, incr, remove, add, list, in that order. Returns a
 * new object; `record` is not modified. `tombstones` (optional) learns where
 * the list items the patch deletes were.
 */
export function applyPatch(record, patch, tombstones) {
  if (patch.deleted) return undefined;
  let out = record === undefined ? undefined : { ...record };
  if (patch.unset && out !== undefined) for (const field of patch.unset) delete out[field];
  if (patch.set) out = { ...(out ?? {}), ...patch.set };
  if (out === undefined) {
    if (!(patch.incr || patch.remove || patch.add || patch.list)) return undefined;
    out = {};
  }
  for (const [field, by] of Object.entries(patch.incr ?? {})) out[field] = (typeof out[field] === "number" ? out[field] : 0) + by;
  for (const [field, values] of Object.entries(patch.remove ?? {})) out[field] = removeFromSet(arrayOf(out, field), values);
  for (const [field, values] of Object.entries(patch.add ?? {})) out[field] = addToSet(arrayOf(out, field), values);
  for (const [field, steps] of Object.entries(patch.list ?? {})) {
    const items = [...arrayOf(out, field)];
    for (const step of steps) {
      if ("delete" in step) deleteItem(items, step.delete, field, tombstones);
      else items.splice(insertionIndex(items, step.after, field, tombstones), 0, ...step.insert);
    }
    out[field] = items;
  }
  return out;
}

/**
 * Apply a local op optimistically: the server's result when nothing concurrent
 * happened — a guess that the server's patch later confirms or corrects.
 * `ids`: the element ids of an insert's values (see `elementId`).
 * `tombstones`: where removed list elements were (see `Tombstones`).
 */
export function applyOp(record, op, { ids, tombstones } = {}) {
  switch (op.kind) {
    case "set":
      return { ...(record ?? {}), ...op.fields };
    case "delete":
      return undefined;
    case "incr": {
      const out = { ...(record ?? {}) };
      const base = out[op.field];
      if (base === undefined || typeof base === "number") out[op.field] = (base ?? 0) + (op.by ?? 1);
      return out;
    }
    case "add": {
      const out = { ...(record ?? {}) };
      out[op.field] = addToSet(arrayOf(out, op.field), op.values);
      return out;
    }
    case "remove": {
      // Never revives a record; with seen = the replica's seq it removes every add we know of.
      if (record === undefined || !Array.isArray(record[op.field])) return record;
      return { ...record, [op.field]: removeFromSet(record[op.field], op.values) };
    }
    case "insert": {
      const out = { ...(record ?? {}) };
      const items = [...arrayOf(out, op.field)];
      const made = op.values.map((value, i) => ({ id: ids?.[i] ?? `?${i}`, value }));
      items.splice(insertionIndex(items, op.after, op.field, tombstones), 0, ...made);
      out[op.field] = items;
      return out;
    }
    case "remove_items": {
      if (record === undefined || !Array.isArray(record[op.field])) return record;
      const items = [...record[op.field]];
      for (const id of op.ids) deleteItem(items, id, op.field, tombstones);
      return { ...record, [op.field]: items };
    }
    default:
      throw new Error(`unknown op kind ${op.kind}`);
  }
}

function sameValue(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

const recordId = (collection, key) => `${collection}\u0000${key}`;

/**
 * One room's replica. `onChange(collection, key, value)` is called whenever the
 * visible value of a record changes (value undefined: the record is gone).
 */
export class Replica {
  constructor({ onChange = () => {}, clientId = null } = {}) {
    this.onChange = onChange;
    this.clientId = clientId; // names the element ids of our own inserts
    this.seq = 0; // last seq applied from the server
    // The room's history `seq` belongs to (sent back on resume). A subscribe reply's
    // epoch is taken with the state sent under it (the snapshot, or the changes that
    // follow the resume), so the stored seq is never paired with another history's epoch.
    this.epoch = "";
    this.announced = ""; // the epoch of the last `subscribed` or snapshot
    this.confirmed = new Map(); // id -> {collection, key, value}
    this.pending = []; // [{client_seq, collection, key, ts, op, ackSeq?}] in client_seq order
    this.view = new Map(); // id -> {collection, key, value}: confirmed + pending
    this.tombstones = new Map(); // id -> Tombstones: where confirmed list items were removed
    this.snapshotChunks = null;
  }

  /** The visible value of a record, or undefined. */
  get(collection, key) {
    return this.view.get(recordId(collection, key))?.value;
  }

  /** Every visible record of a collection as [key, value] pairs, in key order. */
  entries(collection) {
    const out = [];
    for (const entry of this.view.values()) if (entry.collection === collection) out.push([entry.key, entry.value]);
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  collections() {
    return [...new Set([...this.view.values()].map((entry) => entry.collection))].sort();
  }

  /** Recompute one record's visible value from the confirmed state and the pending ops. */
  refresh(collection, key) {
    const id = recordId(collection, key);
    let value = this.confirmed.get(id)?.value;
    let tombstones = null;
    for (const change of this.pending) {
      if (change.collection !== collection || change.key !== key) continue;
      const { op } = change;
      if (op.kind === "insert" || op.kind === "remove_items") tombstones ??= new Tombstones(this.tombstones.get(id));
      const ids = op.kind === "insert" ? op.values.map((_, i) => elementId(change.client_seq, i, this.clientId)) : undefined;
      value = applyOp(value, op, { ids, tombstones });
    }
    const before = this.view.get(id)?.value;
    if (value === undefined) this.view.delete(id);
    else this.view.set(id, { collection, key, value });
    if (!sameValue(before, value)) this.onChange(collection, key, value);
  }

  /** A local change: queued and applied at once. */
  addLocal(change) {
    this.pending.push(change);
    this.refresh(change.collection, change.key);
  }

  /**
   * Changes delivered by the server, in seq order. Own changes (same client_id)
   * leave the pending queue as they become confirmed. Returns false on a gap.
   */
  applyChanges(changes, clientId = this.clientId) {
    const touched = new Map();
    let inOrder = true;
    for (const change of changes) {
      if (change.seq <= this.seq) continue; // already applied (e.g. a resent catch-up)
      if (change.seq !== this.seq + 1) {
        inOrder = false;
        break;
      }
      const id = recordId(change.collection, change.key);
      const patch = change.patch ?? {};
      if (patch.list && !this.tombstones.has(id)) this.tombstones.set(id, new Tombstones());
      const value = applyPatch(this.confirmed.get(id)?.value, patch, this.tombstones.get(id));
      if (value === undefined) this.confirmed.delete(id);
      else this.confirmed.set(id, { collection: change.collection, key: change.key, value });
      this.seq = change.seq;
      if (change.client_id === clientId) {
        this.pending = this.pending.filter((p) => p.client_seq !== change.client_seq);
      }
      touched.set(id, change);
    }
    if (touched.size > 0) this.adopt(this.announced);
    this.dropConfirmedPending(touched);
    for (const change of touched.values()) this.refresh(change.collection, change.key);
    return inOrder;
  }

  /** Pending changes whose ack names a seq we already hold are confirmed. */
  dropConfirmedPending(touched = new Map()) {
    const keep = [];
    for (const p of this.pending) {
      if (p.ackSeq !== undefined && p.ackSeq <= this.seq) touched.set(recordId(p.collection, p.key), p);
      else keep.push(p);
    }
    this.pending = keep;
  }

  /** An ack result for one pending change: applied/duplicate with the seq it got. */
  acknowledge(result) {
    const p = this.pending.find((q) => q.client_seq === result.client_seq);
    if (p === undefined) return;
    // seq 0 on a duplicate: the log no longer holds it, so it is in any snapshot we get.
    p.ackSeq = result.seq;
    const touched = new Map();
    this.dropConfirmedPending(touched);
    for (const change of touched.values()) this.refresh(change.collection, change.key);
  }

  /** Drop pending changes the server rejected (e.g. FORBIDDEN): the view falls back to confirmed. */
  reject(clientSeqs) {
    const gone = this.pending.filter((p) => clientSeqs.includes(p.client_seq));
    this.pending = this.pending.filter((p) => !clientSeqs.includes(p.client_seq));
    for (const p of gone) this.refresh(p.collection, p.key);
  }

  /**
   * The subscribe reply for a subscribe that sent `since` (and our epoch). Its epoch
   * is taken at once only when no state is at stake: the room is empty, or we had no
   * epoch (the server took `since` unchecked). Otherwise another epoch is either a later
   * name of the same history (changes follow) or another one (a snapshot follows).
   * Returns whether the epoch changed (to be stored).
   */
  subscribed(since, head, epoch) {
    this.announced = epoch ?? "";
    if (since === 0 ? head === 0 : since <= head && !this.epoch) return this.adopt(this.announced);
    return false;
  }

  adopt(epoch) {
    if (!epoch || epoch === this.epoch) return false;
    this.epoch = epoch;
    return true;
  }

  /** One chunk of a snapshot; the chunks together replace every confirmed record. */
  applySnapshotChunk(message) {
    this.snapshotChunks ??= [];
    this.snapshotChunks.push(...message.records);
    if (!message.last) return;
    const records = this.snapshotChunks;
    this.snapshotChunks = null;
    const epoch = (this.announced = message.epoch || this.announced);
    if (epoch && this.epoch && epoch !== this.epoch) {
      // Another history: the seqs of earlier acks name other changes; send those again
      // (the server answers "duplicate" for the ones it holds).
      for (const p of this.pending) delete p.ackSeq;
    }
    this.adopt(epoch);
    this.loadConfirmed(message.seq, records);
    this.dropConfirmedPending();
    const ids = new Set([...this.view.keys(), ...this.confirmed.keys()]);
    for (const p of this.pending) ids.add(recordId(p.collection, p.key));
    for (const id of ids) {
      const entry = this.confirmed.get(id) ?? this.view.get(id) ?? this.pending.find((p) => recordId(p.collection, p.key) === id);
      this.refresh(entry.collection, entry.key);
    }
  }

  /** Replace the confirmed state (from a snapshot or from local storage) without notifying. */
  loadConfirmed(seq, records, epoch = this.epoch) {
    this.seq = seq;
    this.epoch = epoch;
    this.confirmed = new Map(records.map((r) => [recordId(r.collection, r.key), { collection: r.collection, key: r.key, value: r.value }]));
  }

  /** Rebuild the view from scratch (after loading from storage), notifying every record. */
  rebuild() {
    const ids = new Map();
    for (const e of this.confirmed.values()) ids.set(recordId(e.collection, e.key), e);
    for (const p of this.pending) ids.set(recordId(p.collection, p.key), p);
    for (const e of this.view.values()) ids.set(recordId(e.collection, e.key), e);
    for (const e of ids.values()) this.refresh(e.collection, e.key);
  }

  /** The confirmed records, for storage. */
  confirmedRecords() {
    return [...this.confirmed.values()];
  }
}

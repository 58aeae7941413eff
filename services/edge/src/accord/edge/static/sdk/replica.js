// The local replica of one room: the records the server confirmed (built only
// from patches, in seq order) plus the local changes not yet confirmed, applied
// optimistically on top. When a confirmed change arrives the affected records
// are recomputed from the new confirmed state and the still-pending changes:
// that is the rebase. Pure: no I/O, no timers, so it is unit-tested with node.

/** Apply a server patch ({deleted}, {unset}, {set}, {incr}) to one record. */
export function applyPatch(record, patch) {
  let out = record === undefined ? undefined : { ...record };
  if (patch.deleted) out = undefined;
  if (patch.unset && out !== undefined) for (const field of patch.unset) delete out[field];
  if (patch.set) out = { ...(out ?? {}), ...patch.set };
  if (patch.incr) {
    out = { ...(out ?? {}) };
    for (const [field, by] of Object.entries(patch.incr)) out[field] = (typeof out[field] === "number" ? out[field] : 0) + by;
  }
  return out;
}

/** Apply a local op ({kind: set|delete|incr}) optimistically, as the server would without conflicts. */
export function applyOp(record, op) {
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
  constructor({ onChange = () => {} } = {}) {
    this.onChange = onChange;
    this.seq = 0; // last seq applied from the server
    this.confirmed = new Map(); // id -> {collection, key, value}
    this.pending = []; // [{client_seq, collection, key, ts, op, ackSeq?}] in client_seq order
    this.view = new Map(); // id -> {collection, key, value}: confirmed + pending
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
    for (const change of this.pending) {
      if (change.collection === collection && change.key === key) value = applyOp(value, change.op);
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
  applyChanges(changes, clientId) {
    const touched = new Map();
    let inOrder = true;
    for (const change of changes) {
      if (change.seq <= this.seq) continue; // already applied (e.g. a resent catch-up)
      if (change.seq !== this.seq + 1) {
        inOrder = false;
        break;
      }
      const id = recordId(change.collection, change.key);
      const value = applyPatch(this.confirmed.get(id)?.value, change.patch ?? {});
      if (value === undefined) this.confirmed.delete(id);
      else this.confirmed.set(id, { collection: change.collection, key: change.key, value });
      this.seq = change.seq;
      if (change.client_id === clientId) {
        this.pending = this.pending.filter((p) => p.client_seq !== change.client_seq);
      }
      touched.set(id, change);
    }
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

  /** One chunk of a snapshot; the chunks together replace every confirmed record. */
  applySnapshotChunk(message) {
    this.snapshotChunks ??= [];
    this.snapshotChunks.push(...message.records);
    if (!message.last) return;
    const records = this.snapshotChunks;
    this.snapshotChunks = null;
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
  loadConfirmed(seq, records) {
    this.seq = seq;
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

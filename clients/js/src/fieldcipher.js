// A room's encrypted fields at work: ops sealed on the way out, records opened when shown.
//
// Reads (room.get, room.list, change events) are synchronous and WebCrypto is not,
// so every ciphertext is decrypted before it reaches the replica — server records
// and patches by `prepare…`, local writes when they are sealed — into a cache of
// (location, ciphertext) → plaintext JSON text or Undecryptable marker.

import { canonicalJson } from "./replica.js";
import { EncryptedFieldError, EncryptionError, Undecryptable, importKey, openText, parseValue, plaintextOf, sealValue } from "./encryption.js";

const KEY_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
const MIN_CACHE = 1024;

/** A local value waiting for its ciphertext: shown as itself, never stored or sent. */
class Sealing {
  constructor(text) {
    this.text = text;
  }
}

const cacheKey = (collection, key, field, stored) => `${collection}\u0000${key}\u0000${field}\u0000${typeof stored === "string" ? stored : `\u0001${canonicalJson(stored)}`}`;

export class FieldCipher {
  /**
   * `options`: {keys: {keyId: CryptoKey | Uint8Array(32)}, current: keyId, fields: {collection: [field, …]}}.
   * `report(undecryptable)` hears of each value that fails to decrypt, once per distinct value.
   */
  static async create(room, options, report = () => {}) {
    const { keys, current, fields } = options ?? {};
    const entries = keys instanceof Map ? [...keys] : Object.entries(keys ?? {});
    const keyring = new Map();
    for (const [keyId, key] of entries) {
      if (!KEY_ID.test(keyId)) throw new EncryptionError("key ids are 1-64 characters of [A-Za-z0-9_.:-]");
      keyring.set(keyId, await importKey(key, keyId));
    }
    if (!keyring.has(current)) throw new EncryptionError(`current key id "${current}" is not in keys`);
    const chosen = new Map();
    for (const [collection, names] of Object.entries(fields ?? {})) {
      if (!Array.isArray(names) || !names.every((n) => typeof n === "string" && n.length > 0)) {
        throw new EncryptionError(`fields.${collection} must be an array of field names`);
      }
      chosen.set(collection, new Set(names));
    }
    return new FieldCipher(room, { keyring, current, fields: chosen, options: { keys, current, fields } }, report);
  }

  constructor(room, { keyring, current, fields, options }, report) {
    this.room = room;
    this.keyring = keyring;
    this.current = current;
    this.fields = fields;
    this.options = options;
    this.report = report;
    this.onReady = () => {}; // (collection, key): a "not_ready" value has been decrypted
    this.cache = new Map();
    this.limit = MIN_CACHE;
  }

  encrypts(collection, field) {
    return this.fields.get(collection)?.has(field) ?? false;
  }

  where(collection, key, field) {
    return { room: this.room, collection, key, field };
  }

  // -- writing --------------------------------------------------------------

  /**
   * Check a local op before it is queued: refuse ops that need the plaintext
   * (EncryptedFieldError). null when nothing needs sealing; otherwise the op to
   * show meanwhile and `seal()`, which resolves to the op to store and push.
   */
  prepareOp(collection, key, op) {
    const fields = this.fields.get(collection);
    if (!fields || op.kind === "delete") return null;
    if (op.kind !== "set") {
      if (fields.has(op.field)) {
        throw new EncryptedFieldError(`${op.kind} on ${collection}/${key}.${op.field}: an encrypted field is an opaque last-writer-wins value; only set and delete are possible`);
      }
      return null;
    }
    const values = op.fields;
    if (values === null || typeof values !== "object") return null;
    const plain = new Map();
    for (const [name, value] of Object.entries(values)) {
      if (!fields.has(name)) continue;
      if (value instanceof Undecryptable) throw new EncryptedFieldError(`${collection}/${key}.${name} holds an undecryptable value; write a new value`);
      plain.set(name, plaintextOf(value));
    }
    if (plain.size === 0) return null;
    const shown = { ...values };
    for (const [name, text] of plain) shown[name] = new Sealing(text);
    const keyId = this.current;
    const cryptoKey = this.keyring.get(keyId);
    const seal = async () => {
      const sealed = { ...values };
      for (const [name, text] of plain) {
        sealed[name] = await sealValue(keyId, cryptoKey, this.where(collection, key, name), JSON.parse(text));
        this.cache.set(cacheKey(collection, key, name, sealed[name]), text);
      }
      return { ...op, fields: sealed };
    };
    return { shown: { ...op, fields: shown }, seal };
  }

  // -- reading --------------------------------------------------------------

  /** A copy of `record` with its encrypted fields opened (or Undecryptable markers). */
  present(collection, key, record) {
    const fields = this.fields.get(collection);
    if (record === undefined || !fields) return record;
    let shown = record;
    for (const name of fields) {
      if (!(name in record)) continue;
      if (shown === record) shown = { ...record };
      shown[name] = this.open(collection, key, name, record[name]);
    }
    return shown;
  }

  open(collection, key, field, stored) {
    if (stored instanceof Sealing) return JSON.parse(stored.text);
    const id = cacheKey(collection, key, field, stored);
    let opened = this.cache.get(id);
    if (opened === undefined) {
      try {
        parseValue(stored, this.where(collection, key, field));
        // Well-formed but not decrypted yet (should not happen: every path prepares first).
        this.decrypt(collection, key, field, stored).then(() => this.onReady(collection, key));
        return new Undecryptable("not_ready", "still being decrypted", this.where(collection, key, field));
      } catch (error) {
        opened = this.remember(id, error);
      }
    }
    return opened instanceof Undecryptable ? opened : JSON.parse(opened);
  }

  remember(id, result) {
    if (result instanceof Undecryptable) this.report(result);
    this.cache.set(id, result);
    return result;
  }

  async decrypt(collection, key, field, stored) {
    const id = cacheKey(collection, key, field, stored);
    if (typeof stored !== "string" || this.cache.has(id)) return;
    let result;
    try {
      result = await openText(this.keyring, this.where(collection, key, field), stored);
    } catch (error) {
      if (!(error instanceof Undecryptable)) throw error;
      result = error;
    }
    if (!this.cache.has(id)) this.remember(id, result);
  }

  /** Decrypt the encrypted fields of records ([{collection, key, value}]) into the cache. */
  async prepareRecords(records) {
    const work = [];
    for (const { collection, key, value } of records) {
      for (const name of this.fields.get(collection) ?? []) {
        if (value && name in value) work.push(this.decrypt(collection, key, name, value[name]));
      }
    }
    await Promise.all(work);
  }

  /** Decrypt what server changes (their `set` patches) or pending set ops carry. */
  async prepareChanges(changes) {
    await this.prepareRecords(changes.map((c) => ({ collection: c.collection, key: c.key, value: c.patch?.set ?? c.op?.fields })));
  }

  /** Every ciphertext a replica holds, e.g. before this cipher replaces another. */
  async prepareReplica(replica) {
    await this.prepareRecords(replica.confirmedRecords());
    await this.prepareChanges(replica.pending.filter((p) => p.op.kind === "set"));
  }

  /** Forget cached values the replica no longer holds, once the cache has grown. */
  prune(replica) {
    if (this.cache.size <= this.limit) return;
    const live = new Set();
    const visit = (collection, key, value) => {
      for (const name of this.fields.get(collection) ?? []) if (value && name in value) live.add(cacheKey(collection, key, name, value[name]));
    };
    for (const { collection, key, value } of replica.confirmedRecords()) visit(collection, key, value);
    for (const p of replica.pending) if (p.op.kind === "set") visit(p.collection, p.key, p.op.fields);
    for (const id of this.cache.keys()) if (!live.has(id)) this.cache.delete(id);
    this.limit = Math.max(MIN_CACHE, 2 * this.cache.size);
  }
}

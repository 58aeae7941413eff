// End-to-end encrypted fields (docs/encryption.md), the same format as the Python SDK's.
//
// A field value is AES-256-GCM (WebCrypto) over its canonical JSON text; the format
// version, the key id, the room, the collection, the record key and the field name
// are bound as associated data, so a ciphertext moved anywhere else fails to decrypt.
// The server, the replica and the offline store hold the resulting "acc1:…" string;
// `FieldCipher.present` turns it back into the value when a record is shown — or
// into an `Undecryptable` marker, never into the raw ciphertext. WebCrypto is async
// and reads are not, so values are decrypted before they reach the replica and
// kept in a cache keyed by their location and ciphertext.

import { canonicalJson } from "./replica.js";

export const PREFIX = "acc1:";
export const VERSION = 1;
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const DOMAIN = utf8.encode("accord-e2ee");

/** Bad encryption options, or WebCrypto missing (pages must be a secure context). */
export class EncryptionError extends Error {
  constructor(message) {
    super(message);
    this.name = "EncryptionError";
  }
}

/** An op the server would have to read the value for (incr, sets, lists) on an encrypted field. */
export class EncryptedFieldError extends TypeError {
  constructor(message) {
    super(message);
    this.name = "EncryptedFieldError";
  }
}

/**
 * What a read shows instead of an encrypted field's value that cannot be trusted.
 * `reason`: "unknown_key", "auth_failed" (altered, moved, or another key under this
 * id), "malformed", "not_encrypted" (a plain value where ciphertext belongs), or
 * "not_ready" (transient: still being decrypted; a change event follows).
 */
export class Undecryptable extends Error {
  constructor(reason, message, where, keyId = null) {
    super(`${where.room}/${where.collection}/${where.key}.${where.field}: ${message}`);
    this.name = "Undecryptable";
    this.reason = reason;
    this.room = where.room;
    this.collection = where.collection;
    this.key = where.key;
    this.field = where.field;
    this.keyId = keyId;
  }
}

/** A fresh random 256-bit key (raw bytes: keep them, give them to `keys`). */
export function generateKey() {
  return globalThis.crypto.getRandomValues(new Uint8Array(KEY_BYTES));
}

export function base64url(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromBase64url(text) {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return null;
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function prefixed(text) {
  const data = utf8.encode(text);
  const out = new Uint8Array(4 + data.length);
  new DataView(out.buffer).setUint32(0, data.length);
  out.set(data, 4);
  return out;
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** "accord-e2ee" ‖ version ‖ lp(keyId) ‖ lp(room) ‖ lp(collection) ‖ lp(key) ‖ lp(field). */
export function associatedData(keyId, where, version = VERSION) {
  const parts = [keyId, where.room, where.collection, where.key, where.field].map(prefixed);
  return concat([DOMAIN, Uint8Array.of(version), ...parts]);
}

/** The plaintext of a value: canonical JSON (sorted keys, no whitespace). */
export function plaintextOf(value) {
  let text;
  try {
    text = canonicalJson(value);
    JSON.parse(text);
  } catch {
    text = undefined;
  }
  if (typeof text !== "string") throw new TypeError("an encrypted field's value must be JSON");
  return text;
}

/** Import raw key bytes (or check a CryptoKey) as a non-extractable AES-256-GCM key. */
export async function importKey(key, keyId = "") {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new EncryptionError("WebCrypto (crypto.subtle) is unavailable: encrypted fields need a secure context (https or localhost)");
  if (globalThis.CryptoKey && key instanceof globalThis.CryptoKey) {
    if (key.algorithm?.name !== "AES-GCM" || key.algorithm.length !== 256) throw new EncryptionError(`key ${keyId} must be an AES-GCM 256-bit key`);
    return key;
  }
  const bytes = key instanceof ArrayBuffer ? new Uint8Array(key) : key;
  if (!(bytes instanceof Uint8Array) || bytes.length !== KEY_BYTES) throw new EncryptionError(`key ${keyId} must be ${KEY_BYTES} bytes (AES-256) or a CryptoKey`);
  return subtle.importKey("raw", bytes, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

/** Encrypt `value` for `where` ({room, collection, key, field}). `nonce` is for test vectors only. */
export async function sealValue(keyId, cryptoKey, where, value, { nonce } = {}) {
  const plaintext = utf8.encode(plaintextOf(value));
  const iv = nonce ?? globalThis.crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  if (iv.length !== NONCE_BYTES) throw new TypeError(`the nonce must be ${NONCE_BYTES} bytes`);
  const sealed = new Uint8Array(await globalThis.crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: associatedData(keyId, where) }, cryptoKey, plaintext));
  const kid = utf8.encode(keyId);
  return PREFIX + base64url(concat([Uint8Array.of(VERSION, kid.length), kid, iv, sealed]));
}

/** The parts of a stored value; throws `Undecryptable` when it is not one. */
export function parseValue(stored, where) {
  if (typeof stored !== "string" || !stored.startsWith(PREFIX)) throw new Undecryptable("not_encrypted", "a plain value in an encrypted field", where);
  const blob = fromBase64url(stored.slice(PREFIX.length));
  if (blob === null) throw new Undecryptable("malformed", "not base64url", where);
  if (blob.length < 2 || blob[0] !== VERSION) throw new Undecryptable("malformed", "unknown format version", where);
  const end = 2 + blob[1];
  if (blob[1] === 0 || blob.length < end + NONCE_BYTES + TAG_BYTES) throw new Undecryptable("malformed", "the value is truncated", where);
  let keyId;
  try {
    keyId = strictUtf8.decode(blob.subarray(2, end));
  } catch {
    throw new Undecryptable("malformed", "the key id is not UTF-8", where);
  }
  return { keyId, nonce: blob.subarray(end, end + NONCE_BYTES), sealed: blob.subarray(end + NONCE_BYTES) };
}

/** The value `stored` encrypts for `where`, with `keys` (Map keyId → CryptoKey); throws `Undecryptable`. */
export async function openValue(keys, where, stored) {
  return JSON.parse(await openText(keys, where, stored));
}

/** Like `openValue`, but the plaintext JSON text. */
export async function openText(keys, where, stored) {
  const { keyId, nonce, sealed } = parseValue(stored, where);
  const key = keys.get(keyId);
  if (key === undefined) throw new Undecryptable("unknown_key", `no key with id "${keyId}"`, where, keyId);
  let plaintext;
  try {
    plaintext = await globalThis.crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: associatedData(keyId, where) }, key, sealed);
  } catch {
    throw new Undecryptable("auth_failed", `authentication failed: altered, moved, or encrypted under another key with id "${keyId}"`, where, keyId);
  }
  try {
    const text = strictUtf8.decode(plaintext);
    JSON.parse(text);
    return text;
  } catch {
    throw new Undecryptable("malformed", "the plaintext is not JSON", where, keyId);
  }
}

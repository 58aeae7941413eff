// Dense, totally ordered position keys for sequences (text, ordered lists)
// built from plain set/delete records: each element is a record whose key is
// its position, and elements are read in key order. Two replicas inserting at
// the same place concurrently get different keys (each key ends with the
// writer's unique tag), so every replica sorts the same set of keys the same
// way: the sequence converges with nothing but last-writer-wins records.
//
// Keys are strings over ALPHABET, compared with plain `<` (code units). '.' is
// the smallest character and separates a position from its tag, so extending a
// key with a deeper level starts from the bottom of the range.
//
// Growth: inserting n elements one after another at one place costs about one
// character per 62 elements, so keys stay short for documents of a few
// thousand characters typed in place; the protocol's key limit is 256.

export const ALPHABET = ".0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const DIGITS = ALPHABET.slice(1);
export const MAX_KEY_LENGTH = 256;

function valueOf(ch) {
  const index = ALPHABET.indexOf(ch);
  if (index < 0) throw new Error(`bad position character ${JSON.stringify(ch)}`);
  return index;
}

/**
 * A string m with a < m < b that is not a prefix of b (so m + anything is
 * still < b). `a` null or "": the start; `b` null: the end.
 */
export function midpoint(a, b) {
  a = a ?? "";
  if (b !== null && b !== undefined && !(a < b)) throw new Error(`positions out of order: ${a} !< ${b}`);
  let tied = b !== null && b !== undefined;
  let out = "";
  for (let i = 0; ; i++) {
    // Past the end of `a` any extension is already greater than `a`: pad with the smallest digit.
    const lo = i < a.length ? valueOf(a[i]) : 0;
    let hi = ALPHABET.length;
    if (tied) {
      if (i >= b.length) throw new Error(`no position between ${a} and ${b}`);
      hi = valueOf(b[i]);
    }
    if (hi - lo >= 2) return out + ALPHABET[lo + 1];
    out += ALPHABET[lo];
    if (hi - lo === 1) tied = false;
  }
}

/** A random tag of base-62 digits, unique enough to tell writers apart. */
export function randomTag(length = 6) {
  const bytes = new Uint8Array(length);
  globalThis.crypto.getRandomValues(bytes);
  return [...bytes].map((x) => DIGITS[x % DIGITS.length]).join("");
}

function base62(n) {
  let out = "";
  do {
    out = DIGITS[n % 62] + out;
    n = Math.floor(n / 62);
  } while (n > 0);
  return out;
}

/**
 * Makes position keys for one writer: `between(a, b)` is a fresh key strictly
 * between the keys a and b (null: the start / the end), never made before by
 * this or any other writer.
 */
export class PositionSource {
  constructor(site = randomTag()) {
    if (!/^[0-9A-Za-z]+$/.test(site)) throw new Error("site must be base-62 digits");
    this.site = site;
    this.counter = 0;
  }

  between(a, b) {
    // Fixed-length site + counter: two writers never produce the same tag.
    const key = `${midpoint(a, b)}.${this.site}${base62(this.counter++)}`;
    if (key.length > MAX_KEY_LENGTH) throw new Error("position key too long: the sequence needs the list op");
    return key;
  }
}

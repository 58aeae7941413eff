import assert from "node:assert/strict";
import { test } from "node:test";

import { PositionSource, midpoint } from "../src/sequence.js";

test("midpoint is strictly between and never a prefix of the upper bound", () => {
  const cases = [["", null], ["1", "3"], ["1", "2"], ["1", "10"], ["1.a", "1.b"], ["z", null], ["", "0"], ["", "1"], ["8.t3", "9.abc"]];
  for (const [a, b] of cases) {
    const m = midpoint(a, b);
    assert.ok(a < m, `${a} < ${m}`);
    if (b !== null) {
      assert.ok(m < b, `${m} < ${b}`);
      assert.ok(!b.startsWith(m), `${m} is a prefix of ${b}`);
      assert.ok(m + ".zzz" < b);
    }
  }
});

test("keys inserted anywhere stay ordered and unique", () => {
  const source = new PositionSource("site01");
  const keys = [];
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 2000; i++) {
    const at = Math.floor(random() * (keys.length + 1));
    const key = source.between(keys[at - 1] ?? null, keys[at] ?? null);
    keys.splice(at, 0, key);
  }
  assert.deepEqual([...keys].sort(), keys);
  assert.equal(new Set(keys).size, keys.length);
});

test("typing 3000 characters in a row keeps keys short", () => {
  const source = new PositionSource("site01");
  let last = null;
  let next = source.between(null, null);
  for (let i = 0; i < 3000; i++) last = source.between(last, next);
  assert.ok(last.length < 80, `key length ${last.length}`);
});

test("concurrent inserts at one place converge to one order on every replica", () => {
  const alice = new PositionSource("aaaaaa");
  const bob = new PositionSource("bbbbbb");
  const start = alice.between(null, null);
  const end = alice.between(start, null);
  let a = start;
  let b = start;
  const keys = [start, end];
  for (let i = 0; i < 50; i++) {
    a = alice.between(a, end);
    b = bob.between(b, end);
    keys.push(a, b);
  }
  const sorted = [...keys].sort();
  assert.equal(new Set(sorted).size, keys.length);
  assert.equal(sorted[0], start);
  assert.equal(sorted.at(-1), end);
});

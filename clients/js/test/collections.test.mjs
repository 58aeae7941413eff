// Set ops (add/remove) and list ops (insert/remove_items): their patches, the
// local guesses and the rebase of pending list inserts. Run: node --test clients/js/test/
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Replica, applyOp, applyPatch, canonicalJson, elementId } from "../src/replica.js";

const change = (seq, patch, extra = {}) => ({ seq, collection: "docs", key: "main", client_id: "bob", client_seq: seq, ts: seq, patch, ...extra });
const local = (client_seq, op) => ({ client_seq, collection: "docs", key: "main", ts: client_seq, op });
const items = (...pairs) => pairs.map(([id, value]) => ({ id, value }));
const text = (replica) => (replica.get("docs", "main")?.text ?? []).map((i) => i.value).join("");

// -- patches: the cases spelled out in docs/merge.md ---------------------------

test("merge.md's example patches: a list and a set", () => {
  let r = applyPatch(undefined, { set: { text: items(["2.0@alice", "h"], ["2.1@alice", "i"]) } });
  r = applyPatch(r, { list: { text: [{ insert: items(["1.0@bob", "!"]), after: "2.0@alice" }] } });
  assert.deepEqual(r.text, items(["2.0@alice", "h"], ["1.0@bob", "!"], ["2.1@alice", "i"]));
  r = applyPatch(r, { list: { text: [{ delete: "2.1@alice" }] } });
  assert.deepEqual(r.text, items(["2.0@alice", "h"], ["1.0@bob", "!"]));
  r = applyPatch({ ...r, tags: ["blue"] }, { add: { tags: ["red"] } });
  assert.deepEqual(r.tags, ["blue", "red"]);
  r = applyPatch(r, { remove: { tags: ["blue"] } });
  assert.deepEqual(r.tags, ["red"]);
});

test("list steps apply in order: deletes, then runs inserted after a held item or at the start", () => {
  const before = { text: items(["a", 1], ["b", 2], ["c", 3]) };
  const after = applyPatch(before, {
    list: {
      text: [
        { delete: "b" },
        { insert: items(["x", 9]), after: null },
        { insert: items(["y", 8], ["z", 7]), after: "a" },
        { insert: items(["w", 6]), after: "c" },
      ],
    },
  });
  assert.deepEqual(after.text.map((i) => i.id), ["x", "a", "y", "z", "c", "w"]);
  assert.deepEqual(before.text.map((i) => i.id), ["a", "b", "c"], "the input is not modified");
});

test("set arrays stay sorted by canonical JSON text in code point order, like the server", () => {
  // "\"a\"" < "\"b\"" < "3" (merge.md); U+FB01 sorts before U+1F600 by code point, not by UTF-16 unit.
  assert.deepEqual(applyPatch({}, { add: { s: ["b", "a", 3, "a"] } }).s, ["a", "b", 3]);
  assert.deepEqual(applyPatch({}, { add: { s: ["\u{1F600}", "\uFB01"] } }).s, ["\uFB01", "\u{1F600}"]);
  assert.deepEqual(applyPatch({}, { add: { s: [null, true, false, -1, ""] } }).s, ["", -1, false, null, true]);
  // Compared as JSON: the string "1" and the number 1 are different elements.
  assert.deepEqual(applyPatch({ s: [1, "1"] }, { remove: { s: ["1"] } }).s, [1]);
  assert.equal(canonicalJson({ b: 1, a: [true, { d: null, c: "x" }] }), '{"a":[true,{"c":"x","d":null}],"b":1}');
});

test("collection patches on an absent record create it; remove and delete behave", () => {
  assert.deepEqual(applyPatch(undefined, { add: { tags: ["x"] } }), { tags: ["x"] });
  assert.deepEqual(applyPatch(undefined, { list: { text: [{ insert: items(["1.0@a", "h"]), after: null }] } }), { text: items(["1.0@a", "h"]) });
  assert.equal(applyPatch(undefined, {}), undefined);
  assert.equal(applyPatch({ tags: ["x"] }, { deleted: true }), undefined);
  // A field that changes kind arrives whole in `set`.
  assert.deepEqual(applyPatch({ tags: "plain" }, { set: { tags: ["a"] } }), { tags: ["a"] });
});

test("replaying the sync service's own histories reaches its records exactly", () => {
  // Made by fixtures/make_patch_cases.py with the server's merge and diff.
  const { cases } = JSON.parse(readFileSync(new URL("./fixtures/patch-cases.json", import.meta.url), "utf8"));
  let patches = 0;
  for (const [n, { steps }] of cases.entries()) {
    let record;
    const replica = new Replica({ clientId: "me" });
    for (const [i, step] of steps.entries()) {
      record = applyPatch(record, step.patch);
      assert.deepEqual(record ?? null, step.record, `case ${n} step ${i}: ${JSON.stringify(step.op)} ${JSON.stringify(step.patch)}`);
      replica.applyChanges([change(i + 1, step.patch)]);
      patches += 1;
    }
    assert.deepEqual(replica.get("docs", "main") ?? null, steps.at(-1).record, `case ${n}: the replica`);
  }
  assert.ok(patches > 500);
});

// -- local guesses --------------------------------------------------------------

test("local set ops: add merges and sorts, remove takes out what we see and never revives", () => {
  assert.deepEqual(applyOp(undefined, { kind: "add", field: "tags", values: ["b", "a"] }), { tags: ["a", "b"] });
  assert.deepEqual(applyOp({ tags: ["a", "b"] }, { kind: "add", field: "tags", values: ["a", "c"] }), { tags: ["a", "b", "c"] });
  assert.deepEqual(applyOp({ tags: "plain" }, { kind: "add", field: "tags", values: ["a"] }), { tags: ["a"] });
  assert.deepEqual(applyOp({ tags: ["a", "b"] }, { kind: "remove", field: "tags", values: ["a", "z"], seen: 3 }), { tags: ["b"] });
  assert.equal(applyOp(undefined, { kind: "remove", field: "tags", values: ["a"] }), undefined);
});

test("local list ops: insert right after its anchor with the ids it will get; remove_items", () => {
  const ids = [elementId(4, 0, "me"), elementId(4, 1, "me")];
  assert.deepEqual(ids, ["4.0@me", "4.1@me"]);
  const base = { text: items(["a", "x"], ["b", "y"]) };
  assert.deepEqual(applyOp(base, { kind: "insert", field: "text", after: "a", values: ["h", "i"] }, { ids }).text.map((i) => i.id), ["a", "4.0@me", "4.1@me", "b"]);
  assert.deepEqual(applyOp(base, { kind: "insert", field: "text", after: null, values: ["h"] }, { ids }).text.map((i) => i.id), ["4.0@me", "a", "b"]);
  assert.deepEqual(applyOp(undefined, { kind: "insert", field: "text", values: ["h"] }, { ids }), { text: items(["4.0@me", "h"]) });
  assert.deepEqual(applyOp(base, { kind: "remove_items", field: "text", ids: ["a", "nope"] }), { text: items(["b", "y"]) });
  assert.equal(applyOp(undefined, { kind: "remove_items", field: "text", ids: ["a"] }), undefined);
});

// -- rebase with pending list ops -------------------------------------------------

test("pending inserts show at once, chain on their own ids and confirm without a flicker", () => {
  const events = [];
  const replica = new Replica({ clientId: "me", onChange: (c, k, v) => events.push(v) });
  replica.addLocal(local(1, { kind: "insert", field: "text", after: null, values: ["h", "i"] }));
  replica.addLocal(local(2, { kind: "insert", field: "text", after: "1.1@me", values: ["!"] }));
  assert.equal(text(replica), "hi!");
  assert.deepEqual(replica.get("docs", "main").text.map((i) => i.id), ["1.0@me", "1.1@me", "2.0@me"]);
  replica.applyChanges([change(1, { set: { text: items(["1.0@me", "h"], ["1.1@me", "i"]) } }, { client_id: "me", client_seq: 1 })], "me");
  replica.applyChanges([change(2, { list: { text: [{ insert: items(["2.0@me", "!"]), after: "1.1@me" }] } }, { client_id: "me", client_seq: 2 })], "me");
  assert.equal(replica.pending.length, 0);
  assert.equal(text(replica), "hi!");
  assert.equal(events.length, 2, "one event per local edit; confirmations change nothing visible");
});

test("pending inserts are rebased over remote inserts and removes", () => {
  const replica = new Replica({ clientId: "me" });
  replica.applyChanges([change(1, { set: { text: items(["1.0@bob", "a"], ["1.1@bob", "b"], ["1.2@bob", "c"]) } })]);
  // We type "X" after "a" and "Y" after "c"; meanwhile bob types "Z" after "a" and removes "c".
  replica.addLocal(local(1, { kind: "insert", field: "text", after: "1.0@bob", values: ["X"] }));
  replica.addLocal(local(2, { kind: "insert", field: "text", after: "1.2@bob", values: ["Y"] }));
  assert.equal(text(replica), "aXbcY");
  replica.applyChanges([change(2, { list: { text: [{ insert: items(["2.0@bob", "Z"]), after: "1.0@bob" }] } })]);
  assert.equal(text(replica), "aXZbcY", "our pending insert (the newest) stays right after its anchor");
  replica.applyChanges([change(3, { list: { text: [{ delete: "1.2@bob" }] } })]);
  assert.equal(text(replica), "aXZbY", "inserting after a removed element lands where it was");
  // The server's verdicts arrive: they decide the order.
  replica.applyChanges([change(4, { list: { text: [{ insert: items(["1.0@me", "X"]), after: "1.0@bob" }] } }, { client_id: "me", client_seq: 1 })]);
  replica.applyChanges([change(5, { list: { text: [{ insert: items(["2.0@me", "Y"]), after: "1.1@bob" }] } }, { client_id: "me", client_seq: 2 })]);
  assert.equal(text(replica), "aXZbY");
  assert.equal(replica.pending.length, 0);
});

test("a pending insert after an element removed in a chain of removes finds the nearest survivor", () => {
  const replica = new Replica({ clientId: "me" });
  replica.applyChanges([change(1, { set: { text: items(["p", "1"], ["q", "2"], ["r", "3"], ["s", "4"]) } })]);
  replica.addLocal(local(1, { kind: "insert", field: "text", after: "r", values: ["!"] }));
  replica.applyChanges([change(2, { list: { text: [{ delete: "r" }] } }), change(3, { list: { text: [{ delete: "q" }] } })]);
  assert.equal(text(replica), "1!4");
  // Our own pending remove, then a pending insert after what it removed.
  replica.addLocal(local(2, { kind: "remove_items", field: "text", ids: ["s"] }));
  replica.addLocal(local(3, { kind: "insert", field: "text", after: "s", values: ["?"] }));
  assert.equal(text(replica), "1!?");
});

test("a remote delete of the record wins over pending removes but a pending insert revives it", () => {
  const replica = new Replica({ clientId: "me" });
  replica.applyChanges([change(1, { set: { text: items(["a", "x"]), tags: ["t"] } })]);
  replica.addLocal(local(1, { kind: "remove_items", field: "text", ids: ["a"] }));
  replica.addLocal(local(2, { kind: "remove", field: "tags", values: ["t"], seen: 1 }));
  assert.deepEqual(replica.get("docs", "main"), { text: [], tags: [] });
  replica.applyChanges([change(2, { deleted: true })]);
  assert.equal(replica.get("docs", "main"), undefined, "removes never revive a record");
  replica.addLocal(local(3, { kind: "insert", field: "text", after: "a", values: ["y"] }));
  assert.deepEqual(replica.get("docs", "main"), { text: items(["3.0@me", "y"]) });
});

test("a snapshot replaces the list and pending inserts stay on top", () => {
  const replica = new Replica({ clientId: "me" });
  replica.addLocal(local(1, { kind: "insert", field: "text", after: null, values: ["m"] }));
  replica.applySnapshotChunk({ seq: 9, records: [{ collection: "docs", key: "main", value: { text: items(["1.0@bob", "b"]) } }], last: true });
  assert.equal(text(replica), "mb");
  replica.acknowledge({ client_seq: 1, seq: 10, status: "applied" });
  replica.applyChanges([change(10, { list: { text: [{ insert: items(["1.0@me", "m"]), after: null }] } }, { client_id: "me", client_seq: 1 })]);
  assert.equal(text(replica), "mb");
  assert.equal(replica.pending.length, 0);
});

test("pending set ops are rebased: a concurrent add survives our remove only once the server says so", () => {
  const replica = new Replica({ clientId: "me" });
  replica.applyChanges([change(1, { set: { tags: ["red"] } })]);
  replica.addLocal(local(1, { kind: "remove", field: "tags", values: ["red"], seen: 1 }));
  replica.addLocal(local(2, { kind: "add", field: "tags", values: ["blue"] }));
  assert.deepEqual(replica.get("docs", "main").tags, ["blue"]);
  // Someone re-adds red concurrently (after our seen): the server keeps it.
  replica.applyChanges([change(2, {})]);
  replica.applyChanges([change(3, {}, { client_id: "me", client_seq: 1 })]); // red had a newer add: stays
  assert.deepEqual(replica.get("docs", "main").tags, ["blue", "red"]);
  replica.applyChanges([change(4, { add: { tags: ["blue"] } }, { client_id: "me", client_seq: 2 })]);
  assert.deepEqual(replica.get("docs", "main").tags, ["blue", "red"]);
});

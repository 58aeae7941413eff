// The names aligned with the Python SDK (records, insert(values, {after}), listPresence)
// and the old JS names kept as deprecated aliases (list, insert(after, values),
// presencePage): both give the same results. Run: node --test clients/js/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { connect } from "../src/accord.js";
import { FakeEdge, options, until } from "./fake-edge.mjs";

/** The fake edge, answering presence_list with a page and remembering what it was asked. */
class PresenceEdge extends FakeEdge {
  constructor() {
    super();
    this.presenceRequests = [];
  }

  receive(ws, m) {
    if (m.type !== "presence_list") return super.receive(ws, m);
    this.presenceRequests.push(m);
    const peer = { session_id: "s-x", user_id: "u-x", state: { n: 1 } };
    ws.deliver({ type: "presence_list", id: m.id, room: m.room, peers: [peer], count: 3, users: 2, next_cursor: "c-2" });
    return undefined;
  }
}

async function joined(edge, clientId) {
  const client = await connect(options(edge, clientId));
  const room = await client.join("r");
  await room.synced();
  return { client, room };
}

test("records() is list() by key, and both show local writes at once", async () => {
  const { client, room } = await joined(new FakeEdge(), "a");
  room.set("todos", "b", { title: "bread" });
  room.set("todos", "a", { title: "apples" });
  assert.deepEqual(room.records("todos"), { a: { title: "apples" }, b: { title: "bread" } });
  assert.deepEqual(Object.keys(room.records("todos")), ["a", "b"]);
  assert.deepEqual(room.list("todos"), [
    { key: "a", value: { title: "apples" } },
    { key: "b", value: { title: "bread" } },
  ]);
  assert.deepEqual(room.records("none"), {});
  client.close();
});

test("insert(values, {after}) and the deprecated insert(after, values) make the same list", async () => {
  const edge = new FakeEdge();
  const { client: a, room: ra } = await joined(edge, "a");
  const { client: b, room: rb } = await joined(edge, "b");
  const [h, i] = ra.insert("docs", "new", "text", ["h", "i"]);
  ra.insert("docs", "new", "text", ["!"], { after: i });
  ra.insert("docs", "new", "text", ["<"], { after: null });
  const [oh, oi] = rb.insert("docs", "old", "text", null, ["h", "i"]);
  rb.insert("docs", "old", "text", oi, ["!"]);
  rb.insert("docs", "old", "text", undefined, ["<"]);
  assert.deepEqual([h, i], ["1.0@a", "1.1@a"]);
  assert.deepEqual([oh, oi], ["1.0@b", "1.1@b"]);
  await until(() => ra.seq === 6 && rb.seq === 6 && a.status.state === "synced" && b.status.state === "synced", "sync");
  const values = (record) => record.text.map((item) => item.value).join("");
  assert.equal(values(ra.get("docs", "new")), "<hi!");
  assert.equal(values(ra.get("docs", "old")), "<hi!");
  assert.deepEqual(rb.get("docs", "new"), ra.get("docs", "new"));
  const anchors = (key) => edge.received.filter((c) => c.key === key).map((c) => c.op.after);
  assert.deepEqual(anchors("new"), [null, "1.1@a", null]);
  assert.deepEqual(anchors("old"), [null, "1.1@b", null]);
  assert.throws(() => ra.insert("docs", "new", "text", []), TypeError);
  assert.throws(() => ra.insert("docs", "new", "text", null, []), TypeError);
  assert.throws(() => ra.insert("docs", "new", "text", ["x"], { after: 5 }), TypeError);
  a.close();
  b.close();
});

test("listPresence and the deprecated presencePage ask the same and return the same page", async () => {
  const edge = new PresenceEdge();
  const { client, room } = await joined(edge, "a");
  const page = await room.listPresence({ cursor: "c-1", limit: 10, countsOnly: true });
  const old = await room.presencePage({ cursor: "c-1", limit: 10, countsOnly: true });
  assert.deepEqual(page, {
    peers: [{ session_id: "s-x", user_id: "u-x", state: { n: 1 } }],
    count: 3,
    users: 2,
    nextCursor: "c-2",
  });
  assert.deepEqual(old, page);
  const asked = edge.presenceRequests.map(({ id, ...rest }) => rest);
  assert.deepEqual(asked, [
    { type: "presence_list", room: "r", limit: 10, cursor: "c-1", counts_only: true },
    { type: "presence_list", room: "r", limit: 10, cursor: "c-1", counts_only: true },
  ]);
  assert.deepEqual(await room.listPresence(), page);
  assert.deepEqual(edge.presenceRequests.at(-1), { type: "presence_list", room: "r", limit: 100, id: edge.presenceRequests.at(-1).id });
  client.close();
});

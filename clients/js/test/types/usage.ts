// What a TypeScript app writes against the SDK: checked by `tsc --noEmit -p` this folder
// (tests/sdk/js/test_types.py). It imports the package by name, so the declarations are
// found through package.json's "exports"/"types", as in an app that installed it.
// Each `@ts-expect-error` line must be an error: the declarations are not `any`.

import {
  Client,
  EncryptedFieldError,
  MemoryStore,
  PositionSource,
  Room,
  Undecryptable,
  VERSION,
  applyPatch,
  connect,
  elementId,
  generateKey,
  type Fields,
  type Peer,
  type PresencePage,
  type Status,
} from "accord-sync-client";
import { midpoint } from "accord-sync-client/sequence";

export async function app(): Promise<void> {
  const client: Client = await connect({
    url: "ws://localhost:8080/ws",
    token: async () => "a-token",
    user: { name: "Ada" },
    storage: new MemoryStore(),
  });
  client.on("status", ({ state, pending, text }) => console.log(state, pending, text));
  client.on("error", (error) => console.warn(error.code, error.message));
  // @ts-expect-error: no such event
  client.on("statuz", () => {});

  const room: Room = await client.join("todo-demo", { presence: { name: "Ada" }, users: true });
  room.on("change", ({ collection, key, value }) => console.log(collection, key, value?.title));
  room.on("presence", (peers: Peer[]) => console.log(peers.map((p) => p.user_id)));

  const seq: number = room.set("todos", "t-1", { title: "milk", done: false });
  room.incr("todos", "t-1", "votes", 2);
  room.add("todos", "t-1", "tags", ["red", 1, true, null]);
  // @ts-expect-error: set elements are compared exactly, objects are not allowed
  room.add("todos", "t-1", "tags", [{ no: 1 }]);
  // @ts-expect-error: collections are strings
  room.set(1, "t-1", {});

  // Reads: the Python SDK's names (records), and the old list() still typed.
  const records: { [key: string]: Fields } = room.records("todos");
  const first: Fields | undefined = room.get("todos", "t-1");
  const old: { key: string; value: Fields }[] = room.list("todos");
  console.log(records["t-1"], first, old[0]?.key, seq);

  // insert: (values, {after}) as in Python; the old (after, values) order still compiles.
  const [h, i] = room.insert("docs", "main", "text", ["h", "i"]);
  const more: string[] = room.insert("docs", "main", "text", ["!"], { after: i });
  const legacy: string[] = room.insert("docs", "main", "text", h ?? null, ["x"]);
  room.removeItems("docs", "main", "text", [...more, ...legacy]);
  // @ts-expect-error: the ids come back as strings, not numbers
  const wrong: number[] = room.insert("docs", "main", "text", ["?"]);

  // Presence paging: listPresence (Python: list_presence); presencePage is the old name.
  const page: PresencePage = await room.listPresence({ limit: 10, countsOnly: false });
  const next: string | null = page.nextCursor;
  const again: PresencePage = await room.presencePage({ cursor: next });
  console.log(page.count, page.users, again.peers.length, room.presenceCount, room.peerList);

  const status: Status = room.status;
  await room.synced();
  room.broadcast({ x: 1 }, { channel: "cursor" });
  room.setPresence({ status: "away" });

  const key = generateKey();
  const encrypted = await client.join("diary", {
    encryption: { keys: { k1: key }, current: "k1", fields: { notes: ["body"] } },
  });
  const body = encrypted.get("notes", "n-1")?.body;
  if (body instanceof Undecryptable) console.log(body.reason, body.field);
  try {
    encrypted.incr("notes", "n-1", "body");
  } catch (error) {
    if (error instanceof EncryptedFieldError) console.log("refused");
  }

  const positions = new PositionSource();
  console.log(positions.between(null, midpoint("a", "b")), elementId(7, 0, client.clientId));
  console.log(applyPatch({ n: 1 }, { incr: { n: 1 } }), VERSION, status.text, wrong);
  await room.leave();
  client.close();
}

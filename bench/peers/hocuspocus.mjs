// Hocuspocus 3.x (the newest major that runs on Node 20) for Accord's benchmark.
//   node bench/peers/hocuspocus.mjs PORT [memory|durable] [DATABASE_URL]
// memory: the library's defaults, documents only in memory.
// durable: @hocuspocus/extension-database storing each document's Yjs state in
// PostgreSQL (the same server Accord uses), with Hocuspocus' default store
// debounce (2 s, at most 10 s) — its documented way to persist.
import { Server } from "@hocuspocus/server";
import { Database } from "@hocuspocus/extension-database";
import pg from "pg";

const port = Number(process.argv[2] || 1234);
const profile = process.argv[3] || "memory";
const extensions = [];
if (profile === "durable") {
  const pool = new pg.Pool({ connectionString: process.argv[4] || "postgresql://postgres@127.0.0.1:5432/accord_bench", max: 4 });
  await pool.query("CREATE TABLE IF NOT EXISTS hocuspocus_documents (name text PRIMARY KEY, data bytea NOT NULL)");
  extensions.push(new Database({
    fetch: async ({ documentName }) => {
      const r = await pool.query("SELECT data FROM hocuspocus_documents WHERE name = $1", [documentName]);
      return r.rows.length ? r.rows[0].data : null;
    },
    store: async ({ documentName, state }) => {
      await pool.query(
        "INSERT INTO hocuspocus_documents (name, data) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data",
        [documentName, state]);
    },
  }));
}
const server = new Server({ port, address: "127.0.0.1", quiet: true, extensions });
await server.listen();
console.log(`hocuspocus (${profile}) on 127.0.0.1:${port}`);

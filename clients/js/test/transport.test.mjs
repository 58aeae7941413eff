// The HTTP fallback (docs/transport.md) against the fake edge behind a fake `fetch`: falling
// back when WebSockets are refused, moving back, the session secret, a buffering proxy.
// Run: node --test clients/js/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { SECRET_HEADER } from "../src/transport.js";
import { connect, sseUrl } from "../src/accord.js";
import { FakeEdge, options, until } from "./fake-edge.mjs";

const encoder = new TextEncoder();

/** `fetch` for the fake edge's /sse routes: the stream is a ReadableStream of SSE events. */
function sseFetch(edge, { buffer = false } = {}) {
  const sessions = new Map();
  const seen = { opens: 0, posts: [] };
  const fetchImpl = async (url, init) => {
    const path = new URL(url).pathname;
    const body = JSON.parse(init.body);
    if (path === "/sse") {
      seen.opens += 1;
      if (buffer) return new Promise(() => {}); // a proxy waiting for a response that never ends
      const id = `s-${sessions.size + 1}`;
      let controller;
      const stream = new ReadableStream({ start: (c) => (controller = c) });
      let event = 0;
      const socket = {
        readyState: 1,
        rooms: new Set(),
        deliver(message) {
          if (message.type === "welcome") Object.assign(message, { session_id: id, transport: { name: "sse", secret: `secret-${id}` } });
          controller.enqueue(encoder.encode(`id: ${++event}\nevent: message\ndata: ${JSON.stringify(message)}\n\n`));
        },
        close() {},
      };
      controller.enqueue(encoder.encode(`:${" ".repeat(2048)}\n\n`));
      sessions.set(id, socket);
      edge.sockets.add(socket);
      setTimeout(() => edge.receive(socket, body.hello), 0);
      return new Response(stream, { status: 200, headers: { "Content-Type": "text/event-stream" } });
    }
    const socket = sessions.get(path.split("/")[2]);
    if (!socket) return Response.json({ code: "NOT_FOUND" }, { status: 404 });
    seen.posts.push({ secret: init.headers[SECRET_HEADER], body });
    if (init.headers[SECRET_HEADER] !== `secret-${path.split("/")[2]}`) return Response.json({ code: "FORBIDDEN" }, { status: 403 });
    for (const message of Array.isArray(body) ? body : [body]) setTimeout(() => edge.receive(socket, message), 0);
    return Response.json({ queued: 1 }, { status: 202 });
  };
  return { fetchImpl, seen };
}

/** A WebSocket class that is refused (closed before opening) until `allow` is set. */
function gate(edge) {
  const state = { allow: false, refused: 0 };
  state.WebSocket = class {
    constructor(url) {
      if (state.allow) return new edge.WebSocket(url);
      state.refused += 1;
      this.readyState = 0;
      setTimeout(() => {
        this.readyState = 3;
        this.onclose?.({ code: 1006, reason: "refused" });
      }, 0);
    }
    send() {}
    close() {}
  };
  return state;
}

test("sseUrl turns the WebSocket address into the fallback's", () => {
  assert.equal(sseUrl("ws://localhost:8080/ws"), "http://localhost:8080/sse");
  assert.equal(sseUrl("wss://sync.example.com/ws"), "https://sync.example.com/sse");
});

test("refused WebSockets fall back to SSE, sync, and move back once allowed", async () => {
  const edge = new FakeEdge();
  const door = gate(edge);
  const { fetchImpl, seen } = sseFetch(edge);
  const a = await connect({ ...options(edge, "a"), WebSocket: door.WebSocket, fetch: fetchImpl, fallbackAfter: 2, websocketRetryMs: 30 });
  const b = await connect(options(edge, "b"));
  const ra = await a.join("r");
  const rb = await b.join("r");
  await until(() => a.status.transport === "sse" && a.status.state === "synced", "a on the fallback");
  assert.ok(door.refused >= 2);
  assert.equal(b.status.transport, "websocket");
  ra.set("todos", "t1", { title: "over sse" });
  await until(() => rb.get("todos", "t1")?.title === "over sse", "b sees a's change");
  rb.set("todos", "t2", { title: "to sse" });
  await until(() => ra.get("todos", "t2")?.title === "to sse", "a sees b's change");
  assert.ok(seen.posts.length > 0 && seen.posts.every((p) => p.secret === "secret-s-1"));

  door.allow = true;
  await until(() => a.status.transport === "websocket" && a.status.state === "synced", "a back on the WebSocket");
  ra.set("todos", "t3", { title: "back" });
  await until(() => rb.get("todos", "t3")?.title === "back", "b sees the change over the WebSocket");
  a.close();
  b.close();
});

test("a stream held back by a buffering proxy is reported, and retried", async () => {
  const edge = new FakeEdge();
  const { fetchImpl, seen } = sseFetch(edge, { buffer: true });
  const errors = [];
  const client = await connect({ ...options(edge, "a"), transports: ["sse"], fetch: fetchImpl, streamTimeoutMs: 40 });
  client.on("error", (error) => errors.push(error));
  await until(() => errors.length > 0 && seen.opens >= 2, "the buffered stream reported and retried");
  assert.equal(errors[0].code, "STREAM_BUFFERED");
  assert.match(errors[0].message, /stream buffered by a proxy/);
  assert.notEqual(client.status.state, "synced");
  assert.equal(client.status.transport, null);
  client.close();
});

// The HTTP fallback (docs/transport.md): the server's messages down an SSE stream read with
// fetch (EventSource cannot POST nor send headers), the client's POSTed up, in order, batched
// while a POST is in flight. `SseSocket` looks like a WebSocket to the client (readyState,
// send, close, onopen/onmessage/onclose), so one client drives either transport.

export const SECRET_HEADER = "Accord-Session-Secret";
const MAX_BATCH = 32; // messages in one POST (the edge's inbox holds 64 by default)

/** The fallback's address for a WebSocket URL: ws://host/ws → http://host/sse. */
export function sseUrl(url) {
  const base = url.replace(/^wss:\/\//, "https://").replace(/^ws:\/\//, "http://");
  return base.endsWith("/ws") ? `${base.slice(0, -3)}/sse` : `${base.replace(/\/$/, "")}/sse`;
}

/** What a refused opening request means, as a WebSocket close code. */
function refusalCode(status) {
  return status === 429 || status === 503 ? 1013 : 1006;
}

export class SseSocket {
  constructor(url, { fetch: fetchImpl, streamTimeoutMs = 10_000 } = {}) {
    this.url = url;
    this.transport = "sse";
    this.fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
    this.streamTimeoutMs = streamTimeoutMs;
    this.readyState = 0;
    this.buffered = false; // the stream sent nothing in time: a proxy holds it back
    this.sessionId = null;
    this.secret = "";
    this.queue = [];
    this.posting = false;
    this.lastPost = Date.now();
    this.abort = new AbortController();
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    setTimeout(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      this.onopen?.();
    }, 0);
  }

  /** The first message (the hello) opens the stream; later ones are POSTed to the session. */
  send(text) {
    if (this.readyState !== 1) throw new Error("the fallback session is not open");
    if (!this.started) {
      this.started = true;
      this.openStream(text);
      return;
    }
    this.queue.push(text);
    this.flush();
  }

  close(code = 1000, reason = "") {
    this.finish(code, reason);
  }

  // -- the stream -------------------------------------------------------

  async openStream(hello) {
    this.firstTimer = setTimeout(() => {
      this.buffered = true;
      this.finish(1006, `stream buffered by a proxy: no event within ${this.streamTimeoutMs} ms (docs/transport.md)`);
    }, this.streamTimeoutMs);
    let response;
    try {
      response = await this.fetch(this.url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: `{"hello":${hello}}`,
        cache: "no-store",
        signal: this.abort.signal,
      });
    } catch (error) {
      this.finish(1006, String(error));
      return;
    }
    if (response.status !== 200) {
      const answer = await response.json().catch(() => ({}));
      this.finish(refusalCode(response.status), answer.message ?? `HTTP ${response.status}`);
      return;
    }
    try {
      await this.readEvents(response.body.getReader());
      this.finish(this.closeCode ?? 1006, this.closeReason ?? "the stream ended");
    } catch (error) {
      this.finish(1006, String(error));
    }
  }

  async readEvents(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    let name = "message";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done || this.readyState === 3) return;
      this.lastHeard = Date.now();
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (line.startsWith(":")) continue;
        if (line) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") name = text;
          else if (field === "data") data.push(text);
          continue;
        }
        if (data.length) this.onEvent(name, data.join("\n"));
        if (this.readyState === 3) return;
        name = "message";
        data = [];
      }
    }
  }

  onEvent(name, data) {
    if (name === "close") {
      const { code, reason } = JSON.parse(data);
      this.closeCode = code;
      this.closeReason = reason;
      return;
    }
    if (name !== "message") return;
    if (this.sessionId === null) this.onWelcome(data);
    this.onmessage?.({ data });
  }

  onWelcome(data) {
    clearTimeout(this.firstTimer);
    try {
      const welcome = JSON.parse(data);
      this.sessionId = welcome.session_id;
      this.secret = welcome.transport?.secret ?? "";
      // POST at least twice per server heartbeat: the edge's liveness check.
      const every = Math.max(50, (welcome.server?.heartbeat_ms ?? 30_000) / 2);
      this.alive = setInterval(() => {
        if (Date.now() - this.lastPost >= every && !this.posting) this.post("[]").catch(() => {});
      }, every / 2);
    } catch {
      // not a welcome: the stream's close follows
    }
    this.flush();
  }

  // -- sending ------------------------------------------------------------

  async flush() {
    if (this.posting || !this.sessionId || this.queue.length === 0 || this.readyState !== 1) return;
    this.posting = true;
    const batch = this.queue.splice(0, MAX_BATCH);
    try {
      await this.post(batch.length === 1 ? batch[0] : `[${batch.join(",")}]`);
    } catch {
      return; // finish() has run
    } finally {
      this.posting = false;
    }
    this.flush();
  }

  async post(body) {
    for (;;) {
      this.lastPost = Date.now();
      let response;
      try {
        response = await this.fetch(`${this.url}/${this.sessionId}`, {
          method: "POST",
          headers: { "Content-Type": "application/json", [SECRET_HEADER]: this.secret },
          body,
          cache: "no-store",
        });
      } catch (error) {
        this.finish(1006, String(error));
        throw error;
      }
      if (response.status === 202) return;
      const answer = await response.json().catch(() => ({}));
      if (response.status === 429) {
        await new Promise((resolve) => setTimeout(resolve, answer.retry_after_ms ?? 100));
        continue;
      }
      // 404: the session is gone (ended, or another edge holds its stream): reconnect and
      // resume. 413 ends the session (the stream says 1009). Anything else: reconnect too.
      this.finish(this.closeCode ?? 1006, answer.message ?? `HTTP ${response.status}`);
      throw new Error(answer.code ?? `HTTP ${response.status}`);
    }
  }

  finish(code, reason) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    clearTimeout(this.firstTimer);
    clearInterval(this.alive);
    this.abort.abort();
    this.queue = [];
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }
}

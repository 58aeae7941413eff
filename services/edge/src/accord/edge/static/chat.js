// Multi-user chat. Each chat room is an Accord room "chat.<name>": messages are
// records {text, name, color, at} (history arrives with the room's snapshot),
// "who is online" is presence, "who is typing" is broadcast (never stored).
import { coalesced, newId, param, peerColor, peerName, queuedLabel, showPeers, showStatus, start } from "/static/common.js";

const { client, me } = await start();
showStatus(document.getElementById("status"), client);

const knownRooms = JSON.parse(localStorage.getItem("accord-chat-rooms") ?? "null") ?? ["general", "random", "help"];
const messages = document.getElementById("messages");
const typingLine = document.getElementById("typing");
const input = document.getElementById("message");
const TYPING_MS = 3000;

let room = null;
let current = null;
let offs = [];
const typing = new Map(); // session_id -> {name, until}

function cleanName(text) {
  return text.trim().toLowerCase().replace(/[^a-z0-9_.-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40);
}

function renderRooms() {
  const list = document.getElementById("rooms");
  list.replaceChildren(
    ...knownRooms.map((name) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = `# ${name}`;
      button.dataset.room = name;
      button.setAttribute("aria-current", String(name === current));
      button.addEventListener("click", () => openRoom(name));
      li.append(button);
      return li;
    }),
  );
}

async function openRoom(name) {
  if (name === current) return;
  if (!knownRooms.includes(name)) {
    knownRooms.push(name);
    localStorage.setItem("accord-chat-rooms", JSON.stringify(knownRooms));
  }
  for (const off of offs) off();
  offs = [];
  typing.clear();
  if (room) await room.leave();
  current = name;
  history.replaceState(null, "", `?${new URLSearchParams({ ...Object.fromEntries(new URLSearchParams(location.search)), room: name })}`);
  renderRooms();
  document.getElementById("room-title").textContent = `# ${name}`;
  room = await client.join(`chat.${name}`, { presence: me });
  showPeers(document.getElementById("online"), room, document.getElementById("online-count"));
  const short = document.getElementById("online-short");
  const renderShort = (peers) => (short.textContent = `${Math.max(room.presenceCount, peers.length)} online`);
  renderShort(room.peerList);
  offs.push(room.on("presence", renderShort));
  offs.push(room.on("change", scheduleRender));
  offs.push(room.on("status", scheduleRender)); // a confirmed message loses its "pending" look
  offs.push(room.on("broadcast", onBroadcast));
  offs.push(room.on("presence", (peers) => {
    const here = new Set(peers.map((p) => p.session_id));
    for (const id of typing.keys()) if (!here.has(id)) typing.delete(id);
    renderTyping();
  }));
  renderMessages();
  renderTyping();
  input.focus();
}

const scheduleRender = coalesced(renderMessages);

function renderMessages() {
  const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
  const list = room.list("messages").sort((a, b) => a.value.at - b.value.at || (a.key < b.key ? -1 : 1));
  const pending = new Set(room.replica.pending.map((p) => p.key));
  if (list.length === 0) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No messages yet. Say hello!";
    messages.replaceChildren(empty);
    return;
  }
  messages.replaceChildren(
    ...list.map(({ key, value }) => {
      const div = document.createElement("div");
      div.className = "msg";
      div.dataset.key = key;
      div.classList.toggle("mine", value.client === client.clientId);
      div.classList.toggle("pending", pending.has(key));
      const meta = document.createElement("div");
      meta.className = "meta";
      const who = document.createElement("b");
      who.textContent = value.name;
      meta.style.setProperty("--c", value.color);
      const when = new Date(value.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      meta.append(who, ` · ${when}`);
      if (pending.has(key)) meta.append(" ", queuedLabel());
      const bubble = document.createElement("div");
      bubble.className = "bubble";
      bubble.textContent = value.text;
      div.append(meta, bubble);
      return div;
    }),
  );
  if (atBottom || list.at(-1)?.value.client === client.clientId) messages.scrollTop = messages.scrollHeight;
}

function onBroadcast({ from, data, peer }) {
  if (data?.kind !== "typing") return;
  if (data.typing) typing.set(from, { name: data.name ?? peerName(peer), color: peerColor(peer), until: Date.now() + TYPING_MS });
  else typing.delete(from);
  renderTyping();
}

function renderTyping() {
  const now = Date.now();
  for (const [id, entry] of typing) if (entry.until < now) typing.delete(id);
  const names = [...typing.values()].map((t) => t.name);
  typingLine.textContent =
    names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : names.length === 2 ? `${names[0]} and ${names[1]} are typing…` : "Several people are typing…";
}
setInterval(renderTyping, 1000);

let lastTypingSent = 0;
input.addEventListener("input", () => {
  if (!room || !input.value) return;
  if (Date.now() - lastTypingSent > 1500) {
    lastTypingSent = Date.now();
    room.broadcast({ kind: "typing", typing: true, name: me.name });
  }
});

document.getElementById("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || !room) return;
  room.set("messages", newId("m"), { text, name: me.name, color: me.color, client: client.clientId, at: Date.now() });
  room.broadcast({ kind: "typing", typing: false });
  lastTypingSent = 0;
  input.value = "";
});

document.getElementById("new-room").addEventListener("submit", (event) => {
  event.preventDefault();
  const field = document.getElementById("new-room-name");
  const name = cleanName(field.value);
  field.value = "";
  if (name) openRoom(name);
});

renderRooms();
await openRoom(cleanName(param("room", "general")) || "general");

// Collaborative text on set/delete records: one record per character in
// collection "chars", keyed by a dense position key (PositionSource), value
// {ch}. The text is the characters in key order, so every replica holding the
// same records shows the same text, whatever order edits arrived in.
// Cursors travel in presence as the key of the character before the caret.
// (When the server gets its list op, this page should move to it.)
import { PositionSource } from "/sdk/accord.js";
import { param, peerColor, peerName, showPeers, showStatus, start } from "/static/common.js";

const { client, me } = await start();
const room = await client.join(param("room", "editor-demo"), { presence: { ...me, cursor: null } });
showStatus(document.getElementById("status"), client);
showPeers(document.getElementById("peers"), room);

const editor = document.getElementById("editor");
const mirror = document.getElementById("mirror");
const positions = new PositionSource();
const chars = new Map(room.list("chars").map(({ key, value }) => [key, value.ch]));
let units = []; // the key of every UTF-16 code unit shown in the textarea
let composing = false;

/** The model: keys in order, and per code unit the key it belongs to. */
function model() {
  const keys = [...chars.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out = [];
  let text = "";
  for (const key of keys) {
    const ch = chars.get(key);
    text += ch;
    for (let i = 0; i < ch.length; i++) out.push(key);
  }
  return { text, units: out };
}

/** Where the caret goes for an anchor key (the character before it): after every unit at or before it. */
function indexAfter(keysOfUnits, anchor) {
  if (anchor === null || anchor === undefined) return 0;
  let lo = 0;
  let hi = keysOfUnits.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (keysOfUnits[mid] <= anchor) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function render() {
  if (composing) return;
  const next = model();
  if (next.text !== editor.value) {
    const focused = document.activeElement === editor;
    const anchorStart = units[editor.selectionStart - 1] ?? null;
    const anchorEnd = units[editor.selectionEnd - 1] ?? null;
    const scroll = editor.scrollTop;
    editor.value = next.text;
    if (focused) editor.setSelectionRange(indexAfter(next.units, anchorStart), indexAfter(next.units, anchorEnd));
    editor.scrollTop = scroll;
  }
  units = next.units;
  renderCursors();
}

function onLocalInput() {
  const before = model();
  const old = before.text;
  const now = editor.value;
  let prefix = 0;
  while (prefix < old.length && prefix < now.length && old[prefix] === now[prefix]) prefix++;
  let suffix = 0;
  while (suffix < old.length - prefix && suffix < now.length - prefix && old[old.length - 1 - suffix] === now[now.length - 1 - suffix]) suffix++;
  const removed = new Set(before.units.slice(prefix, old.length - suffix));
  let left = before.units[prefix - 1] ?? null;
  const right = before.units[old.length - suffix] ?? null;
  for (const key of removed) room.delete("chars", key);
  for (const ch of now.slice(prefix, now.length - suffix)) {
    left = positions.between(left, right);
    room.set("chars", left, { ch });
  }
  units = model().units;
  sendCursor();
}

room.on("change", ({ collection, key, value }) => {
  if (collection !== "chars") return;
  if (value === undefined || typeof value.ch !== "string") chars.delete(key);
  else chars.set(key, value.ch);
  scheduleRender();
});

let queued = false;
function scheduleRender() {
  if (queued) return;
  queued = true;
  queueMicrotask(() => {
    queued = false;
    render();
  });
}

editor.addEventListener("compositionstart", () => (composing = true));
editor.addEventListener("compositionend", () => {
  composing = false;
  onLocalInput();
  render();
});
editor.addEventListener("input", (event) => {
  if (!composing && !event.isComposing) onLocalInput();
});

// -- cursors ------------------------------------------------------------------

let cursorTimer = null;
let lastSent = "";
function sendCursor() {
  if (cursorTimer) return;
  cursorTimer = setTimeout(() => {
    cursorTimer = null;
    const cursor = document.activeElement === editor ? (units[editor.selectionStart - 1] ?? "") : null;
    const state = { ...me, cursor };
    const signature = JSON.stringify(state);
    if (signature !== lastSent) {
      lastSent = signature;
      room.setPresence(state);
    }
  }, 50);
}
document.addEventListener("selectionchange", () => document.activeElement === editor && sendCursor());
editor.addEventListener("focus", sendCursor);
editor.addEventListener("blur", sendCursor);
editor.addEventListener("keyup", sendCursor);
editor.addEventListener("click", sendCursor);
editor.addEventListener("scroll", () => (mirror.scrollTop = editor.scrollTop));
room.on("presence", () => renderCursors());

function renderCursors() {
  const text = editor.value;
  const own = client.sessionId;
  const marks = room.peerList
    .filter((peer) => peer.session_id !== own && typeof peer.state?.cursor === "string")
    .map((peer) => ({ peer, at: indexAfter(units, peer.state.cursor || null) }))
    .sort((a, b) => a.at - b.at);
  const parts = [];
  let at = 0;
  for (const { peer, at: index } of marks) {
    parts.push(text.slice(at, index));
    const span = document.createElement("span");
    span.className = "cursor";
    span.dataset.name = peerName(peer);
    span.style.setProperty("--c", peerColor(peer));
    parts.push(span);
    at = index;
  }
  parts.push(text.slice(at), "\u200b"); // keeps a trailing newline's empty line
  mirror.replaceChildren(...parts);
  mirror.scrollTop = editor.scrollTop;
}

render();

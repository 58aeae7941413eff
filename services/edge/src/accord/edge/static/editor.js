// Collaborative text on the list op: the document is ONE record (collection
// "docs", key ?doc= or "main") whose field "text" is an ordered list (RGA, see
// docs/merge.md) with one element per character. Typing inserts after the
// element left of the caret, deleting removes elements by id; the textarea
// shows the list's values joined. Every replica applies the server's patches,
// so all show the same text, and concurrent runs typed at one spot never
// interleave. Cursors travel by broadcast (channel "cursor") as the id of the
// element left of the caret, so they stay put while others edit around them.
import { coalesced, param, peerColor, peerName, showPeers, showStatus, start } from "/static/common.js";

const COLLECTION = "docs";
const KEY = param("doc", "main");
const FIELD = "text";

const { client, me } = await start();
const room = await client.join(param("room", "editor-demo"), { presence: me });
showStatus(document.getElementById("status"), client);
showPeers(document.getElementById("peers"), room);

const editor = document.getElementById("editor");
const mirror = document.getElementById("mirror");
const banner = document.getElementById("banner");

/**
 * What the textarea shows: the list's items, the text, the element id of every
 * UTF-16 code unit, and per element id the offset right after it.
 */
function readModel() {
  const list = room.get(COLLECTION, KEY)?.[FIELD];
  const items = Array.isArray(list) ? list.filter((item) => typeof item?.id === "string") : [];
  let text = "";
  const units = [];
  const ends = new Map();
  for (const item of items) {
    const value = typeof item.value === "string" ? item.value : "";
    text += value;
    for (let i = 0; i < value.length; i++) units.push(item.id);
    ends.set(item.id, text.length);
  }
  return { items, text, units, ends };
}

let shown = readModel(); // the model the textarea reflects
// Elements that left the list: id -> the id left of it when it went (null: the start).
// A caret anchored on a removed character falls back to its nearest surviving left neighbour.
const gone = new Map();
let composing = false;

/** The offset right after element `id` (null: 0); undefined when the id is unknown. */
function offsetAfter(model, id) {
  for (let guard = 0; guard <= gone.size; guard++) {
    if (id === null) return 0;
    if (model.ends.has(id)) return model.ends.get(id);
    if (!gone.has(id)) return undefined;
    id = gone.get(id);
  }
  return undefined;
}

/** The element left of an offset (null: the start). */
const anchorAt = (model, offset) => model.units[offset - 1] ?? null;

/** Show the list. `local`: the textarea already shows it (our own edit): just take the new ids. */
function render({ local = false, caret } = {}) {
  if (composing) return;
  const next = readModel();
  shown.items.forEach((item, i) => {
    if (!next.ends.has(item.id)) gone.set(item.id, i === 0 ? null : shown.items[i - 1].id);
  });
  // The same text can hold other elements ("a|b" where a concurrent run put an equal character
  // before ours): the caret follows its element, not its offset.
  const moved = next.text !== editor.value || next.units.some((id, i) => id !== shown.units[i]);
  if (moved && local) {
    // Remote edits that arrived during an IME composition show only now: keep the caret by its element.
    if (next.text !== editor.value) {
      editor.value = next.text;
      const at = caret === undefined ? undefined : offsetAfter(next, caret);
      if (at !== undefined) editor.setSelectionRange(at, at);
    }
  } else if (moved) {
    const focused = document.activeElement === editor;
    const anchorStart = anchorAt(shown, editor.selectionStart);
    const anchorEnd = anchorAt(shown, editor.selectionEnd);
    const scroll = editor.scrollTop;
    if (next.text !== editor.value) editor.value = next.text;
    if (focused) {
      const startAt = offsetAfter(next, anchorStart) ?? 0;
      const endAt = Math.max(startAt, offsetAfter(next, anchorEnd) ?? startAt);
      if (startAt !== editor.selectionStart || endAt !== editor.selectionEnd) editor.setSelectionRange(startAt, endAt);
    }
    editor.scrollTop = scroll;
  }
  shown = next;
  renderCursors();
}

/** Turn what changed in the textarea into list ops: remove the elements gone, insert the new characters. */
function onLocalInput() {
  const old = shown;
  const now = editor.value;
  // The edit ends at the caret: typing "e" into "e|e" inserts after the first "e", not the
  // second. Both give the same text here, but not once a concurrent edit anchors on either.
  const edited = editor.selectionEnd; // where the edit ends
  let suffix = 0;
  const maxSuffix = Math.min(old.text.length, now.length - edited);
  while (suffix < maxSuffix && old.text[old.text.length - 1 - suffix] === now[now.length - 1 - suffix]) suffix++;
  let prefix = 0;
  const maxPrefix = Math.min(old.text.length, now.length) - suffix;
  while (prefix < maxPrefix && old.text[prefix] === now[prefix]) prefix++;
  // Widen to whole elements (a character may be two code units), so nothing is split.
  while (prefix > 0 && old.units[prefix - 1] === old.units[prefix]) prefix--;
  let end = old.text.length - suffix;
  while (end > 0 && end < old.text.length && old.units[end - 1] === old.units[end]) end++;
  suffix = old.text.length - end;
  const removed = [...new Set(old.units.slice(prefix, end))];
  const inserted = Array.from(now.slice(prefix, now.length - suffix)); // one element per code point
  const left = anchorAt(old, prefix);
  let caret = editor.selectionStart === prefix ? left : undefined;
  if (removed.length > 0) room.removeItems(COLLECTION, KEY, FIELD, removed);
  if (inserted.length > 0) {
    const ids = room.insert(COLLECTION, KEY, FIELD, left, inserted);
    if (editor.selectionStart === now.length - suffix) caret = ids.at(-1);
  }
  render({ local: true, caret }); // the local guess: the list now reads like the textarea
  sendCursor();
}

room.on("change", ({ collection, key }) => {
  if (collection === COLLECTION && key === KEY) scheduleRender();
});
room.on("error", (error) => {
  if (!error.change) return;
  banner.textContent = `An edit was refused (${error.code}): ${error.message ?? ""}`;
  banner.hidden = false;
});

const scheduleRender = coalesced(render);

editor.addEventListener("compositionstart", () => (composing = true));
editor.addEventListener("compositionend", () => {
  composing = false;
  onLocalInput();
});
editor.addEventListener("input", (event) => {
  if (!composing && !event.isComposing) onLocalInput();
});

// -- cursors ------------------------------------------------------------------

const cursors = new Map(); // session id -> {at, fallback}: element ids (null: the start)
let cursorTimer = null;
let lastSent = "";

/** Broadcast where our caret is (throttled; `force` re-sends it, e.g. to a newcomer). */
function sendCursor(force = false) {
  if (force) lastSent = "";
  if (cursorTimer) return;
  cursorTimer = setTimeout(() => {
    cursorTimer = null;
    const data = document.activeElement === editor ? { at: anchorAt(shown, editor.selectionStart) } : { hidden: true };
    const signature = JSON.stringify(data);
    if (signature !== lastSent && room.broadcast(data, { channel: "cursor" })) lastSent = signature;
  }, 50);
}

room.on("broadcast", ({ from, data, channel }) => {
  if (channel !== "cursor") return;
  if (data?.hidden || !("at" in (data ?? {}))) cursors.delete(from);
  else cursors.set(from, { at: typeof data.at === "string" ? data.at : null, fallback: cursors.get(from)?.at });
  renderCursors();
});

let present = new Set();
room.on("presence", (peers) => {
  const now = new Set(peers.map((peer) => peer.session_id));
  for (const session of cursors.keys()) if (!now.has(session)) cursors.delete(session);
  if ([...now].some((session) => !present.has(session))) sendCursor(true); // newcomers learn where we are
  present = now;
  renderCursors();
});

document.addEventListener("selectionchange", () => document.activeElement === editor && sendCursor());
editor.addEventListener("focus", () => sendCursor());
editor.addEventListener("blur", () => sendCursor());
editor.addEventListener("keyup", () => sendCursor());
editor.addEventListener("click", () => sendCursor());
editor.addEventListener("scroll", () => (mirror.scrollTop = editor.scrollTop));

/** The mirror behind the textarea: the same text with a coloured caret per peer. */
function renderCursors() {
  const text = editor.value;
  const marks = [];
  for (const [session, cursor] of cursors) {
    const peer = room.peers.get(session);
    if (!peer || session === client.sessionId) continue;
    // An id we have not received yet (the broadcast overtook the change): the previous position.
    const at = offsetAfter(shown, cursor.at) ?? (cursor.fallback === undefined ? undefined : offsetAfter(shown, cursor.fallback));
    if (at !== undefined) marks.push({ peer, at: Math.min(at, text.length) });
  }
  marks.sort((a, b) => a.at - b.at);
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

// What every demo page shares: who am I, connecting, the status pill, the peers list.
import { connect } from "/sdk/accord.js";

const params = new URLSearchParams(location.search);
const COLORS = ["#e03131", "#2f9e44", "#1971c2", "#f08c00", "#9c36b5", "#0c8599", "#d6336c", "#5c940d"];

/** A colour per name, the same on every screen. */
export function colorFor(text) {
  let hash = 0;
  for (const ch of text) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return COLORS[hash % COLORS.length];
}

/** The user's display name: ?name=, else the one remembered in this browser, else a new guest name. */
export function displayName() {
  const given = params.get("name");
  if (given) return given.slice(0, 40);
  let name = localStorage.getItem("accord-demo-name");
  if (!name) {
    name = `Guest ${Math.floor(100 + Math.random() * 900)}`;
    localStorage.setItem("accord-demo-name", name);
  }
  return name;
}

export function param(name, fallback) {
  return params.get(name) || fallback;
}

/** Connect with ?token= when given, anonymously otherwise; show auth problems in #banner. */
export async function start() {
  const name = displayName();
  const me = { name, color: colorFor(name) };
  const token = params.get("token") || undefined;
  const client = await connect({ token, user: me });
  const banner = document.getElementById("banner");
  client.on("error", (error) => {
    if (!banner) return;
    if (error.code === "UNAUTHENTICATED" || error.code === "TOKEN_EXPIRED") {
      banner.textContent = token
        ? `The token was refused (${error.code}). Open this page with a valid ?token=<JWT>.`
        : "This edge does not allow anonymous users: open this page with ?token=<JWT>.";
      banner.hidden = false;
    } else if (error.code === "FORBIDDEN") {
      banner.textContent = `No access: ${error.message}`;
      banner.hidden = false;
    }
  });
  client.on("connected", () => {
    if (banner) banner.hidden = true;
  });
  window.accord = client; // handy from the console (and for the browser tests)
  return { client, me };
}

/** Keep a status pill (`data-state` and text) and the offline banner in step with the client. */
export function showStatus(element, client) {
  const banner = offlineBanner();
  const render = (status) => {
    element.dataset.state = status.state;
    element.textContent = status.text;
    element.title = status.pending ? `${status.pending} change(s) not yet confirmed by the server` : status.state;
    const offline = status.state === "offline";
    document.body.classList.toggle("is-offline", offline);
    banner.hidden = !offline;
    const waiting = status.pending ? ` ${status.pending} change(s) wait on this device.` : "";
    banner.textContent = `Offline — you can keep working; changes are sent when the connection is back.${waiting}`;
  };
  render(client.status);
  client.on("status", render);
}

/** Render the peers of a room into a <ul>, this session first. */
export function showPeers(list, room, counter) {
  const render = (peers) => {
    const own = room.client.sessionId;
    if (peers.length === 0) {
      // Not (yet) in presence, e.g. offline: show ourselves anyway.
      const li = document.createElement("li");
      li.className = "me";
      li.style.setProperty("--c", room.presenceState?.color ?? "");
      const dot = document.createElement("span");
      dot.className = "dot";
      li.append(dot, `${room.presenceState?.name ?? "you"} (you)`);
      list.replaceChildren(li);
      if (counter) counter.textContent = "1";
      return;
    }
    const sorted = [...peers].sort((a, b) => (a.session_id === own ? -1 : b.session_id === own ? 1 : peerName(a).localeCompare(peerName(b))));
    list.replaceChildren(
      ...sorted.map((peer) => {
        const li = document.createElement("li");
        const dot = document.createElement("span");
        dot.className = "dot";
        li.style.setProperty("--c", peerColor(peer));
        li.append(dot, peerName(peer) + (peer.session_id === own ? " (you)" : ""));
        li.classList.toggle("me", peer.session_id === own);
        li.dataset.session = peer.session_id;
        return li;
      }),
    );
    if (counter) counter.textContent = String(peers.length);
  };
  render(room.peerList);
  room.on("presence", render);
}

export function peerName(peer) {
  return peer?.state?.name ?? peer?.user?.name ?? peer?.user_id ?? "someone";
}

export function peerColor(peer) {
  return peer?.state?.color ?? peer?.user?.color ?? colorFor(peerName(peer));
}

/** A short random id for new records. */
export function newId(prefix) {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return `${prefix}-${Date.now().toString(36)}-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** The page's offline banner (made once, under the top bar). */
function offlineBanner() {
  let banner = document.getElementById("offline");
  if (!banner) {
    banner = document.createElement("div");
    banner.id = "offline";
    banner.className = "offline-banner";
    banner.setAttribute("role", "status");
    banner.hidden = true;
    (document.querySelector(".topbar") ?? document.body.firstElementChild).after(banner);
  }
  return banner;
}

/** ``render`` once, in a microtask, however often the returned function is called before then. */
export function coalesced(render) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      render();
    });
  };
}

/** A "not saved yet" label for a change the server has not confirmed. */
export function queuedLabel() {
  const label = document.createElement("span");
  label.className = "queued";
  label.textContent = "not saved yet";
  label.title = "Queued on this device: not yet confirmed by the server";
  return label;
}

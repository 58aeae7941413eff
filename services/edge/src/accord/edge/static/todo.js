// The real-time todo list: records {title, done, created} in collection "todos".
import { coalesced, newId, param, queuedLabel, showPeers, showStatus, start } from "/static/common.js";

const { client, me } = await start();
const room = await client.join(param("room", "todo-demo"), { presence: me });
showStatus(document.getElementById("status"), client);
showPeers(document.getElementById("peers"), room, document.getElementById("peer-count"));

const list = document.getElementById("todos");
const items = new Map(); // key -> <li>
let editing = null; // key of the todo whose title is being edited

document.getElementById("add").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("new-title");
  const title = input.value.trim();
  if (!title) return;
  room.set("todos", newId("t"), { title, done: false, created: Date.now() });
  input.value = "";
});

function iconButton(kind, title, symbol, onClick) {
  const button = document.createElement("button");
  button.className = `icon ${kind}`;
  button.type = "button";
  button.title = title;
  button.textContent = symbol;
  button.addEventListener("click", onClick);
  return button;
}

function element(key) {
  const li = document.createElement("li");
  li.dataset.key = key;
  const box = document.createElement("input");
  box.type = "checkbox";
  box.setAttribute("aria-label", "Done");
  box.addEventListener("change", () => room.set("todos", key, { done: box.checked }));
  const title = document.createElement("span");
  title.className = "title";
  title.addEventListener("dblclick", () => startEditing(key));
  const edit = iconButton("edit", "Edit", "✎", () => startEditing(key));
  const remove = iconButton("delete", "Delete", "✕", () => room.delete("todos", key));
  const queued = queuedLabel();
  queued.hidden = true;
  li.append(box, title, queued, edit, remove);
  return li;
}

function startEditing(key) {
  const li = items.get(key);
  if (!li || editing === key) return;
  editing = key;
  const title = li.querySelector(".title");
  const input = document.createElement("input");
  input.type = "text";
  input.className = "edit-input";
  input.value = room.get("todos", key)?.title ?? "";
  input.setAttribute("aria-label", "Edit title");
  const finish = (save) => {
    if (editing !== key) return;
    editing = null;
    const text = input.value.trim();
    if (save && text && text !== room.get("todos", key)?.title) room.set("todos", key, { title: text });
    input.remove();
    title.hidden = false;
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") finish(true);
    if (event.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
  title.hidden = true;
  title.after(input);
  input.focus();
  input.select();
}

function render() {
  const todos = room
    .list("todos")
    .filter(({ value }) => typeof value.title === "string")
    .sort((a, b) => (a.value.created ?? 0) - (b.value.created ?? 0) || (a.key < b.key ? -1 : 1));
  const seen = new Set();
  const pending = new Set(room.replica.pending.filter((p) => p.collection === "todos").map((p) => p.key));
  todos.forEach(({ key, value }, index) => {
    seen.add(key);
    let li = items.get(key);
    if (!li) {
      li = element(key);
      items.set(key, li);
    }
    li.classList.toggle("done", Boolean(value.done));
    li.querySelector("input[type=checkbox]").checked = Boolean(value.done);
    li.querySelector(".title").textContent = value.title;
    li.classList.toggle("pending", pending.has(key));
    li.querySelector(".queued").hidden = !pending.has(key);
    if (list.children[index] !== li) list.insertBefore(li, list.children[index] ?? null);
  });
  for (const [key, li] of items) {
    if (!seen.has(key)) {
      li.remove();
      items.delete(key);
      if (editing === key) editing = null;
    }
  }
  const open = todos.filter(({ value }) => !value.done).length;
  document.getElementById("empty").hidden = todos.length > 0;
  document.getElementById("summary").textContent = todos.length ? `${open} open · ${todos.length - open} done` : "";
}

const scheduleRender = coalesced(render);
room.on("change", ({ collection }) => {
  if (collection === "todos") scheduleRender();
});
room.on("status", scheduleRender); // a confirmed change loses its "not saved yet" label
render();

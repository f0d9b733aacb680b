// Live events over server-sent events, and a confirmation before destructive actions.
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});

function showEvent(list, data) {
  const item = document.createElement("li");
  item.className = "fresh";
  const time = document.createElement("time");
  time.textContent = data.created_at.replace("T", " ").slice(0, 19);
  const kind = document.createElement("b");
  kind.textContent = data.kind;
  const task = document.createElement("span");
  task.className = "muted";
  task.textContent = " " + (data.task || "");
  item.append(time, kind, task);
  list.querySelector(".empty")?.remove();
  list.prepend(item);
}

window.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("events");
  if (!list || !window.EventSource) return;
  const source = new EventSource("/app/events/stream?after_id=" + encodeURIComponent(list.dataset.after || "0"));
  source.addEventListener("open", () => { document.getElementById("live").hidden = false; });
  source.addEventListener("error", () => { document.getElementById("live").hidden = true; });
  source.addEventListener("ambient", (message) => showEvent(list, JSON.parse(message.data)));
});

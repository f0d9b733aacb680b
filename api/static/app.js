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
  kind.textContent = data.name || data.kind;
  const task = document.createElement("span");
  task.className = "muted";
  task.textContent = " " + (data.task || "");
  item.append(time, " ", kind, task);  // spaced as the page's own list ("<time> <b>")
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

// The chat box: POST /app/chat streams JSON lines (message, tool_call, tool_result, confirm...).
(() => {
  let conversation = null;
  let confirmId = null;  // the confirm the Approve/Decline buttons answer

  function say(kind, text) {
    const log = document.getElementById("chat-log");
    const item = document.createElement("li");
    item.className = kind;
    item.textContent = text;
    log.append(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  // Signed out (the cookie expired, or the token changed): the page's route answers with the
  // sign-in form, which fetch follows; say so, with the way back, in the page's language.
  function signedOut() {
    const words = document.getElementById("chat").dataset;
    const item = say("error", "");
    const link = document.createElement("a");
    link.href = "/signin";
    link.textContent = words.expired;
    item.append(link);
  }

  function show(event) {
    conversation = event.conversation_id || conversation;
    if (event.type === "message") say("assistant", event.text || "");
    else if (event.type === "tool_call") say("tool", "→ " + event.function + " " + JSON.stringify(event.arguments || {}));
    else if (event.type === "tool_result") {
      const words = document.getElementById("chat").dataset;
      const result = event.ok ? words.toolOk
        : event.declined ? words.toolDeclined
        : words.toolFailed.replace("{error}", () => event.text || "");
      say("tool", "← " + event.function + " " + result);
    }
    else if (event.type === "error") say("error", event.text || "error");
    else if (event.type === "confirm") {
      confirmId = event.confirm_id || null;
      document.getElementById("chat-confirm-text").textContent =
        event.text + " " + event.calls.map((c) => c.function + " " + JSON.stringify(c.arguments)).join("; ");
      document.getElementById("chat-confirm").hidden = false;
    }
  }

  async function send(body) {
    let response;
    try {
      response = await fetch("/app/chat", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(Object.assign({ conversation_id: conversation }, body)),
      });
    } catch {
      // The server or the network is down: nothing was sent.
      say("error", document.getElementById("chat").dataset.unreachable);
      return false;
    }
    if (response.redirected || response.status === 401) { signedOut(); return false; }
    if (!response.ok) {
      say("error", document.getElementById("chat").dataset.failed.replace("{status}", response.status));
      return false;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, cut).trim();
          buffer = buffer.slice(cut + 1);
          if (line) show(JSON.parse(line));
        }
      }
    } catch {
      // The answer stopped halfway (the connection dropped): the message was sent, and what
      // came of it so far is shown; say the rest is missing.
      say("error", document.getElementById("chat").dataset.interrupted);
    }
    return true;
  }

  window.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("chat-form");
    if (!form) return;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.getElementById("chat-input");
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      // A new message declines what the box asks about: its buttons would answer nothing.
      document.getElementById("chat-confirm").hidden = true;
      say("you", text);
      // Not answered (refused, signed out): the text goes back in the box, to send again.
      send({ message: text }).then((answered) => { if (!answered && !input.value) input.value = text; });
    });
    for (const [id, approve] of [["chat-approve", true], ["chat-decline", false]]) {
      document.getElementById(id).addEventListener("click", () => {
        document.getElementById("chat-confirm").hidden = true;
        send({ approve, confirm_id: confirmId });
      });
    }
  });
})();

// A message form sent again from the page Back brought back posts nothing more: the browser
// restores the words typed, but the page, shown anew, carries a new message id (the hidden
// field is not restored). The id those words were sent with is taken again, for a while.
(() => {
  const KEEP_MS = 10 * 60 * 1000;
  const key = (form) => "sent:" + location.pathname + location.search + "#" + form.id;
  const fields = (form) => [form.querySelector("input[name=message_id]"), form.querySelector("[name=content]")];
  const topicOf = (form) => form.querySelector("[name=topic]")?.value || "";
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const [id, content] = fields(form);
    if (!id || !content) return;
    const sent = {id: id.value, content: content.value, topic: topicOf(form), at: Date.now()};
    try { sessionStorage.setItem(key(form), JSON.stringify(sent)); } catch (_) { /* private mode */ }
  });
  window.addEventListener("pageshow", () => {
    for (const form of document.querySelectorAll("form[id]")) {
      const [id, content] = fields(form);
      if (!id || !content || !content.value) continue;
      let sent = null;
      try { sent = JSON.parse(sessionStorage.getItem(key(form)) || "null"); } catch (_) { sent = null; }
      if (sent && sent.content === content.value && sent.topic === topicOf(form) && Date.now() - sent.at < KEEP_MS) {
        id.value = sent.id;
      }
    }
  });
})();

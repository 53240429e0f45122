/*
 * The agent desk's DOM helpers (window.ParleyDesk.render): building nodes (text only, never
 * HTML), formatting waits and times, one transcript entry (message or internal note), the
 * alerts (a WebAudio beep and a browser notification). Agent and AI replies go through the
 * widget's safe Markdown renderer (window.ParleyMarkdown, widget.js in library mode) when it is
 * there, else they are shown as plain text.
 */
(() => {
  "use strict";

  const desk = (window.ParleyDesk = window.ParleyDesk || {});

  /** A node: `attrs.text` is textContent, `className` the class, other keys attributes (false/null skip). */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children || []) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  /** Replace `node`'s content with `text`: Markdown for agent and AI replies, plain text otherwise. */
  function setText(node, text, markdown) {
    const md = window.ParleyMarkdown;
    if (markdown && md && typeof md.render === "function") {
      try {
        md.render(text, node);
        return;
      } catch (error) {
        // fall through: plain text is always safe
      }
    }
    node.textContent = text;
  }

  /** "42 s", "3 min 05 s", "1 h 02 min". */
  function formatWait(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + String(s % 60).padStart(2, "0") + " s";
    return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function clock(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return isNaN(date) ? "" : timeFormat.format(date);
  }

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return isNaN(date) ? "" : dateFormat.format(date);
  }

  const ROLE_LABEL = { user: "Visitor", assistant: "AI assistant", agent: "Agent", system: "System" };
  const STATUS_LABEL = {
    streaming: "writing…",
    stopped: "stopped",
    interrupted: "interrupted",
    failed: "failed",
    pending: "sending…",
    error: "not sent",
  };

  /** Who wrote a message, as the desk shows it. */
  function author(message, visitorName) {
    if (message.role === "agent") return (message.author && message.author.name) || "Agent";
    if (message.role === "user") return visitorName || "Visitor";
    return ROLE_LABEL[message.role] || message.role;
  }

  /**
   * A transcript entry for a message {seq?, client_id?, role, text, status, created_at, author?}.
   * `update(entry, message)` refreshes it in place (streaming, acks) without a new node.
   */
  function messageEntry(message, visitorName) {
    const body = el("div", { className: "dk-body" });
    const status = el("span", { className: "dk-status" });
    const entry = el("li", { className: "dk-msg dk-" + message.role, "data-role": message.role }, [
      el("p", { className: "dk-meta" }, [
        el("span", { className: "dk-who", text: author(message, visitorName) }),
        message.role === "assistant" ? el("span", { className: "dk-badge", text: "AI" }) : null,
        el("time", { className: "dk-time", datetime: message.created_at || null, text: clock(message.created_at) }),
        status,
      ]),
      body,
    ]);
    updateEntry(entry, message);
    return entry;
  }

  function updateEntry(entry, message) {
    const status = message.status || "complete";
    entry.dataset.status = status;
    if (message.seq !== undefined && message.seq !== null) entry.dataset.seq = String(message.seq);
    if (message.client_id) entry.dataset.clientId = message.client_id;
    const label = STATUS_LABEL[status] || "";
    const statusNode = entry.querySelector(".dk-status");
    statusNode.textContent = label ? " · " + label : "";
    if (message.error) statusNode.textContent += " (" + message.error + ")";
    const markdown = message.role === "assistant" || message.role === "agent";
    const body = entry.querySelector(".dk-body");
    if (body.dataset.text !== message.text) {
      body.dataset.text = message.text || "";
      setText(body, message.text || "", markdown);
    }
    if (message.created_at) {
      const time = entry.querySelector(".dk-time");
      time.setAttribute("datetime", message.created_at);
      time.textContent = clock(message.created_at);
    }
  }

  /** An internal note: never the visitor's, and marked so. */
  function noteEntry(note) {
    return el("li", { className: "dk-note", "data-role": "note" }, [
      el("p", { className: "dk-meta" }, [
        el("span", { className: "dk-badge dk-badge-note", text: "Internal note" }),
        el("span", { className: "dk-who", text: (note.author && note.author.name) || "Agent" }),
        el("time", { className: "dk-time", datetime: note.created_at || null, text: clock(note.created_at) }),
      ]),
      el("div", { className: "dk-body dk-plain", text: note.text || "" }),
    ]);
  }

  /** Fill a <dl> with [label, value] pairs; values may be nodes; empty values are left out. */
  function facts(dl, pairs) {
    dl.textContent = "";
    for (const [label, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      dl.append(el("dt", { text: label }), el("dd", null, [value]));
    }
  }

  /** A link only for http(s) addresses; anything else is shown as text. */
  function safeLink(url, label) {
    try {
      const parsed = new URL(url);
      if (parsed.protocol === "http:" || parsed.protocol === "https:") {
        return el("a", { href: parsed.href, target: "_blank", rel: "noopener noreferrer", text: label || url });
      }
    } catch (error) {
      // not a URL
    }
    return document.createTextNode(label || url);
  }

  // --- alerts -----------------------------------------------------------------------------
  let audio = null;

  /** Create (or wake) the audio context: browsers allow it only after a user gesture. */
  function unlockAudio() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (!audio) audio = new Context();
    if (audio.state === "suspended") audio.resume().catch(() => {});
  }

  /** A short two-tone beep (no audio file). Silent until a gesture unlocked audio. */
  function beep() {
    if (!audio || audio.state !== "running") return;
    const start = audio.currentTime;
    [880, 1175].forEach((frequency, index) => {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      const at = start + index * 0.16;
      osc.type = "sine";
      osc.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.2, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.14);
      osc.connect(gain).connect(audio.destination);
      osc.start(at);
      osc.stop(at + 0.15);
    });
  }

  /** A browser notification, if allowed; clicking it focuses the desk and calls `onClick`. */
  function notify(title, body, tag, onClick) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const note = new Notification(title, { body, tag });
      note.addEventListener("click", () => {
        window.focus();
        note.close();
        if (onClick) onClick();
      });
    } catch (error) {
      // some browsers allow notifications from service workers only
    }
  }

  desk.render = { el, setText, formatWait, clock, when, author, messageEntry, updateEntry, noteEntry, facts, safeLink };
  desk.alerts = { unlockAudio, beep, notify };
})();

/*
 * The open conversation (window.ParleyDesk.conversation): its transcript (the visitor, the AI
 * and the people, AI replies streamed live, each `seq` shown once however it arrives), internal
 * notes between the messages, the actions enabled by the conversation's state, and the
 * composer (the side panel is static/desk/side.js).
 *
 * A long conversation comes `truncated` (its newest messages only): "Show earlier messages" at
 * the top of the transcript pages back with `history`, keeping the view where it was.
 *
 * Sending: each agent message gets a client_id and waits in the outbox, shown "sending…",
 * until its `ack`; after a reconnect the outbox is sent again with the same client_ids (the
 * server stores each once). The agent's typing goes out as `start`, then `stop` 3 s after the
 * last keystroke or when the message is sent.
 */
(() => {
  "use strict";

  const desk = (window.ParleyDesk = window.ParleyDesk || {});
  const R = desk.render;
  const el = R.el;
  const TYPING_IDLE_MS = 3000;
  const VISITOR_TYPING_MS = 12000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    section: $("dk-conv"),
    title: $("dk-title"),
    state: $("dk-state"),
    actions: $("dk-actions"),
    placeholder: $("dk-placeholder"),
    log: $("dk-log"),
    typing: $("dk-typing"),
    composer: $("dk-composer"),
    text: $("dk-text"),
    textLabel: $("dk-text-label"),
    hint: $("dk-hint"),
    side: $("dk-side"),
    transferForm: $("dk-transfer"),
    transferSelect: $("dk-transfer-to"),
    transferId: $("dk-transfer-id"),
  };

  let ctx = null; // {send, me(), agents(), announce, error, open(sessionId)}
  let conv = null; // the open conversation: the last `conversation` frame, kept up to date
  let bySeq = new Map(); // seq → transcript entry
  let noteKeys = new Set();
  let earlierLeft = false; // messages before the lowest seq shown were left out
  let historyAsked = 0; // the before_seq of the `history` awaiting its answer (0: none)
  let busy = ""; // the action awaiting its ack
  let typingSent = false;
  let typingTimer = null;
  let visitorTypingTimer = null;
  const outbox = new Map(); // client_id → {session_id, text, created_at, status, error}
  const drafts = new Map(); // session_id → unsent text

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return "d-" + crypto.randomUUID();
    return "d-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
  }

  function isMine() {
    const me = ctx.me();
    return Boolean(conv && me && conv.state === "assigned" && conv.agent && conv.agent.id === me.id);
  }

  // --- the transcript -----------------------------------------------------------------------
  function timeOf(entry) {
    return Number(entry.dataset.time || 0);
  }

  /** Insert a message by seq; pending (unacked) entries stay last. */
  function placeMessage(entry, seq) {
    for (const child of ui.log.children) {
      const other = child.dataset.seq;
      if (child.classList.contains("dk-outgoing") || (other !== undefined && Number(other) > seq)) {
        ui.log.insertBefore(entry, child);
        return;
      }
    }
    ui.log.append(entry);
  }

  /** Insert a note by time among the messages; pending entries stay last. */
  function placeNote(entry) {
    const at = timeOf(entry);
    for (const child of ui.log.children) {
      if (child.classList.contains("dk-outgoing") || (child.dataset.seq !== undefined && timeOf(child) > at)) {
        ui.log.insertBefore(entry, child);
        return;
      }
    }
    ui.log.append(entry);
  }

  function visitorName() {
    return (conv && conv.visitor && conv.visitor.name) || "Visitor";
  }

  /** Add or update one stored message (from the transcript or live); each seq once. */
  function upsertMessage(message) {
    if (typeof message.seq !== "number") return null;
    let entry = bySeq.get(message.seq);
    if (entry) {
      // A transcript read mid-stream may carry less text than the stream already showed.
      const shown = entry.querySelector(".dk-body").dataset.text || "";
      const merged = Object.assign({}, message);
      if (message.status === "streaming" && shown.length > (message.text || "").length) merged.text = shown;
      R.updateEntry(entry, merged);
      return entry;
    }
    entry = R.messageEntry(message, visitorName());
    entry.dataset.time = String(Date.parse(message.created_at || "") || Date.now());
    bySeq.set(message.seq, entry);
    placeMessage(entry, message.seq);
    if (message.role === "agent") dropOutgoingFor(message.seq);
    return entry;
  }

  function dropOutgoingFor(seq) {
    for (const [clientId, item] of outbox) {
      if (item.seq === seq) {
        outbox.delete(clientId);
        const pending = ui.log.querySelector('.dk-outgoing[data-client-id="' + CSS.escape(clientId) + '"]');
        if (pending) pending.remove();
      }
    }
  }

  function addNote(note) {
    const key = (note.created_at || "") + "\u0000" + (note.text || "");
    if (noteKeys.has(key)) return;
    noteKeys.add(key);
    const entry = R.noteEntry(note);
    entry.dataset.time = String(Date.parse(note.created_at || "") || Date.now());
    placeNote(entry);
  }

  function outgoingEntry(clientId, item) {
    const message = {
      client_id: clientId,
      role: "agent",
      text: item.text,
      status: item.status,
      error: item.error,
      created_at: item.created_at,
      author: { name: (ctx.me() && ctx.me().name) || "You" },
    };
    const entry = R.messageEntry(message, visitorName());
    entry.classList.add("dk-outgoing");
    return entry;
  }

  function renderOutbox() {
    for (const node of ui.log.querySelectorAll(".dk-outgoing")) node.remove();
    for (const [clientId, item] of outbox) {
      if (conv && item.session_id === conv.session_id) ui.log.append(outgoingEntry(clientId, item));
    }
  }

  function scrollToEnd(force) {
    const near = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 120;
    if (force || near) ui.log.scrollTop = ui.log.scrollHeight;
  }

  // --- earlier messages ----------------------------------------------------------------------
  /** The lowest seq of `messages` (Infinity for none). */
  function lowestIn(messages) {
    return Math.min(...Array.from(messages || [], (m) => m.seq).filter((seq) => typeof seq === "number"));
  }

  const lowestSeq = () => Math.min(...bySeq.keys()); // of the transcript shown

  /** The "Show earlier messages" button, first in the transcript while earlier ones were left out. */
  function renderEarlier() {
    let item = ui.log.querySelector(".dk-more");
    if (!earlierLeft || !bySeq.size) {
      if (!item) return;
      const focused = item.contains(document.activeElement);
      item.remove();
      if (focused) ui.title.focus(); // the button the keyboard was on is gone
      return;
    }
    if (!item) {
      const button = el("button", { type: "button", className: "button dk-more-button", text: "Show earlier messages" });
      button.addEventListener("click", askEarlier);
      item = el("li", { className: "dk-more" }, [button]);
    }
    if (ui.log.firstChild !== item) ui.log.prepend(item);
    const button = item.querySelector("button");
    button.disabled = Boolean(historyAsked);
    button.setAttribute("aria-busy", historyAsked ? "true" : "false");
  }

  function askEarlier() {
    if (!conv || historyAsked || !bySeq.size) return;
    const before = lowestSeq();
    if (!ctx.send({ type: "history", session_id: conv.session_id, before_seq: before })) {
      ctx.error("Not connected: try again in a moment.");
      return;
    }
    historyAsked = before;
    renderEarlier();
  }

  /** `history`: earlier messages of the shown conversation, put above what is shown; the view stays put. */
  function history(frame) {
    if (!conv || frame.session_id !== conv.session_id) return;
    historyAsked = 0;
    const messages = Array.isArray(frame.messages) ? frame.messages : [];
    // An answer that reaches no lower than what is shown (a late one) says nothing about what is left.
    if (!messages.length || lowestIn(messages) <= lowestSeq()) earlierLeft = Boolean(frame.truncated);
    const before = ui.log.scrollHeight - ui.log.scrollTop;
    ui.log.setAttribute("aria-busy", "true"); // old messages are not news
    for (const message of messages) upsertMessage(message);
    // Notes sit by time: those shown above the oldest message may belong among the new ones.
    for (const entry of Array.from(ui.log.querySelectorAll(".dk-note"))) {
      entry.remove();
      placeNote(entry);
    }
    renderEarlier();
    ui.log.scrollTop = ui.log.scrollHeight - before;
    requestAnimationFrame(() => ui.log.removeAttribute("aria-busy"));
    ctx.announce(messages.length === 1 ? "1 earlier message shown." : messages.length + " earlier messages shown.");
  }

  // --- state and controls -------------------------------------------------------------------
  function stateText() {
    const me = ctx.me();
    switch (conv.state) {
      case "ai":
        return "The AI assistant answers";
      case "waiting":
        return "Waiting for a person";
      case "assigned":
        if (!conv.agent) return "Assigned (the agent left): anyone may claim it";
        return me && conv.agent.id === me.id ? "Assigned to you" : "Assigned to " + conv.agent.name;
      case "resolved":
        return "Resolved";
      default:
        return conv.state || "";
    }
  }

  function refreshControls() {
    const open = Boolean(conv);
    const connected = ctx && ctx.connected();
    const mine = open && isMine();
    const claimable = open && (conv.state !== "assigned" || !conv.agent);
    const buttons = ui.actions.querySelectorAll("[data-action]");
    for (const button of buttons) {
      const action = button.dataset.action;
      let enabled = action === "claim" ? claimable : mine;
      if (action === "transfer") enabled = mine && transferTarget() !== null;
      button.disabled = !open || !connected || Boolean(busy) || !enabled;
    }
    const claim = ui.actions.querySelector('[data-action="claim"]');
    claim.textContent = open && (conv.state === "ai" || conv.state === "resolved") ? "Take over" : "Claim";
    ui.transferSelect.disabled = ui.transferId.disabled = !mine;
    const reply = ui.composer.querySelector('input[value="reply"]');
    reply.disabled = !mine;
    if (!mine && reply.checked) setMode("note");
    ui.hint.textContent = mine
      ? "Enter sends, Shift+Enter starts a new line."
      : "Claim the conversation to reply; internal notes are for agents only. Enter sends.";
    if (open) {
      ui.section.dataset.state = conv.state;
      ui.state.textContent = stateText();
    }
  }

  function setMode(mode) {
    const radio = ui.composer.querySelector('input[value="' + mode + '"]');
    radio.checked = true;
    ui.composer.dataset.mode = mode;
    ui.textLabel.textContent = mode === "note" ? "Internal note (never sent to the visitor)" : "Reply to the visitor";
    ui.text.maxLength = mode === "note" ? 4000 : 8000;
    if (mode === "note") stopTyping();
  }

  function transferTarget() {
    if (!ui.transferSelect.hidden) return ui.transferSelect.value ? Number(ui.transferSelect.value) : null;
    const value = Number(ui.transferId.value);
    return Number.isInteger(value) && value > 0 ? value : null;
  }

  /** The transfer control: a list of agents when the server gives one, else an id input. */
  function renderAgents(agents) {
    const me = ctx.me();
    const others = (agents || []).filter((agent) => !me || agent.id !== me.id);
    const useList = Array.isArray(agents);
    ui.transferSelect.hidden = !useList;
    ui.transferId.hidden = useList;
    ui.transferForm.querySelector("label").htmlFor = useList ? "dk-transfer-to" : "dk-transfer-id";
    if (!useList) return;
    const chosen = ui.transferSelect.value;
    ui.transferSelect.textContent = "";
    ui.transferSelect.append(el("option", { value: "", text: others.length ? "Choose an agent" : "No other agents" }));
    for (const agent of others) {
      const label = agent.name + (agent.available === false ? " (away)" : "");
      ui.transferSelect.append(el("option", { value: agent.id, text: label, selected: String(agent.id) === chosen }));
    }
  }

  // --- server frames ------------------------------------------------------------------------
  /** A `conversation` frame: a new conversation replaces the view, the same one is merged. */
  function show(frame, { focus } = {}) {
    const same = conv && conv.session_id === frame.session_id;
    if (!same) {
      saveDraft();
      stopTyping();
      ui.log.textContent = "";
      bySeq = new Map();
      noteKeys = new Set();
      earlierLeft = false;
      ui.typing.textContent = "";
      ui.log.setAttribute("aria-busy", "true"); // the whole transcript is not news
    }
    conv = Object.assign({}, frame);
    delete conv.type;
    historyAsked = 0; // an answer lost with a connection must not hold the button
    ui.title.textContent = conv.title || (conv.visitor && conv.visitor.name) || "Conversation";
    ui.placeholder.hidden = true;
    ui.log.hidden = ui.composer.hidden = ui.side.hidden = false;
    // A re-read of the same conversation says what is left before its own messages, not before
    // the earlier ones already paged in.
    if (!same || lowestIn(frame.messages) <= lowestSeq()) earlierLeft = Boolean(frame.truncated);
    for (const message of frame.messages || []) upsertMessage(message);
    for (const note of frame.notes || []) addNote(note);
    renderEarlier();
    renderOutbox();
    desk.side.render(conv, ctx.open);
    busy = "";
    refreshControls();
    if (!same) {
      ui.text.value = drafts.get(conv.session_id) || "";
      scrollToEnd(true);
      requestAnimationFrame(() => ui.log.removeAttribute("aria-busy"));
      if (focus) ui.title.focus();
    }
  }

  /** A frame of a followed conversation (message, reply.*, typing, handoff.status). */
  function sessionFrame(frame) {
    if (!conv || frame.session_id !== conv.session_id) return;
    switch (frame.type) {
      case "message":
        upsertMessage(frame);
        if (frame.role === "user") setVisitorTyping(false);
        scrollToEnd(frame.role === "agent");
        break;
      case "reply.start":
        upsertMessage({ seq: frame.seq, role: "assistant", text: "", status: "streaming", created_at: new Date().toISOString() });
        bySeq.get(frame.seq).setAttribute("aria-busy", "true");
        scrollToEnd(false);
        break;
      case "reply.delta":
        delta(frame);
        break;
      case "reply.end": {
        const entry = bySeq.get(frame.seq);
        const text = typeof frame.text === "string" ? frame.text : entry ? entry.querySelector(".dk-body").dataset.text : "";
        const done = { seq: frame.seq, role: "assistant", text, status: frame.status || "complete" };
        if (entry) R.updateEntry(entry, done);
        else upsertMessage(done);
        bySeq.get(frame.seq).removeAttribute("aria-busy");
        scrollToEnd(false);
        break;
      }
      case "typing":
        if (frame.role === "user") setVisitorTyping(frame.state === "start");
        break;
      case "handoff.status":
        ctx.send({ type: "open", session_id: conv.session_id }); // re-read who answers now
        break;
      default:
        break;
    }
  }

  function delta(frame) {
    const entry = bySeq.get(frame.seq);
    if (!entry) return; // joined mid-reply: reply.end brings the whole text
    const body = entry.querySelector(".dk-body");
    const shown = body.dataset.text || "";
    const offset = typeof frame.offset === "number" ? frame.offset : shown.length;
    if (offset > shown.length) return; // a gap: reply.end fills it
    const text = shown.slice(0, offset) + frame.text;
    if (text.length <= shown.length) return; // already shown
    R.updateEntry(entry, { seq: frame.seq, role: "assistant", text, status: "streaming" });
    scrollToEnd(false);
  }

  function setVisitorTyping(on) {
    clearTimeout(visitorTypingTimer);
    ui.typing.textContent = on ? visitorName() + " is typing…" : "";
    if (on) visitorTypingTimer = setTimeout(() => (ui.typing.textContent = ""), VISITOR_TYPING_MS);
  }

  /** `ack` of an agent message: stored. Its seq replaces the pending entry (unless shown already). */
  function ack(frame) {
    const item = outbox.get(frame.client_id);
    if (!item) return;
    outbox.delete(frame.client_id);
    const pending = ui.log.querySelector('.dk-outgoing[data-client-id="' + CSS.escape(frame.client_id) + '"]');
    if (!pending) return;
    if (bySeq.has(frame.seq)) {
      pending.remove();
      return;
    }
    pending.classList.remove("dk-outgoing");
    const message = { seq: frame.seq, role: "agent", text: item.text, status: "complete", created_at: item.created_at };
    R.updateEntry(pending, message);
    pending.dataset.time = String(Date.parse(item.created_at));
    bySeq.set(frame.seq, pending);
    pending.remove();
    placeMessage(pending, frame.seq);
  }

  function note(frame) {
    if (conv && frame.session_id === conv.session_id) {
      addNote(frame);
      scrollToEnd(true);
    }
  }

  /** An `error`: a message it names (client_id) is marked not sent; the shown conversation's
   * pending action or `history` is done (an error about another conversation leaves them be). */
  function error(frame) {
    const clientId = frame.client_id;
    if (clientId && outbox.has(clientId)) {
      const item = outbox.get(clientId);
      if (frame.code === "rate_limited") {
        setTimeout(() => resend(clientId), Math.max(1, frame.retry_after || 1) * 1000);
      } else {
        item.status = "error";
        item.error = frame.detail;
        outbox.delete(clientId);
        const pending = ui.log.querySelector('.dk-outgoing[data-client-id="' + CSS.escape(clientId) + '"]');
        if (pending) R.updateEntry(pending, { role: "agent", text: item.text, status: "error", error: frame.detail });
      }
    }
    const ours = !frame.session_id || (conv && frame.session_id === conv.session_id);
    if (ours && historyAsked) {
      historyAsked = 0;
      renderEarlier();
    }
    if (ours && busy) {
      busy = "";
      if (conv) ctx.send({ type: "open", session_id: conv.session_id }); // see where things stand
    }
    refreshControls();
  }

  /** `*.ack` of an action: re-read the conversation (who answers now); focus stays usable. */
  function actionDone(frame) {
    busy = "";
    if (!conv || frame.session_id !== conv.session_id) return;
    if (frame.type === "claim.ack") {
      // The server follows with the `conversation` frame.
      conv.state = "assigned";
      conv.agent = ctx.me();
      refreshControls();
      setMode("reply");
      ui.text.focus();
      return;
    }
    ctx.send({ type: "open", session_id: conv.session_id });
    const local = { "release.ack": "waiting", "handback.ack": "ai", "resolve.ack": "resolved" }[frame.type];
    if (local) {
      conv.state = local;
      conv.agent = null;
    }
    refreshControls();
    ctx.announce("Done: " + frame.type.replace(".ack", "") + ".");
    ui.title.focus();
  }

  // --- agent input ----------------------------------------------------------------------------
  function resend(clientId) {
    const item = outbox.get(clientId);
    if (item) ctx.send({ type: "message", session_id: item.session_id, text: item.text, client_id: clientId });
  }

  /** After a reconnect: every unacked message again, with its client_id (stored once). */
  function resendAll() {
    for (const clientId of outbox.keys()) resend(clientId);
  }

  function submit() {
    if (!conv) return;
    const text = ui.text.value.trim();
    if (!text) return;
    const mode = ui.composer.dataset.mode;
    if (mode === "note") {
      if (!ctx.send({ type: "note", session_id: conv.session_id, text })) {
        ctx.error("Not connected: the note was not saved. It is still in the box.");
        return;
      }
    } else {
      if (!isMine()) return;
      const clientId = newClientId();
      const item = { session_id: conv.session_id, text, created_at: new Date().toISOString(), status: "pending" };
      outbox.set(clientId, item);
      ui.log.append(outgoingEntry(clientId, item));
      stopTyping();
      resend(clientId); // not connected: it goes out on reconnect
      scrollToEnd(true);
    }
    ui.text.value = "";
    drafts.delete(conv.session_id);
  }

  function startTyping() {
    if (!isMine() || ui.composer.dataset.mode !== "reply") return;
    if (!typingSent && ctx.send({ type: "typing", session_id: conv.session_id, state: "start" })) typingSent = true;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingSent && conv && isMine()) ctx.send({ type: "typing", session_id: conv.session_id, state: "stop" });
    typingSent = false;
  }

  function saveDraft() {
    if (!conv) return;
    if (ui.text.value.trim()) drafts.set(conv.session_id, ui.text.value);
    else drafts.delete(conv.session_id);
  }

  function act(action) {
    if (!conv || busy) return;
    const frame = { type: action, session_id: conv.session_id };
    if (action === "transfer") {
      const target = transferTarget();
      if (target === null) return;
      frame.agent_id = target;
    }
    if (ctx.send(frame)) {
      busy = action;
      refreshControls();
    }
  }

  function init(context) {
    ctx = context;
    ui.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    ui.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      }
    });
    ui.text.addEventListener("input", () => (ui.text.value ? startTyping() : stopTyping()));
    ui.text.addEventListener("blur", stopTyping);
    ui.composer.addEventListener("change", (event) => {
      if (event.target.name === "mode") setMode(event.target.value);
    });
    ui.actions.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button && button.dataset.action !== "transfer") act(button.dataset.action);
    });
    ui.transferForm.addEventListener("submit", (event) => {
      event.preventDefault();
      act("transfer");
    });
    ui.transferId.addEventListener("input", refreshControls);
    ui.transferSelect.addEventListener("change", refreshControls);
    renderAgents(null);
  }

  desk.conversation = {
    init,
    show,
    sessionFrame,
    ack,
    note,
    history,
    error,
    actionDone,
    resendAll,
    refreshControls,
    renderAgents,
    current: () => conv,
    isMine,
  };
})();

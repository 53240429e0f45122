/*
 * The agent desk (templates/desk/desk.html): the /ws/desk/ socket (docs/desk.md), the queue
 * (waiting, with live-ticking waits; mine; all open, when the server sends `open`), the
 * availability switch, alerts when a conversation starts waiting (a beep and a browser
 * notification, both switched on by a click) and the connection state. The open conversation
 * is static/desk/conversation.js. A list cut to fit one frame counts its `totals` and says how
 * many it leaves out.
 *
 * Test hooks: #desk carries data-connection (connecting|live|reconnecting|off) and, once the
 * first `welcome` arrived, data-ready.
 */
(() => {
  "use strict";

  const desk = window.ParleyDesk;
  const root = document.getElementById("desk");
  if (!desk || !root) return;
  const R = desk.render;
  const el = R.el;
  const conversation = desk.conversation;
  const $ = (id) => document.getElementById(id);

  const ui = {
    conn: $("dk-conn"),
    connText: $("dk-conn-text"),
    available: $("dk-available"),
    alerts: $("dk-alerts"),
    error: $("dk-error"),
    announce: $("dk-announce"),
    lists: { waiting: $("dk-waiting"), mine: $("dk-mine"), open: $("dk-open") },
    counts: { waiting: $("dk-waiting-count"), mine: $("dk-mine-count"), open: $("dk-open-count") },
    openGroup: $("dk-open-group"),
  };

  const state = {
    me: null, // {id, name, available}
    agents: null, // [{id, name, available}] when the server lists them
    waiting: [],
    mine: [],
    open: null,
    totals: {}, // {queue, mine, open}: each list's full length, when the server says
    receivedAt: 0, // when the queue's wait_s were measured (this browser's clock)
    seenWaiting: null, // ids of the conversations already known to wait (null before the first welcome)
    unread: new Set(),
  };
  let socket = null;
  let errorTimer = null;

  function send(frame) {
    return socket ? socket.send(frame) : false;
  }

  function announce(text) {
    // Cleared first so that the same words twice are read twice.
    ui.announce.textContent = "";
    setTimeout(() => (ui.announce.textContent = text), 50);
  }

  function showError(text) {
    clearTimeout(errorTimer);
    ui.error.textContent = text;
    ui.error.hidden = !text;
    if (text) errorTimer = setTimeout(() => showError(""), 15000);
  }

  // --- the connection -----------------------------------------------------------------------
  function setStatus(stateName, text) {
    root.dataset.connection = stateName;
    ui.conn.dataset.state = stateName;
    ui.connText.textContent = text;
    if (stateName === "off" && /Signed out/.test(text)) {
      ui.connText.append(" ", el("a", { href: root.dataset.login, text: "Sign in" }));
    }
    ui.available.disabled = stateName !== "live" || !state.me;
    conversation.refreshControls();
  }

  function onOpen(reconnected) {
    send({ type: "hello" });
    const current = conversation.current();
    if (reconnected) {
      if (current) send({ type: "open", session_id: current.session_id }); // what was missed
      conversation.resendAll();
    }
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "welcome":
        state.me = frame.agent;
        if (Array.isArray(frame.agents)) state.agents = frame.agents;
        conversation.renderAgents(state.agents);
        setAvailable(Boolean(frame.agent && frame.agent.available));
        ui.available.disabled = false;
        root.dataset.ready = "";
        updateQueue(frame);
        break;
      case "queue.updated":
        if (Array.isArray(frame.agents)) {
          state.agents = frame.agents;
          conversation.renderAgents(state.agents);
        }
        updateQueue(frame);
        break;
      case "availability":
        setAvailable(frame.available);
        announce(frame.available ? "You are available for new conversations." : "You are away.");
        break;
      case "conversation":
        conversation.show(frame, { focus: pendingFocus === frame.session_id });
        if (pendingFocus === frame.session_id) pendingFocus = null;
        state.unread.delete(frame.session_id);
        renderQueue();
        break;
      case "ack":
        conversation.ack(frame);
        break;
      case "history":
        conversation.history(frame);
        break;
      case "note":
        conversation.note(frame);
        break;
      case "claim.ack":
      case "release.ack":
      case "transfer.ack":
      case "handback.ack":
      case "resolve.ack":
        conversation.actionDone(frame);
        break;
      case "error":
        showError(frame.detail || frame.code || "Something went wrong.");
        conversation.error(frame);
        break;
      case "pong":
        break;
      default:
        if (frame.session_id) onSessionFrame(frame);
        break;
    }
  }

  function onSessionFrame(frame) {
    const current = conversation.current();
    if (current && current.session_id === frame.session_id) {
      conversation.sessionFrame(frame);
    } else if (frame.type === "message" && frame.role === "user") {
      state.unread.add(frame.session_id);
      renderQueue();
      announce("New message in a conversation of yours.");
    }
  }

  // --- the queue ----------------------------------------------------------------------------
  function updateQueue(frame) {
    state.waiting = Array.isArray(frame.queue) ? frame.queue : [];
    state.mine = Array.isArray(frame.mine) ? frame.mine : [];
    state.open = Array.isArray(frame.open) ? frame.open : null;
    state.totals = frame.totals && typeof frame.totals === "object" ? frame.totals : {};
    state.receivedAt = Date.now();
    const ids = new Set(state.waiting.map((item) => item.session_id));
    if (state.seenWaiting !== null) {
      const fresh = state.waiting.filter((item) => !state.seenWaiting.has(item.session_id));
      if (fresh.length) alertWaiting(fresh);
    }
    state.seenWaiting = ids;
    renderQueue();
    syncCurrent();
  }

  /** The open conversation changed hands elsewhere: re-read it when the queue disagrees. */
  function syncCurrent() {
    const current = conversation.current();
    if (!current) return;
    const id = current.session_id;
    // Absent from a list cut short says nothing: it may be among those left out.
    const has = (items, total) =>
      items.some((item) => item.session_id === id) ? true : Number.isInteger(total) && total > items.length ? null : false;
    const waiting = has(state.waiting, state.totals.queue);
    const mine = has(state.mine, state.totals.mine);
    const differs = (listed, shown) => listed !== null && listed !== shown;
    if (differs(waiting, current.state === "waiting") || differs(mine, conversation.isMine())) {
      send({ type: "open", session_id: id });
    }
  }

  function itemTitle(item) {
    const visitor = item.visitor || {};
    return item.title || visitor.name || "Untitled conversation";
  }

  function agentName(agent) {
    return state.me && agent.id === state.me.id ? "you" : agent.name;
  }

  function queueItem(item, group) {
    const visitor = item.visitor || {};
    const current = conversation.current();
    const selected = Boolean(current && current.session_id === item.session_id);
    const unread = state.unread.has(item.session_id);
    const detail = [visitor.name || "Anonymous visitor", visitor.locale, visitor.page_title].filter(Boolean).join(" · ");
    const wait = group === "waiting" && typeof item.wait_s === "number"
      ? el("span", { className: "dk-wait", "data-wait": item.wait_s, text: R.formatWait(item.wait_s) })
      : null;
    const button = el(
      "button",
      {
        type: "button",
        className: "dk-item",
        "data-session": item.session_id,
        "aria-current": selected ? "true" : null,
      },
      [
        el("span", { className: "dk-item-title" }, [
          itemTitle(item),
          unread ? el("span", { className: "dk-unread", text: "new message" }) : null,
        ]),
        el("span", { className: "dk-item-detail", text: detail }),
        wait ? el("span", { className: "dk-item-wait" }, [el("span", { className: "visually-hidden", text: "waiting " }), wait]) : null,
        group === "open" && item.agent ? el("span", { className: "dk-item-detail", text: "with " + agentName(item.agent) }) : null,
      ],
    );
    return el("li", { "data-state": item.state }, [button]);
  }

  /** A list, its count (the full length from `totals` when given) and how many it leaves out. */
  function renderList(group, items, total) {
    const list = ui.lists[group];
    const focused = document.activeElement && list.contains(document.activeElement)
      ? document.activeElement.dataset.session
      : null;
    list.textContent = "";
    const count = Number.isInteger(total) && total >= items.length ? total : items.length;
    for (const item of items) list.append(queueItem(item, group));
    if (count > items.length) {
      list.append(el("li", { className: "dk-empty dk-more-items", text: count - items.length + " more not shown" }));
    } else if (!items.length) {
      list.append(el("li", { className: "dk-empty", text: list.dataset.empty }));
    }
    ui.counts[group].textContent = String(count);
    if (focused) {
      // Keep the keyboard where it was when the list is redrawn.
      const again = list.querySelector('[data-session="' + CSS.escape(focused) + '"]');
      if (again) again.focus();
    }
  }

  function renderQueue() {
    renderList("waiting", state.waiting, state.totals.queue);
    renderList("mine", state.mine, state.totals.mine);
    ui.openGroup.hidden = state.open === null;
    if (state.open !== null) renderList("open", state.open, state.totals.open);
  }

  /** Every second: the waits tick on from the server's wait_s (no clock skew). */
  function tick() {
    const elapsed = (Date.now() - state.receivedAt) / 1000;
    for (const node of ui.lists.waiting.querySelectorAll(".dk-wait")) {
      node.textContent = R.formatWait(Number(node.dataset.wait) + elapsed);
    }
  }

  let pendingFocus = null;

  function openConversation(sessionId) {
    pendingFocus = sessionId;
    if (!send({ type: "open", session_id: sessionId })) showError("Not connected: try again in a moment.");
  }

  // --- alerts and availability ----------------------------------------------------------------
  function alertWaiting(fresh) {
    const first = fresh[0];
    const text =
      fresh.length === 1
        ? "New conversation waiting: " + itemTitle(first)
        : fresh.length + " new conversations waiting";
    announce(text);
    if (root.dataset.alerts === "on") {
      desk.alerts.beep();
      desk.alerts.notify("Parley: a visitor is waiting", text, "parley-desk-waiting", () => openConversation(first.session_id));
    }
  }

  function setAlerts(on) {
    root.dataset.alerts = on ? "on" : "off";
    ui.alerts.setAttribute("aria-pressed", on ? "true" : "false");
    ui.alerts.textContent = on ? "Alerts on" : "Turn on alerts";
    try {
      localStorage.setItem("parley.desk.alerts", on ? "on" : "off");
    } catch (error) {
      // storage may be off
    }
  }

  function setAvailable(available) {
    if (state.me) state.me.available = available;
    ui.available.checked = available;
    root.dataset.available = available ? "yes" : "no";
  }

  function init() {
    let saved = "on";
    try {
      saved = localStorage.getItem("parley.desk.alerts") || "on";
    } catch (error) {
      // storage may be off
    }
    setAlerts(saved === "on");
    // Sound and notifications need a gesture: the first click anywhere unlocks the audio.
    document.addEventListener("pointerdown", desk.alerts.unlockAudio, { once: true });
    document.addEventListener("keydown", desk.alerts.unlockAudio, { once: true });
    ui.alerts.addEventListener("click", () => {
      const on = root.dataset.alerts !== "on" || ("Notification" in window && Notification.permission === "default");
      desk.alerts.unlockAudio();
      if (on && "Notification" in window && Notification.permission === "default") {
        Notification.requestPermission().catch(() => {});
      }
      setAlerts(on);
      if (on) desk.alerts.beep();
    });
    ui.available.addEventListener("change", () => {
      const wanted = ui.available.checked; // shown at once; the server's answer is what stays
      desk.alerts.unlockAudio();
      if (wanted && "Notification" in window && Notification.permission === "default" && root.dataset.alerts === "on") {
        Notification.requestPermission().catch(() => {});
      }
      if (!send({ type: "availability", available: wanted })) {
        ui.available.checked = !wanted;
        showError("Not connected: try again in a moment.");
      }
    });
    root.addEventListener("click", (event) => {
      const item = event.target.closest(".dk-item[data-session]");
      if (item) openConversation(item.dataset.session);
    });
    conversation.init({
      send,
      me: () => state.me,
      agents: () => state.agents,
      announce,
      error: showError,
      open: openConversation,
      connected: () => Boolean(socket && socket.isOpen()),
    });
    setInterval(tick, 1000);
    socket = desk.connect(root.dataset.ws, {
      open: onOpen,
      frame: onFrame,
      status: setStatus,
      closed: () => conversation.refreshControls(),
    });
  }

  init();
})();

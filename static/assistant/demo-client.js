// Minimal client for the /ws/chat/ protocol (docs/protocol.md). Text is only ever inserted with
// textContent, never as HTML. The embeddable widget (static/assistant/widget.js) is the full one.
(function () {
  "use strict";
  var storeKey = "parley-demo:" + location.host;
  var els = {
    status: document.getElementById("status"), list: document.getElementById("messages"),
    quick: document.getElementById("quick-replies"), form: document.getElementById("composer"),
    input: document.getElementById("input"), stop: document.getElementById("stop"),
    send: document.getElementById("send"), reset: document.getElementById("new-chat"),
  };
  var ws = null, lastSeq = 0, streaming = null, bubbles = {}, retry = 0;

  function saved() { try { return JSON.parse(localStorage.getItem(storeKey)) || {}; } catch (e) { return {}; } }
  function save(data) { localStorage.setItem(storeKey, JSON.stringify(data)); }
  function setStatus(text) { els.status.textContent = text; }
  function setStreaming(seq) { streaming = seq; els.stop.hidden = seq === null; els.send.disabled = seq !== null; }

  function bubble(seq, role, text) {
    var li = bubbles[seq];
    if (!li) {
      li = document.createElement("li");
      li.className = role;
      li.appendChild(document.createElement("span")).className = "body";
      els.list.appendChild(li);
      if (seq !== null) { bubbles[seq] = li; }
    }
    if (text !== undefined) { li.firstChild.textContent = text; }
    els.list.scrollTop = els.list.scrollHeight;
    return li;
  }
  function meta(li, text) {
    var m = li.querySelector(".meta") || li.appendChild(document.createElement("span"));
    m.className = "meta"; m.textContent = text;
  }
  function remember(seq) { if (seq > lastSeq) { lastSeq = seq; } }

  function connect() {
    var s = saved();
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/chat/");
    ws.onopen = function () {
      retry = 0; setStatus("Connected");
      var hello = { type: "hello", last_seq: lastSeq, page: { url: location.href, title: document.title, referrer: document.referrer } };
      if (s.session_id) { hello.session_id = s.session_id; hello.token = s.token; }
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = function (event) { handle(JSON.parse(event.data)); };
    ws.onclose = function (event) {
      setStatus("Disconnected (" + event.code + "), reconnecting…");
      var delay = Math.min(30000, 500 * Math.pow(2, retry++)) * (0.5 + Math.random() / 2);
      setTimeout(connect, delay);
    };
  }

  function handle(f) {
    switch (f.type) {
      case "welcome":
        if (f.token) { save({ session_id: f.session_id, token: f.token }); }
        if (!f.history.length && !lastSeq) { bubble("greeting", "assistant", f.config.greeting); }
        els.quick.textContent = "";
        f.config.quick_replies.forEach(function (text) {
          var b = els.quick.appendChild(document.createElement("button"));
          b.type = "button"; b.textContent = text; b.onclick = function () { send(text); };
        });
        f.history.forEach(function (m) {
          bubble(m.seq, m.role, m.text);
          if (m.status === "streaming") { setStreaming(m.seq); } else { remember(m.seq); }
        });
        break;
      case "ack": remember(f.seq); bubbles[f.seq] = bubbles["pending:" + f.client_id]; break;
      case "message": bubble(f.seq, f.role, f.text); remember(f.seq); break;
      case "reply.start": bubble(f.seq, "assistant", ""); setStreaming(f.seq); break;
      case "reply.delta":
        var li = bubble(f.seq, "assistant");
        li.firstChild.textContent += f.text; els.list.scrollTop = els.list.scrollHeight; break;
      case "reply.end":
        setStreaming(null); remember(f.seq);
        if (f.status !== "complete") { meta(bubble(f.seq, "assistant"), "Reply " + f.status + (f.error ? " (" + f.error + ")" : "")); }
        break;
      case "error":
        if (f.code === "session_not_found") { localStorage.removeItem(storeKey); ws.close(); return; }
        bubble(null, "error", f.detail + (f.retry_after ? " Try again in " + Math.ceil(f.retry_after) + " s." : ""));
        break;
      case "ended": setStatus("Chat ended"); break;
    }
  }

  function send(text) {
    if (!text.trim() || !ws || ws.readyState !== WebSocket.OPEN) { return; }
    var clientId = (self.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Date.now()) + Math.random();
    bubbles["pending:" + clientId] = bubble(null, "user", text);
    ws.send(JSON.stringify({ type: "message", text: text, client_id: clientId }));
  }

  els.form.addEventListener("submit", function (e) { e.preventDefault(); send(els.input.value); els.input.value = ""; });
  els.input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); els.form.requestSubmit(); }
  });
  els.stop.addEventListener("click", function () { ws.send(JSON.stringify({ type: "stop" })); });
  els.reset.addEventListener("click", function () { localStorage.removeItem(storeKey); location.reload(); });
  connect();
})();

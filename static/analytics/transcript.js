/*
 * One session's transcript (templates/analytics/transcript.html): its messages with provider,
 * timing, feedback and provider calls, and the session's analytics row. While the session is
 * live, the page watches it on /ws/analytics/ and appends visitor messages and streamed replies;
 * when a frame cannot be applied (a gap in a reply's text, a reconnect) it re-reads the
 * transcript API, which is the source of truth.
 */
(function () {
  "use strict";

  var root = document.getElementById("chat-transcript");
  if (!root) return;

  var PA = window.ParleyAnalytics;
  var el = PA.el;
  var isNumber = PA.isNumber;
  var transcript = JSON.parse(document.getElementById("ct-transcript").textContent);
  var list = document.getElementById("ct-messages");
  var panel = document.getElementById("ct-analytics");
  var errorBox = document.getElementById("ct-error");
  var definitions = {};
  var nodes = {}; // seq -> {item, text, message}
  var ROLES = { user: "Visitor", assistant: "Assistant", agent: "Agent", system: "System" };

  // --- Messages ---------------------------------------------------------------------------
  function ms(value) {
    return PA.formatUnit("ms", value);
  }

  function messageHead(message) {
    var parts = [
      el("strong", { text: ROLES[message.role] || message.role }),
      el("span", { text: "#" + message.seq }),
      el("time", { datetime: message.created_at, text: PA.when(message.created_at) }),
    ];
    if (message.status && message.status !== "complete") {
      parts.push(el("span", { className: "ct-status", text: message.status + (message.error ? " (" + message.error + ")" : "") }));
    }
    if (message.role === "assistant") {
      if (message.provider) parts.push(el("span", { text: message.provider + (message.model ? " · " + message.model : "") }));
      if (message.cached) parts.push(el("span", { text: "from cache" }));
      if (isNumber(message.ttft_ms)) parts.push(el("span", { "data-def": "avg_ttft_ms", title: definition("avg_ttft_ms"), text: "first token " + ms(message.ttft_ms) }));
      if (isNumber(message.duration_ms)) parts.push(el("span", { "data-def": "avg_response_time_ms", title: definition("avg_response_time_ms"), text: "reply " + ms(message.duration_ms) }));
    }
    return el("div", { className: "ct-head" }, parts);
  }

  function messageDetails(message) {
    var details = [];
    if (message.feedback) {
      var feedback = message.feedback;
      var text = feedback.rating === "up" ? "▲ Thumbs up" : "▼ Thumbs down";
      if (feedback.reason) text += " · " + feedback.reason;
      if (feedback.comment) text += " · “" + feedback.comment + "”";
      details.push(el("p", { className: "ct-feedback ct-feedback-" + feedback.rating, "data-testid": "transcript-feedback", text: text }));
    }
    if (message.sources && message.sources.length) {
      details.push(el("p", { text: "Sources: " + message.sources.map(function (source) {
        return typeof source === "string" ? source : source.title || source.id;
      }).join(", ") }));
    }
    if (message.calls && message.calls.length) {
      details.push(el("p", { text: message.role === "assistant" ? "Provider calls:" : "AI calls for this message (such as the session title):" }));
      details.push(el("ul", null, message.calls.map(function (call) {
        var text = call.provider + (call.model ? " · " + call.model : "") + " — attempt " + call.attempt + ": " + call.outcome;
        if (isNumber(call.latency_ms)) text += " in " + ms(call.latency_ms);
        if (call.error_kind) text += " (" + call.error_kind + ")";
        if (call.fallback_from) text += ", after " + call.fallback_from + " failed";
        return el("li", { text: text });
      })));
    }
    return details.length ? el("div", { className: "ct-details" }, details) : null;
  }

  function messageNode(message) {
    var text = el("p", { className: "ct-text", text: message.text });
    var item = el("li", {
      className: "ct-message", "data-role": message.role, "data-seq": String(message.seq),
      "data-status": message.status, "data-testid": "transcript-message",
    }, [messageHead(message), text, messageDetails(message)]);
    if (message.status === "streaming") item.setAttribute("aria-busy", "true");
    return { item: item, text: text, message: message };
  }

  function putMessage(message) {
    var node = messageNode(message);
    var old = nodes[message.seq];
    var placeholder = list.querySelector(".ca-empty-row");
    if (placeholder) placeholder.remove();
    if (old) list.replaceChild(node.item, old.item);
    else list.appendChild(node.item);
    nodes[message.seq] = node;
    return node;
  }

  function renderMessages(messages) {
    list.textContent = "";
    nodes = {};
    if (!messages.length) list.appendChild(el("li", { className: "ca-empty-row", text: "No messages yet." }));
    messages.forEach(putMessage);
    document.getElementById("ct-count").textContent = String(messages.length);
  }

  function count() {
    document.getElementById("ct-count").textContent = String(Object.keys(nodes).length);
  }

  // --- Analytics panel --------------------------------------------------------------------
  var FIELDS = [
    ["provider", "Provider"],
    ["total_messages", "Messages", "messages", "count"],
    ["user_messages", "Visitor messages", "user_messages", "count"],
    ["assistant_messages", "Assistant messages", "assistant_messages", "count"],
    ["avg_response_time_ms", "Response time (avg)", "avg_response_time_ms", "ms"],
    ["p95_response_time_ms", "Response time p95", "p95_response_time_ms", "ms"],
    ["avg_ttft_ms", "Time to first token", "avg_ttft_ms", "ms"],
    ["engagement_score", "Engagement score", "avg_engagement_score", "score"],
    ["resolution", "Resolution", "resolution_rate"],
    ["escalated_to_human", "Escalated", "escalation_rate"],
    ["unanswered", "Unanswered question"],
    ["closed", "Finished"],
    ["satisfaction_rating", "Rating", "avg_rating", "rating"],
    ["feedback_up", "Thumbs up", "thumbs_up", "count"],
    ["feedback_down", "Thumbs down", "thumbs_down", "count"],
    ["avg_sentiment", "Visitor sentiment", "avg_sentiment", "ratio"],
    ["cached_replies", "Cached replies", "cache_hit_rate", "count"],
    ["failed_replies", "Failed replies", null, "count"],
    ["failovers", "Failovers", "failovers", "count"],
    ["provider_errors", "Provider errors", null, "count"],
    ["duration_s", "Duration"],
    ["topics_discussed", "Topics"],
    ["actions_taken", "Widget actions"],
    ["started_at", "Started"],
    ["last_activity_at", "Last activity"],
    ["updated_at", "Analytics written"],
  ];

  function definition(key) {
    var metric = definitions[key];
    return metric ? metric.label + ": " + metric.definition : null;
  }

  function fieldText(name, unit, value) {
    if (value === null || value === undefined || value === "") return PA.NO_DATA;
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (name === "duration_s") return value >= 60 ? Math.floor(value / 60) + " min " + (value % 60) + " s" : value + " s";
    if (/_at$/.test(name)) return PA.when(value);
    if (Array.isArray(value)) {
      if (!value.length) return "none";
      return value.map(function (item) { return typeof item === "string" ? item : item.name; }).join(", ");
    }
    return unit ? PA.formatUnit(unit, value) : String(value);
  }

  function renderAnalytics(analytics) {
    panel.textContent = "";
    if (!analytics) {
      panel.appendChild(el("p", { className: "ca-quiet", text: "No analytics yet: the tracker writes them a few seconds after the first message." }));
      return;
    }
    var dl = el("dl", { "data-testid": "transcript-analytics" });
    FIELDS.forEach(function (field) {
      var name = field[0];
      if (!(name in analytics)) return;
      dl.appendChild(el("dt", { "data-def": field[2], title: field[2] ? definition(field[2]) : null, text: field[1] }));
      dl.appendChild(el("dd", { "data-field": name, text: fieldText(name, field[3], analytics[name]) }));
    });
    panel.appendChild(dl);
  }

  function render(data) {
    transcript = data;
    renderMessages(data.messages);
    renderAnalytics(data.analytics);
  }

  // --- Re-reading the API -----------------------------------------------------------------
  var refetchTimer = null;

  function refetch(delay) {
    if (refetchTimer !== null) return;
    refetchTimer = setTimeout(function () {
      refetchTimer = null;
      fetch(root.dataset.api, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("The server answered " + response.status + ".");
          return response.json();
        })
        .then(function (data) {
          errorBox.hidden = true;
          render(data);
        })
        .catch(function (error) {
          errorBox.textContent = "Could not refresh the transcript: " + error.message;
          errorBox.hidden = false;
        });
    }, delay || 0);
  }

  // The tracker checkpoints a live session's analytics row a few seconds after a change
  // (ANALYTICS_CHECKPOINT_SECONDS, 5 s by default): read it again once that has passed.
  var analyticsTimer = null;

  function analyticsLater() {
    if (analyticsTimer !== null) clearTimeout(analyticsTimer);
    analyticsTimer = setTimeout(function () {
      analyticsTimer = null;
      refetch(0);
    }, 6000);
  }

  // --- Live -------------------------------------------------------------------------------
  var liveBox = document.getElementById("ct-live");
  var liveText = document.getElementById("ct-live-text");
  var announce = el("p", { className: "visually-hidden", "aria-live": "polite" });
  root.appendChild(announce);

  function setLive(status, text) {
    liveBox.hidden = false;
    liveBox.dataset.status = status;
    liveText.textContent = status === "live" ? "Live: new messages stream in" : text;
  }

  function onChat(frame) {
    var node;
    switch (frame.type) {
      case "message":
        if (!nodes[frame.seq]) {
          putMessage({ seq: frame.seq, message_id: frame.message_id, role: frame.role, text: frame.text,
            status: frame.status || "complete", created_at: frame.created_at });
          count();
          announce.textContent = "New visitor message.";
        }
        break;
      case "reply.start":
        if (!nodes[frame.seq]) {
          putMessage({ seq: frame.seq, message_id: frame.message_id, role: "assistant", text: "", status: "streaming",
            created_at: new Date().toISOString() });
          count();
        }
        break;
      case "reply.delta":
        node = nodes[frame.seq];
        if (!node) {
          refetch(300); // its reply.start went missing
          break;
        }
        // `until`: how far into the reply's text this page has it (the stored text when the
        // page joined mid-reply). A gap is marked with "…" and filled by the re-read at the end.
        if (node.until === undefined) node.until = node.message.text.length;
        var offset = isNumber(frame.offset) ? frame.offset : node.until;
        if (offset > node.until) {
          node.message.text += " … ";
          node.until = offset;
        }
        var skip = node.until - offset;
        if (skip < frame.text.length) {
          node.message.text += frame.text.slice(skip);
          node.until = offset + frame.text.length;
          node.text.textContent = node.message.text;
        }
        break;
      case "reply.end":
        node = nodes[frame.seq];
        if (node) {
          Object.assign(node.message, {
            status: frame.status, provider: frame.provider, model: frame.model, ttft_ms: frame.ttft_ms,
            duration_ms: frame.duration_ms, cached: frame.cached, error: frame.error || "",
          });
          putMessage(node.message);
        }
        announce.textContent = "The assistant's reply " + (frame.status === "complete" ? "is complete." : frame.status + ".");
        refetch(800); // the stored text and provider calls
        analyticsLater();
        break;
      case "feedback.ack":
        refetch(500);
        break;
      case "ended":
        document.getElementById("ct-status").textContent = "closed";
        refetch(1500);
        break;
      default:
        break;
    }
  }

  function watch() {
    PA.liveSocket(root.dataset.ws, {
      status: setLive,
      open: function (socket) {
        socket.send(JSON.stringify({ type: "watch", session_id: root.dataset.sessionId }));
      },
      frame: function (frame) {
        if (frame.type === "watching") {
          refetch(0); // catch up with what happened before (or while away)
          if (!transcript.analytics) analyticsLater();
        }
        else if (frame.type === "chat" && frame.session_id === root.dataset.sessionId) onChat(frame.frame);
      },
    });
  }

  // --- Start ------------------------------------------------------------------------------
  Array.prototype.forEach.call(document.querySelectorAll("time[data-local]"), function (node) {
    node.textContent = PA.when(node.getAttribute("datetime"));
  });
  render(transcript);
  fetch(root.dataset.apiDefinitions, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (response) { return response.ok ? response.json() : { metrics: {} }; })
    .then(function (data) {
      definitions = data.metrics || {};
      Array.prototype.forEach.call(root.querySelectorAll("[data-def]"), function (node) {
        var text = definition(node.dataset.def);
        if (text) node.title = text;
      });
    })
    .catch(function () { /* labels without definitions */ });
  if (transcript.live) watch();
})();

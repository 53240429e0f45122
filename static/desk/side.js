/*
 * The open conversation's side panel (window.ParleyDesk.side): the visitor's details, what
 * analytics knows of the conversation and the visitor's earlier conversations. Text only, never
 * HTML; links only for http(s) addresses.
 */
(() => {
  "use strict";

  const desk = (window.ParleyDesk = window.ParleyDesk || {});
  const R = desk.render;
  const el = R.el;

  const $ = (id) => document.getElementById(id);
  const ui = {
    visitor: $("dk-visitor"),
    analyticsBox: $("dk-analytics-box"),
    analytics: $("dk-analytics"),
    earlier: $("dk-earlier"),
  };

  /** Fill the panel from a `conversation` frame; `open(sessionId)` opens an earlier conversation. */
  function render(conv, open) {
    const v = conv.visitor || {};
    const page = v.page_url ? R.safeLink(v.page_url, v.page_title || v.page_url) : v.page_title;
    R.facts(ui.visitor, [
      ["Name", v.name || "Anonymous visitor"],
      ["Email", v.email ? el("a", { href: "mailto:" + v.email, text: v.email }) : ""],
      ["Type", v.user_type ? v.user_type + (v.identified ? " (identified)" : " (not identified)") : ""],
      ["Page", page || ""],
      ["Locale", v.locale || ""],
      ["Conversation", conv.title || ""],
      ["Session", el("code", { text: conv.session_id })],
    ]);
    renderAnalytics(conv.analytics);
    ui.earlier.textContent = "";
    const earlier = conv.earlier_sessions || [];
    for (const item of earlier) {
      const button = el("button", { type: "button", className: "dk-link", "data-session": item.session_id }, [
        el("span", { text: item.title || "Untitled conversation" }),
        el("time", { datetime: item.created_at, text: R.when(item.created_at) }),
      ]);
      button.addEventListener("click", () => open(item.session_id));
      ui.earlier.append(el("li", null, [button]));
    }
    if (!earlier.length) ui.earlier.append(el("li", { className: "dk-empty", text: ui.earlier.dataset.empty }));
  }

  function sentimentLabel(value) {
    if (typeof value !== "number" || !isFinite(value)) return "no data";
    const word = value > 0.2 ? "positive" : value < -0.2 ? "negative" : "neutral";
    return word + " (" + value.toFixed(2) + ")";
  }

  function renderAnalytics(analytics) {
    ui.analyticsBox.hidden = !analytics || typeof analytics !== "object";
    if (ui.analyticsBox.hidden) return;
    const topics = Array.isArray(analytics.topics) ? analytics.topics.map(String) : [];
    const pairs = [
      ["Topics", topics.length ? el("ul", { className: "dk-tags" }, topics.map((t) => el("li", { text: t }))) : "none"],
      ["Sentiment", sentimentLabel(analytics.sentiment)],
    ];
    for (const [key, value] of Object.entries(analytics)) {
      if (key === "topics" || key === "sentiment" || value === null || value === undefined) continue;
      const label = key.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
      if (typeof value === "boolean") pairs.push([label, value ? "yes" : "no"]);
      else if (typeof value !== "object") pairs.push([label, String(value)]);
      else if (key === "feedback") pairs.push([label, (value.up || 0) + " up, " + (value.down || 0) + " down"]);
    }
    R.facts(ui.analytics, pairs);
  }

  desk.side = { render };
})();

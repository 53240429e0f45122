/*
 * The alerts banner of the staff dashboard (templates/analytics/dashboard.html).
 *
 * Reads the alerts firing now from the alerts app's JSON (`data-api` of #ca-alerts, served by
 * alerts/views.py: the dashboard page belongs to analytics, which knows nothing of alerts) on
 * load, every 30 s, and when the tab comes back into view. Each alert shows its rule, its value
 * against the threshold, since when it fires, and a link to its history. No inline script or
 * style, no innerHTML: every text from the server stays text.
 */
(function () {
  "use strict";

  var box = document.getElementById("ca-alerts");
  if (!box || !box.dataset.api) return;

  var REFRESH_MS = 30000;
  var WORDS = { ">": "above", ">=": "at or above", "<": "below", "<=": "at or below" };
  var dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined) return;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value);
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function item(alert) {
    var since = new Date(alert.fired_at);
    return el("li", { className: "ca-alert", "data-testid": "alert-" + alert.rule_id, title: alert.message }, [
      el("strong", { className: "ca-alert-name", text: alert.name }),
      ": ",
      el("span", { className: "ca-alert-value", text: alert.label + " " + alert.value_text }),
      " ",
      el("span", {
        className: "ca-alert-threshold",
        text: "(alerting " + (WORDS[alert.comparison] || alert.comparison) + " " + alert.threshold_text + ")",
      }),
      ", firing since ",
      el("time", { datetime: since.toISOString(), text: dateTime.format(since) }),
      " · ",
      el("a", { href: alert.history_url, text: "history" }),
    ]);
  }

  function render(data) {
    var alerts = data.alerts || [];
    box.replaceChildren();
    box.hidden = alerts.length === 0;
    box.dataset.count = String(data.count || 0);
    if (!alerts.length) return;
    var count = data.count || alerts.length;
    box.appendChild(el("h2", { className: "ca-alerts-title", text: count === 1 ? "1 alert firing" : count + " alerts firing" }));
    box.appendChild(el("ul", { className: "ca-alerts-list" }, alerts.map(item)));
    box.appendChild(el("p", { className: "ca-alerts-more" }, [el("a", { href: data.history_url, text: "Alert history" })]));
  }

  function load() {
    return fetch(box.dataset.api, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data) render(data);
        box.dataset.loaded = "1";
      })
      .catch(function () { /* the next refresh tries again */ });
  }

  load();
  setInterval(load, REFRESH_MS);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") load();
  });
})();

/*
 * Helpers shared by the analytics dashboard and transcript pages (window.ParleyAnalytics):
 * building DOM nodes (text only, never HTML), formatting numbers by metric unit (`formatUnit`,
 * the pages' one number formatter; the report's is analytics/reports/format.py), and the
 * /ws/analytics/ socket with reconnection backoff.
 */
(function () {
  "use strict";

  var NO_DATA = "no data";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "text") node.textContent = value;
        else if (key === "className") node.className = value;
        else node.setAttribute(key, value === true ? "" : value);
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  var integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  var oneDecimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  var twoDecimals = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
  var compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

  function money(value) {
    if (!isNumber(value)) return NO_DATA;
    var digits = value !== 0 && Math.abs(value) < 1 ? 4 : 2;
    return "$" + value.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: digits });
  }

  /** A human wait in ms as people read it: "850 ms", "42.5 s", "4 min 05 s", "2 h 07 min" (as the report). */
  function duration(ms) {
    if (ms < 1000) return integer.format(ms) + " ms";
    var seconds = ms / 1000;
    if (seconds < 60) return oneDecimal.format(seconds) + " s";
    var whole = Math.round(seconds);
    if (whole < 3600) return Math.floor(whole / 60) + " min " + String(whole % 60).padStart(2, "0") + " s";
    var minutes = Math.round(seconds / 60);
    return integer.format(Math.floor(minutes / 60)) + " h " + String(minutes % 60).padStart(2, "0") + " min";
  }

  /** A value of a metric with `unit` (analytics.metrics.Unit); "no data" for null, never 0. */
  function formatUnit(unit, value) {
    if (!isNumber(value)) return NO_DATA;
    switch (unit) {
      case "count": return integer.format(value);
      case "ms": return value >= 10000 ? oneDecimal.format(value / 1000) + " s" : integer.format(value) + " ms";
      case "duration": return duration(value);
      case "percent": return oneDecimal.format(value) + " %";
      case "usd": return money(value);
      case "rating": return twoDecimals.format(value) + " / 5";
      case "score": return integer.format(value);
      case "tokens": return value >= 100000 ? compact.format(value) : integer.format(value);
      default: return twoDecimals.format(value);
    }
  }

  var dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  var timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

  function when(iso) {
    return iso ? dateTime.format(new Date(iso)) : "";
  }

  function clock(date) {
    return timeOnly.format(date);
  }

  /**
   * Keep a /ws/analytics/ socket open: `handlers.open(socket, reconnected)`, `handlers.frame(frame)`,
   * `handlers.status(state, text)` with state live | reconnecting | off. Reconnects with
   * exponential backoff (1 s to 30 s, jittered); gives up on 4401 (signed out) and 4403 (not staff).
   */
  function liveSocket(path, handlers) {
    var attempts = 0;

    function connect() {
      var scheme = location.protocol === "https:" ? "wss:" : "ws:";
      var socket;
      try {
        socket = new WebSocket(scheme + "//" + location.host + path);
      } catch (error) {
        retry();
        return;
      }
      socket.addEventListener("open", function () {
        var reconnected = attempts > 0;
        attempts = 0;
        handlers.status("live", "Live");
        if (handlers.open) handlers.open(socket, reconnected);
      });
      socket.addEventListener("message", function (event) {
        var frame;
        try {
          frame = JSON.parse(event.data);
        } catch (error) {
          return;
        }
        handlers.frame(frame, socket);
      });
      socket.addEventListener("close", function (event) {
        if (event.code === 4401) {
          handlers.status("off", "Signed out: sign in again for live updates");
        } else if (event.code === 4403) {
          handlers.status("off", "Live updates refused (4403): staff only, from this site's own address");
        } else {
          retry();
        }
      });
    }

    function retry() {
      attempts += 1;
      var delay = Math.min(30000, 1000 * Math.pow(2, attempts - 1)) * (0.75 + Math.random() * 0.5);
      handlers.status("reconnecting", "Reconnecting in " + Math.max(1, Math.round(delay / 1000)) + " s…");
      setTimeout(connect, delay);
    }

    connect();
  }

  window.ParleyAnalytics = {
    NO_DATA: NO_DATA,
    el: el,
    isNumber: isNumber,
    formatUnit: formatUnit,
    compact: compact,
    when: when,
    clock: clock,
    liveSocket: liveSocket,
  };
})();

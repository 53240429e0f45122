/*
 * Parley staff dashboard (templates/analytics/dashboard.html).
 *
 * Numbers come from the JSON API under /admin/chat-analytics/api/ (the same selectors as the
 * weekly report and the exports); live events come from /ws/analytics/. The socket moves the
 * "Live now" card and the session and message counts at once, and triggers a re-read of the
 * snapshot at most every 2 s; everything is re-read every 30 s in any case, because the channel
 * layer may drop events. No inline script, no innerHTML with data: visitor text stays text.
 */
(function () {
  "use strict";

  var root = document.getElementById("chat-analytics");
  if (!root) return;

  var DEFINITIONS = JSON.parse(document.getElementById("ca-definitions").textContent);
  var RANGES = JSON.parse(document.getElementById("ca-ranges").textContent);
  var DEFAULT_RANGE = root.dataset.defaultRange;
  var FULL_REFRESH_MS = 30000;
  var SNAPSHOT_MIN_INTERVAL_MS = 2000;
  var FEED_MAX = 15;
  var CHART_MISSING = "The charts need Chart.js (static/vendor/chart.umd.js), which is missing: run `make vendor`.";

  var PALETTE = ["#417690", "#e0883a", "#4caf7d", "#c0504d", "#8064a2", "#2fa4b5", "#b8a230", "#d16ba5", "#7f8c8d"];
  var USER_TYPES = { anonymous: "Anonymous", client: "Client", provider: "Provider" };

  var state = readStateFromURL();
  var breakdownDefinitions = {};
  var charts = {};
  var generation = 0; // bumps when the filters change: answers for old filters are dropped
  var lastPeriod = null;
  // Live counts seen on the socket that the rollups (refreshed about once a minute) may not
  // include yet; each re-read subtracts what the rollups caught up with.
  var pending = { sessions: 0, messages: 0 };
  var base = { sessions: null, messages: null };

  // --- Small helpers ---------------------------------------------------------------------
  var PA = window.ParleyAnalytics;
  var el = PA.el;
  var isNumber = PA.isNumber;
  var compact = PA.compact;
  var when = PA.when;
  var NO_DATA = PA.NO_DATA;

  function definition(key) {
    var metric = DEFINITIONS[key];
    return metric ? metric.label + ": " + metric.definition : "";
  }

  // Every number on the page goes through PA.formatUnit, by the unit of the metric it is (or a
  // unit named outright for the numbers of a table row): one formatter, as in the report.
  function format(key, value) {
    return PA.formatUnit(DEFINITIONS[key] ? DEFINITIONS[key].unit : "ratio", value);
  }

  function count(value) {
    return PA.formatUnit("count", value);
  }

  // The headline cards: the metrics the server's registry (analytics.metrics) gives a card
  // number, in that order. Metrics without a section (live_sessions, waiting_now,
  // longest_wait_ms) are read live: the snapshot's and the socket's `live` numbers.
  var CARDS = Object.keys(DEFINITIONS).filter(function (key) {
    return isNumber(DEFINITIONS[key].card);
  }).sort(function (a, b) {
    return DEFINITIONS[a].card - DEFINITIONS[b].card;
  });

  var dayLabel = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });

  function shortDay(isoDate) {
    return dayLabel.format(new Date(isoDate + "T00:00:00Z"));
  }

  function localToday() {
    var now = new Date();
    var month = String(now.getMonth() + 1).padStart(2, "0");
    return now.getFullYear() + "-" + month + "-" + String(now.getDate()).padStart(2, "0");
  }

  function transcriptURL(sessionId) {
    return root.dataset.transcript.replace("00000000-0000-0000-0000-000000000000", sessionId);
  }

  // Topics are taxonomy keys ("bug_report") or knowledge sections ("Page › Question"): charts
  // and tables show the question, shortened; the full name is in the tooltip.
  function shortTopic(name) {
    var parts = String(name).split(" › ");
    var text = parts[parts.length - 1].replace(/_/g, " ");
    return text.length > 26 ? text.slice(0, 25) + "…" : text;
  }

  var shortWhen = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

  function stamp(iso) {
    return iso ? el("time", { datetime: iso, title: when(iso), text: shortWhen.format(new Date(iso)) }) : "";
  }

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  // --- Filters and the URL -----------------------------------------------------------------
  function readStateFromURL() {
    var query = new URLSearchParams(location.search);
    var next = {
      range: query.get("range") || DEFAULT_RANGE,
      start_date: query.get("start_date") || "",
      end_date: query.get("end_date") || "",
      user_type: query.get("user_type") || "",
      provider: query.get("provider") || "",
      source: query.get("source") || "",
    };
    if (next.start_date || next.end_date) next.range = "custom";
    if (next.range !== "custom" && RANGES.indexOf(next.range) === -1) next.range = DEFAULT_RANGE;
    return next;
  }

  function queryFor(current) {
    var query = new URLSearchParams();
    if (current.range === "custom") {
      if (current.start_date) query.set("start_date", current.start_date);
      if (current.end_date) query.set("end_date", current.end_date);
    } else {
      query.set("range", current.range);
    }
    if (current.user_type) query.set("user_type", current.user_type);
    if (current.provider) query.set("provider", current.provider);
    if (current.source) query.set("source", current.source);
    return query;
  }

  var form = document.getElementById("ca-filters");
  var custom = document.getElementById("ca-custom");

  function showStateInForm() {
    Array.prototype.forEach.call(form.elements.range, function (radio) {
      radio.checked = radio.value === state.range;
    });
    custom.hidden = state.range !== "custom";
    form.elements.start_date.value = state.start_date;
    form.elements.end_date.value = state.end_date;
    form.elements.user_type.value = state.user_type;
    form.elements.provider.value = state.provider;
    form.elements.source.value = state.source;
  }

  function stateFromForm() {
    var range = form.elements.range.value || DEFAULT_RANGE;
    var next = {
      range: range,
      start_date: range === "custom" ? form.elements.start_date.value : "",
      end_date: range === "custom" ? form.elements.end_date.value : "",
      user_type: form.elements.user_type.value,
      provider: form.elements.provider.value,
      source: form.elements.source.value,
    };
    if (range === "custom" && !next.start_date && !next.end_date && lastPeriod) {
      next.start_date = lastPeriod.start; // switching to custom starts from the dates shown
      next.end_date = lastPeriod.end;
    }
    return next;
  }

  function applyFilters(push) {
    var next = stateFromForm();
    if (next.range === "custom" && next.start_date && next.end_date && next.start_date > next.end_date) {
      showError("The start date is after the end date.");
      return;
    }
    state = next;
    showStateInForm();
    var url = location.pathname + "?" + queryFor(state).toString();
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
    generation += 1;
    pending = { sessions: 0, messages: 0 };
    base = { sessions: null, messages: null };
    refreshAll();
  }

  form.addEventListener("change", function (event) {
    if (event.target.name === "range") {
      custom.hidden = event.target.value !== "custom";
      if (event.target.value === "custom" && lastPeriod && !form.elements.start_date.value) {
        form.elements.start_date.value = lastPeriod.start;
        form.elements.end_date.value = lastPeriod.end;
      }
    }
    // Dates apply with the Apply button (or Enter), so a half-typed date is not fetched.
    if (event.target.type !== "date") applyFilters(true);
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    applyFilters(true);
  });
  window.addEventListener("popstate", function () {
    state = readStateFromURL();
    showStateInForm();
    generation += 1;
    pending = { sessions: 0, messages: 0 };
    base = { sessions: null, messages: null };
    refreshAll();
  });

  // --- Fetching ----------------------------------------------------------------------------
  var errorBox = document.getElementById("ca-error");

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  function getJSON(url) {
    var full = url + (url.indexOf("?") === -1 ? "?" : "&") + queryFor(state).toString();
    return fetch(full, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (response) {
      if (response.status === 401) {
        location.assign(root.dataset.login + "?next=" + encodeURIComponent(location.pathname + location.search));
        throw new Error("Signed out.");
      }
      return response.json().then(function (body) {
        if (!response.ok) {
          var detail = body && body.error ? body.error : "The server answered " + response.status + ".";
          throw new Error(detail);
        }
        return body;
      });
    });
  }

  function guarded(promise, apply) {
    var mine = generation;
    return promise.then(function (data) {
      if (mine === generation) apply(data);
    });
  }

  function refreshAll() {
    var mine = generation;
    return Promise.all([
      guarded(getJSON(root.dataset.api), renderSnapshot),
      guarded(getJSON(root.dataset.apiSummary), renderSummary),
      guarded(getJSON(root.dataset.apiDaily), renderDaily),
      guarded(getJSON(root.dataset.apiCost), renderCost),
      guarded(getJSON(root.dataset.apiFeatures), renderFeatures),
      guarded(getJSON(root.dataset.apiTables), renderTables),
    ]).then(function () {
      if (mine === generation) showError(window.Chart ? "" : CHART_MISSING);
      root.dataset.loaded = String(mine);
    }, function (error) {
      if (mine === generation) showError("Could not refresh the dashboard: " + error.message);
    });
  }

  var snapshotTimer = null;
  var lastSnapshotAt = 0;

  function requestSnapshot() {
    if (snapshotTimer !== null) return;
    var wait = Math.max(0, lastSnapshotAt + SNAPSHOT_MIN_INTERVAL_MS - Date.now());
    snapshotTimer = setTimeout(function () {
      snapshotTimer = null;
      lastSnapshotAt = Date.now();
      guarded(getJSON(root.dataset.api), renderSnapshot).catch(function () {
        /* the 30 s refresh tries again */
      });
    }, wait);
  }

  // --- Headline cards ----------------------------------------------------------------------
  var cards = {};

  function buildCards() {
    var holder = document.getElementById("ca-kpis");
    CARDS.forEach(function (key) {
      var metric = DEFINITIONS[key];
      var defId = "ca-def-" + key;
      var value = el("p", { className: "ca-kpi-value", "data-testid": "kpi-" + key, text: "…" });
      var change = el("p", { className: "ca-kpi-change" });
      // A number never read without another (AI CSAT and its coverage) shows it on the card.
      var companionKey = metric.companion && DEFINITIONS[metric.companion] ? metric.companion : null;
      var companion = companionKey ? el("p", {
        className: "ca-kpi-companion", "data-testid": "kpi-companion-" + key, "data-metric": companionKey,
        title: definition(companionKey),
      }) : null;
      var card = el("div", {
        className: "ca-kpi", "data-kpi": key, title: metric.definition, role: "group",
        "aria-labelledby": "ca-label-" + key, "aria-describedby": defId,
      }, [
        el("h3", { className: "ca-kpi-label", id: "ca-label-" + key, text: metric.label }),
        value,
        companion,
        change,
        el("p", { className: "visually-hidden", id: defId, text: metric.definition }),
      ]);
      if (isLive(key)) {
        card.classList.add("ca-kpi-live");
        value.setAttribute("aria-live", "polite");
        value.setAttribute("aria-atomic", "true");
        change.textContent = key === "live_sessions" ? "open sessions with recent visitor activity" : "right now";
      }
      holder.appendChild(card);
      cards[key] = { card: card, value: value, change: change, companion: companion };
    });
  }

  function setValue(key, value) {
    var card = cards[key];
    if (!card) return;
    var text = format(key, value);
    var previous = card.value.textContent;
    if (previous !== text) {
      card.value.textContent = text;
      if (previous !== "…") {
        // A changed number is highlighted for a moment (not the first one).
        card.card.classList.remove("ca-flash");
        void card.card.offsetWidth; // restarts the animation
        card.card.classList.add("ca-flash");
      }
    }
    card.value.classList.toggle("ca-no-data", text === NO_DATA);
    card.value.dataset.value = isNumber(value) ? String(value) : "";
  }

  function setChange(key, change, previousPeriod) {
    var card = cards[key];
    if (!card || isLive(key)) return;
    var node = card.change;
    node.textContent = "";
    node.className = "ca-kpi-change";
    if (!change || !change.direction) {
      node.classList.add("ca-neutral");
      node.textContent = "no data to compare";
      node.title = "This period or the previous one has no data for this metric.";
      return;
    }
    var better = DEFINITIONS[key] ? DEFINITIONS[key].higher_is_better : null;
    var arrow = { up: "▲", down: "▼", flat: "▶" }[change.direction];
    var tone = "ca-neutral";
    if (change.direction !== "flat" && better !== null && better !== undefined) {
      tone = (change.direction === "up") === better ? "ca-good" : "ca-bad";
    }
    node.classList.add(tone);
    var amount;
    if (change.direction === "flat") amount = "no change";
    else if (isNumber(change.pct)) amount = (change.pct > 0 ? "+" : "") + PA.formatUnit("percent", change.pct);
    else amount = "up from 0";
    var words = { up: "up", down: "down", flat: "flat" }[change.direction];
    node.appendChild(el("span", { "aria-hidden": "true", text: arrow + " " }));
    node.appendChild(document.createTextNode(amount));
    node.appendChild(el("span", { className: "visually-hidden", text: " (" + words + (tone === "ca-good" ? ", good" : tone === "ca-bad" ? ", bad" : "") + ")" }));
    node.dataset.direction = change.direction;
    var previous = format(key, change.previous);
    var span = previousPeriod ? previousPeriod.start + " – " + previousPeriod.end : "the previous period";
    node.title = "vs " + previous + " in " + span;
  }

  function liveApplies() {
    // Events carry no visitor type, and visitor messages no provider: with those filters the
    // cards wait for the re-read. A custom period counts live events only if it includes today.
    if (state.user_type || state.provider || state.source) return false;
    return state.range !== "custom" || !state.end_date || state.end_date >= localToday();
  }

  function showLiveCounts() {
    ["sessions", "messages"].forEach(function (key) {
      if (base[key] === null) return;
      setValue(key, base[key] + pending[key]);
    });
  }

  function isLive(key) {
    return Boolean(DEFINITIONS[key] && DEFINITIONS[key].live);
  }

  function showLiveNumbers(live) {
    Object.keys(live || {}).forEach(function (key) {
      if (isNumber(live[key])) setValue(key, live[key]);
    });
  }

  function renderSnapshot(data) {
    lastPeriod = data.period;
    var metrics = data.metrics || {};
    CARDS.forEach(function (key) {
      var companion = cards[key] && cards[key].companion;
      if (companion) {
        var other = companion.dataset.metric;
        companion.textContent = DEFINITIONS[other].label + ": " + format(other, metrics[other]);
        companion.dataset.value = isNumber(metrics[other]) ? String(metrics[other]) : "";
      }
      if (isLive(key) || key === "sessions" || key === "messages") return;
      setValue(key, metrics[key]);
      setChange(key, (data.changes || {})[key], data.previous_period);
    });
    ["sessions", "messages"].forEach(function (key) {
      var value = metrics[key];
      if (isNumber(value) && base[key] !== null && value > base[key]) {
        pending[key] = Math.max(0, pending[key] - (value - base[key])); // the rollups caught up
      }
      base[key] = isNumber(value) ? value : null;
      setValue(key, base[key] === null ? null : base[key] + pending[key]);
      setChange(key, (data.changes || {})[key], data.previous_period);
    });
    showLiveNumbers(data.live);
    if (isNumber(data.active_sessions)) setValue("live_sessions", data.active_sessions);
    document.getElementById("ca-period").textContent = periodText(data);
    var updated = document.getElementById("ca-updated");
    updated.textContent = PA.clock(new Date(data.timestamp));
    updated.setAttribute("datetime", data.timestamp);
    updateExports(data.period);
  }

  function periodText(data) {
    var period = data.period;
    var text = period.start === period.end ? period.start : period.start + " to " + period.end;
    text += " (" + period.days + (period.days === 1 ? " day" : " days") + ")";
    var filters = data.filters || {};
    if (filters.user_type) text += " · " + (USER_TYPES[filters.user_type] || filters.user_type) + " visitors";
    if (filters.provider) text += " · " + filters.provider;
    if (filters.source) text += " · " + sourceName(filters.source);
    return text;
  }

  function updateExports(period) {
    var query = new URLSearchParams();
    query.set("start_date", period.start);
    query.set("end_date", period.end);
    if (state.user_type) query.set("user_type", state.user_type);
    if (state.source) query.set("source", state.source);
    Array.prototype.forEach.call(document.querySelectorAll("a[data-export]"), function (link) {
      link.href = link.pathname + "?" + query.toString();
    });
  }

  // --- Charts ------------------------------------------------------------------------------
  function setupChartDefaults() {
    if (!window.Chart) return false;
    Chart.defaults.color = cssVar("--body-quiet-color", "#666");
    Chart.defaults.borderColor = cssVar("--hairline-color", "#e8e8e8");
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.plugins.legend.labels.boxWidth = 12;
    if (window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches) {
      Chart.defaults.animation = false;
    }
    return true;
  }

  // The tooltip's footer shows the hovered series' definition.
  function definitionFooter(items) {
    if (!items.length) return "";
    var dataset = items[0].dataset;
    return dataset.definitionKey ? wrap(definition(dataset.definitionKey)) : "";
  }

  function wrap(text) {
    var lines = [];
    var line = "";
    text.split(" ").forEach(function (word) {
      if ((line + " " + word).length > 60 && line) {
        lines.push(line);
        line = word;
      } else {
        line = line ? line + " " + word : word;
      }
    });
    if (line) lines.push(line);
    return lines;
  }

  function draw(id, type, data, options, empty) {
    var canvas = document.getElementById(id);
    if (!canvas || !window.Chart) return;
    var figure = canvas.closest("figure");
    var note = figure.querySelector(".ca-empty");
    if (!note) {
      note = el("p", { className: "ca-empty", text: "No data for this period." });
      figure.appendChild(note);
    }
    note.hidden = !empty;
    var chart = charts[id];
    if (chart) {
      chart.data.labels = data.labels;
      // Keep dataset objects (and their colours) when the series are the same.
      if (chart.data.datasets.length === data.datasets.length) {
        data.datasets.forEach(function (dataset, index) {
          Object.assign(chart.data.datasets[index], dataset);
        });
      } else {
        chart.data.datasets = data.datasets;
      }
      chart.update("none");
      return;
    }
    options = options || {};
    options.plugins = Object.assign({ tooltip: { callbacks: { footer: definitionFooter } } }, options.plugins || {});
    charts[id] = new Chart(canvas, { type: type, data: data, options: options });
  }

  function series(key, rows, color, extra) {
    return Object.assign({
      label: DEFINITIONS[key] ? DEFINITIONS[key].label : key,
      definitionKey: key,
      data: rows.map(function (row) { return isNumber(row[key]) ? row[key] : null; }),
      borderColor: color,
      backgroundColor: color,
      tension: 0.25,
      pointRadius: rows.length > 31 ? 0 : 3,
      spanGaps: false,
    }, extra || {});
  }

  function allEmpty(datasets) {
    return datasets.every(function (dataset) {
      return dataset.data.every(function (value) { return !isNumber(value) || value === 0; });
    });
  }

  function msAxis() {
    return { beginAtZero: true, ticks: { callback: function (value) { return format("avg_response_time_ms", value); } } };
  }

  function renderDaily(data) {
    var rows = data.daily || [];
    var labels = rows.map(function (row) { return shortDay(row.date); });

    var activity = [
      series("sessions", rows, PALETTE[0], { type: "bar", yAxisID: "y", order: 2 }),
      series("messages", rows, PALETTE[1], { yAxisID: "y1", order: 1 }),
    ];
    draw("chart-activity", "line", { labels: labels, datasets: activity }, {
      interaction: { mode: "index", intersect: false },
      scales: {
        y: { beginAtZero: true, title: { display: true, text: "Sessions" }, ticks: { precision: 0 } },
        y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "Messages" }, ticks: { precision: 0 } },
      },
    }, allEmpty(activity));

    var rateKeys = ["feedback_rate", "satisfaction_rate", "resolution_rate", "escalation_rate", "engagement_rate"];
    var rates = rateKeys.map(function (key, index) { return series(key, rows, PALETTE[index]); });
    draw("chart-rates", "line", { labels: labels, datasets: rates }, {
      interaction: { mode: "index", intersect: false },
      scales: { y: { min: 0, max: 100, ticks: { callback: function (value) { return PA.formatUnit("percent", value); } } } },
    }, rates.every(function (d) { return d.data.every(function (v) { return !isNumber(v); }); }));

    var latencyKeys = ["p50_response_time_ms", "p95_response_time_ms", "p50_ttft_ms", "p95_ttft_ms"];
    var latency = latencyKeys.map(function (key, index) {
      return series(key, rows, PALETTE[index < 2 ? index : index + 2], index >= 2 ? { borderDash: [6, 4] } : {});
    });
    draw("chart-latency", "line", { labels: labels, datasets: latency }, {
      interaction: { mode: "index", intersect: false },
      scales: { y: msAxis() },
    }, latency.every(function (d) { return d.data.every(function (v) { return !isNumber(v); }); }));
  }

  function renderCost(data) {
    var rows = data.daily || [];
    var cost = [
      series("cost_usd", rows, PALETTE[2], { type: "bar", yAxisID: "y" }),
      series("cost_per_session", rows, PALETTE[4], { yAxisID: "y1" }),
    ];
    draw("chart-cost", "bar", { labels: rows.map(function (row) { return shortDay(row.date); }), datasets: cost }, {
      interaction: { mode: "index", intersect: false },
      scales: {
        y: { beginAtZero: true, ticks: { callback: function (value) { return format("cost_usd", value); } } },
        y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, ticks: { callback: function (value) { return format("cost_usd", value); } } },
      },
      plugins: { tooltip: { callbacks: { footer: definitionFooter, label: function (item) {
        return item.dataset.label + ": " + format("cost_usd", item.raw);
      } } } },
    }, allEmpty(cost));

    // Unpriced models are labelled and left without a bar, never drawn as $0.
    var models = (data.models || []).slice().sort(function (a, b) { return (b.cost_usd || 0) - (a.cost_usd || 0); });
    var labels = models.map(function (row) {
      var name = row.model + (row.feature !== "chat_reply" ? " (" + row.feature + ")" : "");
      if (name.length > 24) name = name.slice(0, 23) + "…";
      return row.cost_usd === null ? [name, "price unknown"] : name;
    });
    var dataset = {
      label: DEFINITIONS.cost_usd.label, definitionKey: "cost_usd",
      data: models.map(function (row) { return row.cost_usd; }),
      backgroundColor: models.map(function (_, index) { return PALETTE[index % PALETTE.length]; }),
    };
    draw("chart-models", "bar", { labels: labels, datasets: [dataset] }, {
      indexAxis: "y",
      plugins: { legend: { display: false }, tooltip: { callbacks: { footer: definitionFooter, label: function (item) {
        var row = models[item.dataIndex];
        var cost = row.cost_usd === null ? "price unknown" : format("cost_usd", row.cost_usd);
        return row.provider + ": " + cost + " · " + count(row.calls) + " calls · " + compact.format(row.input_tokens + row.output_tokens) + " tokens";
      } } } },
      scales: { x: { beginAtZero: true, ticks: { callback: function (value) { return format("cost_usd", value); } } } },
    }, models.length === 0);
  }

  function renderSummary(data) {
    var metrics = data.metrics || {};
    var thumbs = [metrics.thumbs_up, metrics.thumbs_down];
    draw("chart-satisfaction", "doughnut", {
      labels: [DEFINITIONS.thumbs_up.label, DEFINITIONS.thumbs_down.label],
      datasets: [{ label: "Replies", data: thumbs, backgroundColor: ["#4caf7d", "#c0504d"], definitionKey: "satisfaction_rate" }],
    }, { plugins: { legend: { position: "bottom" } } }, !(thumbs[0] || thumbs[1]));

    var providers = data.providers || [];
    var providerData = [
      { label: "Calls", definitionKey: "provider_success_rate", data: providers.map(function (row) { return row.calls; }), backgroundColor: PALETTE[0] },
      { label: "Failovers", definitionKey: "failovers", data: providers.map(function (row) { return row.failovers; }), backgroundColor: PALETTE[3], yAxisID: "y1" },
    ];
    draw("chart-providers", "bar", { labels: providers.map(function (row) { return row.provider; }), datasets: providerData }, {
      interaction: { mode: "index", intersect: false },
      scales: {
        y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "Calls" } },
        y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, ticks: { precision: 0 }, title: { display: true, text: "Failovers" } },
      },
      plugins: { tooltip: { callbacks: { footer: definitionFooter, afterBody: function (items) {
        var row = providers[items[0].dataIndex];
        return [
          "Success rate: " + format("provider_success_rate", row.success_rate),
          "Failover rate: " + format("failover_rate", row.failover_rate),
          "Average latency: " + format("avg_response_time_ms", row.avg_latency_ms),
        ];
      } } } },
    }, providers.length === 0);

    var hours = data.peak_hours || [];
    var hourData = [{ label: "Sessions", data: hours.map(function (row) { return row.sessions; }), backgroundColor: PALETTE[0] }];
    draw("chart-hours", "bar", { labels: hours.map(function (row) { return String(row.hour).padStart(2, "0"); }), datasets: hourData }, {
      plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
    }, allEmpty(hourData));
    renderHeatmap(data.peak_heatmap);

    topicChart("chart-topics", data.top_topics || [], PALETTE[0]);
    topicChart("chart-issues", data.common_issues || [], PALETTE[3]);

    renderIntelligence(data);

    var types = data.user_types || [];
    draw("chart-user-types", "doughnut", {
      labels: types.map(function (row) { return USER_TYPES[row.user_type] || row.user_type; }),
      datasets: [{ label: "Sessions", data: types.map(function (row) { return row.sessions; }), backgroundColor: PALETTE.slice(0, types.length) }],
    }, { plugins: { legend: { position: "bottom" } } }, types.length === 0);
  }

  // --- Conversation intelligence: sentiment, trajectory, how right the AI is -----------------
  var SENTIMENTS = ["negative", "neutral", "positive"];
  var SENTIMENT_COLORS = { negative: "#c0504d", neutral: "#7f8c8d", positive: "#4caf7d", unscored: "#d9d9d9" };

  function renderIntelligence(data) {
    var metrics = data.metrics || {};
    var sentiment = data.sentiment || { messages: {}, conversations: {} };
    var labels = SENTIMENTS.concat(["unscored"]);
    var messageCounts = labels.map(function (name) { return sentiment.messages[name] || 0; });
    var conversationCounts = labels.map(function (name) { return name === "unscored" ? null : sentiment.conversations[name] || 0; });
    draw("chart-sentiment", "bar", {
      labels: labels.map(function (name) { return name.charAt(0).toUpperCase() + name.slice(1); }),
      datasets: [
        { label: "Visitor messages", definitionKey: "negative_message_rate", data: messageCounts, backgroundColor: labels.map(function (name) { return SENTIMENT_COLORS[name]; }) },
        { label: "Analysed conversations", definitionKey: "negative_conversation_rate", data: conversationCounts, backgroundColor: PALETTE[0] },
      ],
    }, { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } }, plugins: { tooltip: { callbacks: { footer: definitionFooter } } } },
    messageCounts.concat(conversationCounts).every(function (value) { return !value; }));

    fillTable("ca-trajectory", [
      "avg_opening_sentiment", "avg_closing_sentiment", "opened_negative_rate", "recovered_rate",
      "avg_sentiment", "unscored_message_rate", "negative_conversation_rate", "follow_up_sessions",
    ].filter(function (key) { return DEFINITIONS[key]; }).map(function (key) {
      return { key: key };
    }), [
      { value: function (row) { return el("span", { title: DEFINITIONS[row.key].definition, text: DEFINITIONS[row.key].label }); } },
      { value: function (row) { return format(row.key, metrics[row.key]); }, className: "num" },
    ], "No data for this period.", function (row) { return { "data-metric": row.key }; });

    renderSources(data.sources || []);

    fillTable("ca-prediction", data.prediction_quality || [], [
      { value: function (row) { return row.label; } },
      { value: function (row) { return count(row.n); }, className: "num" },
      { value: function (row) { return count(row.tp); }, className: "num" },
      { value: function (row) { return count(row.fp); }, className: "num" },
      { value: function (row) { return count(row.fn); }, className: "num" },
      { value: function (row) { return count(row.tn); }, className: "num" },
      { value: function (row) { return format(row.predictor + "_accuracy", row.accuracy); }, className: "num" },
      { value: function (row) { return format(row.predictor + "_precision", row.precision); }, className: "num" },
      { value: function (row) { return format(row.predictor + "_recall", row.recall); }, className: "num" },
      { value: function (row) { return format(row.predictor + "_f1", row.f1); }, className: "num" },
    ], "No prediction to check in this period.", function (row) { return { "data-predictor": row.predictor }; });
  }

  var SOURCE_NAMES = { widget: "Widget", api: "API", "import:fb-grouped": "Imported (Facebook)", "import:jsonl": "Imported (JSON lines)", "import:csv": "Imported (CSV)" };

  function sourceName(source) {
    return SOURCE_NAMES[source] || source;
  }

  function renderSources(rows) {
    // One column per source, one row per metric: the numbers of each source side by side.
    var table = document.getElementById("ca-sources");
    var head = table.tHead.rows[0];
    while (head.cells.length > 1) head.deleteCell(1);
    rows.forEach(function (row) {
      head.appendChild(el("th", { scope: "col", className: "num", "data-source": row.source, text: sourceName(row.source) }));
    });
    var keys = rows.length ? Object.keys(rows[0].metrics).filter(function (key) { return DEFINITIONS[key]; }) : [];
    var lines = keys.map(function (key) { return { key: key }; });
    if (rows.length) lines.push({ key: "top_topics" });
    fillTable("ca-sources", lines, [{ value: function (line) {
      if (line.key === "top_topics") return "Top topics";
      return el("span", { title: DEFINITIONS[line.key].definition, text: DEFINITIONS[line.key].label });
    } }].concat(rows.map(function (row) {
      return { className: "num", value: function (line) {
        if (line.key === "top_topics") return row.top_topics.map(function (item) { return shortTopic(item.topic); }).join(", ") || "—";
        return format(line.key, row.metrics[line.key]);
      } };
    })), "No sessions in this period.", function (line) { return { "data-metric": line.key }; });
  }

  function topicChart(id, rows, color) {
    var datasets = [{ label: "Sessions", data: rows.map(function (row) { return row.sessions; }), backgroundColor: color }];
    draw(id, "bar", { labels: rows.map(function (row) { return shortTopic(row.topic); }), datasets: datasets }, {
      indexAxis: "y",
      plugins: { legend: { display: false }, tooltip: { callbacks: { title: function (items) {
        return rows[items[0].dataIndex].topic;
      } } } },
      scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
    }, rows.length === 0);
  }

  function renderHeatmap(heat) {
    var table = document.getElementById("ca-heatmap");
    if (!heat) return;
    var head = table.tHead;
    var body = table.tBodies[0];
    head.textContent = "";
    body.textContent = "";
    var headRow = el("tr", null, [el("td")]);
    for (var hour = 0; hour < 24; hour += 1) {
      headRow.appendChild(el("th", { scope: "col", text: String(hour).padStart(2, "0") }));
    }
    head.appendChild(headRow);
    var max = 0;
    heat.sessions.forEach(function (row) { row.forEach(function (value) { max = Math.max(max, value); }); });
    heat.weekdays.forEach(function (day, index) {
      var row = el("tr", null, [el("th", { scope: "row", text: day })]);
      heat.sessions[index].forEach(function (value, hourIndex) {
        var cell = el("td", { title: day + " " + String(hourIndex).padStart(2, "0") + ":00 — " + value + " sessions", text: value ? String(value) : "" });
        var share = max ? value / max : 0;
        cell.style.backgroundColor = "rgba(65, 118, 144, " + (0.06 + 0.94 * share).toFixed(3) + ")";
        if (share > 0.55) cell.classList.add("ca-hot");
        row.appendChild(cell);
      });
      body.appendChild(row);
    });
    var figure = table.closest("figure");
    var note = figure.querySelector(".ca-empty");
    if (!note) {
      note = el("p", { className: "ca-empty", text: "No data for this period." });
      figure.appendChild(note);
    }
    note.hidden = max > 0;
  }

  // --- Tables ------------------------------------------------------------------------------
  function sessionLink(row) {
    var label = row.title || "Untitled session " + row.session_id.slice(0, 8);
    return el("a", { href: transcriptURL(row.session_id), text: label, title: "Transcript of session " + row.session_id });
  }

  function statusText(row) {
    var parts = [row.status === "active" ? "open" : "closed"];
    if (row.resolution) parts.push(row.resolution);
    if (row.escalated) parts.push("escalated");
    return parts.join(" · ");
  }

  function cell(content, className) {
    var td = el("td", className ? { className: className } : null);
    if (content === null || content === undefined || content === "") td.textContent = "";
    else if (typeof content === "string") td.textContent = content;
    else td.appendChild(content);
    return td;
  }

  function rating(value) {
    return isNumber(value) ? format("avg_rating", value) : "—";
  }

  // `attrs` gives a row's attributes (default: its session id, for the transcript links).
  function fillTable(id, rows, columns, emptyText, attrs) {
    var body = document.getElementById(id).tBodies[0];
    body.textContent = "";
    if (!rows.length) {
      body.appendChild(el("tr", { className: "ca-empty-row" }, [el("td", { colspan: String(columns.length), text: emptyText })]));
      return;
    }
    rows.forEach(function (row) {
      var tr = el("tr", attrs ? attrs(row) : { "data-session-id": row.session_id });
      columns.forEach(function (column) {
        tr.appendChild(cell(column.value(row), column.className));
      });
      body.appendChild(tr);
    });
  }

  function renderTables(data) {
    var started = { value: function (row) { return stamp(row.started_at); }, className: "ca-when" };
    var session = { value: sessionLink };
    var messages = { value: function (row) { return count(row.messages); }, className: "num" };
    var engagement = { value: function (row) { return format("avg_engagement_score", row.engagement_score); }, className: "num" };
    var topics = { value: function (row) {
      var names = row.topics || [];
      return el("span", { title: names.join("\n"), text: names.slice(0, 3).map(shortTopic).join(", ") + (names.length > 3 ? ", …" : "") });
    } };
    var score = { value: function (row) { return rating(row.rating); }, className: "num" };
    var status = { value: statusText };
    fillTable("ca-recent", data.recent_sessions || [], [
      started, session, { value: function (row) { return USER_TYPES[row.user_type] || row.user_type; } },
      messages, engagement, status, topics, score,
    ], "No sessions in this period.");
    fillTable("ca-most-active", data.most_active || [], [session, messages, engagement, status, started],
      "No sessions in this period.");
    fillTable("ca-feedback", data.last_feedback || [], [
      { value: function (row) { return stamp(row.at); }, className: "ca-when" },
      { value: function (row) {
        return el("span", { className: "ct-feedback-" + row.rating, text: row.rating === "up" ? "▲ thumbs up" : "▼ thumbs down" });
      }, className: "ca-when" },
      { value: function (row) { return row.reason; } },
      { value: function (row) { return row.comment; }, className: "ca-text" },
      { value: function (row) { return row.reply.length >= 200 ? row.reply + "…" : row.reply; }, className: "ca-text ca-quiet" },
      { value: function (row) { return row.provider; } },
      { value: function (row) { return el("a", { href: transcriptURL(row.session_id), text: "Transcript" }); } },
    ], "No feedback in this period.");
    fillTable("ca-attention", data.attention || [], [
      { value: function (row) { return stamp(row.last_activity_at); }, className: "ca-when" },
      session,
      { value: function (row) { return [row.escalated ? "escalated" : "", row.resolution === "unresolved" ? "unresolved" : ""].filter(Boolean).join(" · "); } },
      messages, topics, score,
    ], "Nothing needs attention in this period.");
    fillTable("ca-agents", (data.agents || []).map(function (row) { return Object.assign({ session_id: "" }, row); }), [
      { value: function (row) { return row.agent; } },
      { value: function (row) { return count(row.conversations); }, className: "num" },
      { value: function (row) { return format("avg_human_first_response_ms", row.avg_human_first_response_ms); }, className: "num" },
      { value: function (row) { return count(row.resolved); }, className: "num" },
      { value: function (row) { return format("avg_human_resolution_ms", row.avg_human_resolution_ms); }, className: "num" },
      { value: function (row) { return format("csat", row.csat); }, className: "num" },
    ], "No person answered a visitor in this period.");
  }

  function renderFeatures(data) {
    fillTable("ca-features", (data.ai_features || []).map(function (row) { return Object.assign({ session_id: "" }, row); }), [
      { value: function (row) { return row.feature.replace(/_/g, " "); } },
      { value: function (row) { return count(row.calls); }, className: "num" },
      { value: function (row) { return count(row.input_tokens); }, className: "num" },
      { value: function (row) { return count(row.output_tokens); }, className: "num" },
      { value: function (row) {
        var unpriced = row.price_unknown_calls ? count(row.price_unknown_calls) + " unpriced calls" : "";
        if (unpriced && !row.cost_usd) return "price unknown (" + unpriced + ")";
        return format("cost_usd", row.cost_usd) + (unpriced ? " + " + unpriced : "");
      }, className: "num" },
    ], "No AI calls in this period.");
    fillTable("ca-actions", (data.actions || []).map(function (row) { return Object.assign({ session_id: "" }, row); }), [
      { value: function (row) { return row.name.replace(/_/g, " "); } },
      { value: function (row) { return count(row.count); }, className: "num" },
    ], "No widget actions in this period.");
  }

  // --- Definitions on hover -----------------------------------------------------------------
  function annotateFigures() {
    Array.prototype.forEach.call(root.querySelectorAll("figure[data-metrics], figure[data-breakdowns]"), function (figure) {
      var lines = [];
      (figure.dataset.breakdowns || "").split(" ").filter(Boolean).forEach(function (key) {
        if (breakdownDefinitions[key]) lines.push(breakdownDefinitions[key]);
      });
      (figure.dataset.metrics || "").split(" ").filter(Boolean).forEach(function (key) {
        var text = definition(key);
        if (text) lines.push(text);
      });
      var caption = figure.querySelector("figcaption");
      caption.title = lines.join("\n");
      if (lines.length && !caption.querySelector(".ca-info")) {
        caption.appendChild(el("span", { className: "ca-info", tabindex: "0", role: "note", "aria-label": lines.join(" "), title: lines.join("\n"), text: "i" }));
      }
    });
    Array.prototype.forEach.call(root.querySelectorAll("th[data-metric]"), function (th) {
      th.title = definition(th.dataset.metric);
    });
  }

  function loadBreakdownDefinitions() {
    fetch(root.dataset.apiDefinitions, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : { breakdowns: {} }; })
      .then(function (data) {
        breakdownDefinitions = data.breakdowns || {};
        annotateFigures();
      })
      .catch(function () { annotateFigures(); });
  }

  // --- Live socket -------------------------------------------------------------------------
  var liveText = document.getElementById("ca-live-text");
  var liveBox = document.getElementById("ca-live");
  var feed = document.getElementById("ca-feed");

  function setLive(status, text) {
    liveBox.dataset.status = status;
    liveText.textContent = status === "live" ? "Live" : text + (status === "reconnecting" ? " (the page still refreshes every 30 s)" : "");
  }

  function onEvents(frame) {
    if (isNumber(frame.active_sessions)) setValue("live_sessions", frame.active_sessions);
    showLiveNumbers(frame.live);
    var counted = liveApplies();
    (frame.events || []).forEach(function (event) {
      if (event.type === "message" && counted) {
        pending.messages += 1;
        if (event.role === "user" && event.first) pending.sessions += 1;
      }
      addToFeed(event);
    });
    showLiveCounts();
    requestSnapshot();
  }

  function describe(event) {
    switch (event.type) {
      case "message":
        if (event.role === "user") return event.first ? "New chat: first visitor message" : "Visitor message";
        if (event.role === "agent") return "Message from " + (event.agent || "an agent");
        return "Reply " + (event.status || "") + (event.provider ? " from " + event.provider : "") +
          (isNumber(event.duration_ms) ? " in " + format("avg_response_time_ms", event.duration_ms) : "");
      case "feedback": return "Thumbs " + event.rating + " on a reply";
      case "rating": return "Rated the chat " + event.score + " / 5" + (event.resolved === true ? ", resolved" : event.resolved === false ? ", not resolved" : "");
      case "failover": return "Failover" + (event.provider ? " to " + event.provider : "") + (event.count > 1 ? " (×" + event.count + ")" : "");
      case "session.end": return "Chat ended";
      case "handoff": return {
        waiting: "Asked for a person", unavailable: "Asked for a person: nobody available",
        assigned: "Taken by " + (event.agent || "an agent"), resolved: "Resolved by " + (event.agent || "an agent"),
        ai: "Handed back to the assistant",
      }[event.state] || "Handoff: " + event.state;
      default: return event.type;
    }
  }

  function addToFeed(event) {
    var empty = feed.querySelector(".ca-empty-row");
    if (empty) empty.remove();
    var at = event.at ? new Date(event.at) : new Date();
    var item = el("li", { "data-type": event.type }, [
      el("time", { datetime: at.toISOString(), text: PA.clock(at) }),
      " ",
      el("span", { text: describe(event) }),
      " ",
      event.session_id ? el("a", { href: transcriptURL(event.session_id), text: "transcript" }) : null,
    ]);
    feed.insertBefore(item, feed.firstChild);
    while (feed.children.length > FEED_MAX) feed.removeChild(feed.lastChild);
  }

  // --- Start -------------------------------------------------------------------------------
  buildCards();
  showStateInForm();
  if (!setupChartDefaults()) showError(CHART_MISSING);
  loadBreakdownDefinitions();
  refreshAll();
  setInterval(refreshAll, FULL_REFRESH_MS);
  PA.liveSocket(root.dataset.ws, {
    status: setLive,
    open: function (socket, reconnected) {
      if (reconnected) requestSnapshot(); // events were missed while disconnected
    },
    frame: function (frame) {
      if (frame.type === "events") onEvents(frame);
    },
  });
})();

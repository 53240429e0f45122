"""The weekly chat report, rendered as text, JSON, Markdown or HTML from `selectors.report()` data.

This module only formats: every number it prints is a value of the report data, so the report
shows the same numbers as the dashboard, the JSON API and the exports (which read the same
selectors). Labels and units come from `metrics.METRICS`; definitions from the data itself.

`None` in the data means "no data" (a rate over nothing) and is printed so, never as 0. A model
with no price shows "price unknown", never $0. The HTML version is a standalone document for
email: inline styles, inline SVG charts, no scripts and no external resources, every string
that came from visitors or operators (topic names, provider and model names) escaped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from django.utils import timezone
from django.utils.html import escape

from analytics.metrics import METRICS

Format = Literal["text", "json", "markdown", "html"]
FORMATS: tuple[Format, ...] = ("text", "json", "markdown", "html")

NO_DATA = "no data"
PRICE_UNKNOWN = "price unknown"
ARROWS = {"up": "▲", "down": "▼", "flat": "→"}

#: The report's sections and their metrics, in the order the issue lists them. A headline
#: metric missing here still gets shown (under "Other headline numbers"), with its change.
SECTIONS: list[tuple[str, list[str]]] = [
    ("Sessions", ["sessions", "active_sessions", "closed_sessions"]),
    ("Messages", ["messages", "user_messages", "assistant_messages", "messages_per_session"]),
    (
        "Performance",
        [
            "avg_response_time_ms",
            "p50_response_time_ms",
            "p95_response_time_ms",
            "avg_ttft_ms",
            "p95_ttft_ms",
            "resolution_rate",
            "confirmed_resolution_rate",
            "assumed_resolution_rate",
            "escalation_rate",
            "engagement_rate",
            "avg_engagement_score",
            "cache_hit_rate",
        ],
    ),
    (
        "Satisfaction",
        [
            "avg_rating",
            "ratings",
            "csat",
            "thumbs_up",
            "thumbs_down",
            "satisfaction_rate",
            "feedback_rate",
            "avg_sentiment",
        ],
    ),
    (
        "AI usage and cost",
        [
            "tokens",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "cost_per_session",
            "price_unknown_calls",
            "provider_success_rate",
            "failover_rate",
            "failovers",
        ],
    ),
]

#: Cost metrics that leave out unpriced calls: shown with a "price unknown" note when there are any.
_PRICED_ONLY = {"cost_usd", "cost_per_session"}

# Colours of the HTML version (GitHub's palette: readable in light-mode mail clients).
_INK, _MUTED, _RULE, _GOOD, _BAD = "#1f2328", "#59636e", "#d1d9e0", "#1a7f37", "#cf222e"
_BLUE, _ORANGE, _GREY = "#0969da", "#bc4c00", "#818b98"


# --- Formatting of single values ------------------------------------------------------------
def _trim(value: float, decimals: int = 2) -> str:
    """A number with thousands separators and at most `decimals` decimals, trailing zeros cut."""
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_usd(value: float) -> str:
    """Dollars: cents from $1 up, up to 6 decimals below, so a $0.000825 week is not "$0.00"."""
    if value == 0 or abs(value) >= 1:
        return f"${value:,.2f}"
    text = f"{value:.6f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"${whole}.{decimals.ljust(2, '0')}"


def format_value(key: str, value: float | int | None) -> str:
    """A metric's value in its unit ("1,550 ms", "33.33%", "$0.000825"), or "no data" for None.

    The value is printed at the precision the data carries (`metrics.round_value`), so the
    report prints the numbers the JSON has.
    """
    if value is None:
        return NO_DATA
    unit = METRICS[key].unit if key in METRICS else "ratio"
    if unit in {"count", "tokens"}:
        return _trim(value, 0) if float(value).is_integer() else _trim(value)
    if unit == "ms":
        return f"{_trim(value, 1)} ms"
    if unit == "percent":
        return f"{_trim(value)}%"
    if unit == "usd":
        return format_usd(value)
    if unit == "rating":
        return f"{_trim(value)} / 5"
    if unit == "score":
        return f"{_trim(value)} / 100"
    return _trim(value)


def format_change(change: Mapping[str, Any] | None) -> str:
    """A week-over-week change: "▲ +20%", "▼ -3.5%", "→ +0.2%", "▲ new" (from 0), or "no data"."""
    if not change or change.get("direction") is None:
        return NO_DATA
    direction = change["direction"]
    pct = change.get("pct")
    if pct is None:
        # metrics.change gives no % when the previous value was 0.
        return f"{ARROWS['flat']} no change" if direction == "flat" else f"{ARROWS[direction]} new"
    return f"{ARROWS[direction]} {'+' if pct > 0 else ''}{_trim(pct, 1)}%"


def change_tone(key: str, change: Mapping[str, Any] | None) -> Literal["good", "bad", "neutral"]:
    """Whether a change is good or bad news, from the metric's `higher_is_better`."""
    better = METRICS[key].higher_is_better if key in METRICS else None
    direction = (change or {}).get("direction")
    if better is None or direction not in {"up", "down"}:
        return "neutral"
    return "good" if (direction == "up") == better else "bad"


def label(key: str) -> str:
    """A metric's human name."""
    return METRICS[key].label if key in METRICS else key.replace("_", " ").capitalize()


def _unpriced_note(calls: int) -> str:
    return f"{PRICE_UNKNOWN} for {calls:,} call{'' if calls == 1 else 's'}"


def _cost_with_unknown(cost: float | None, unpriced_calls: int) -> str:
    """A cost that may leave out unpriced calls: "$1.20", "$1.20 + price unknown for 3 calls", "price unknown"."""
    if cost is None or (unpriced_calls and cost == 0):
        return PRICE_UNKNOWN
    if unpriced_calls:
        return f"{format_usd(cost)} + {_unpriced_note(unpriced_calls)}"
    return format_usd(cost)


def metric_display(data: Mapping[str, Any], key: str) -> str:
    """A metric's value as shown in the report, with the "price unknown" note on costs."""
    value = data["metrics"].get(key)
    unpriced = data["metrics"].get("price_unknown_calls") or 0
    if key in _PRICED_ONLY and unpriced and value is not None:
        if value == 0:
            return f"{PRICE_UNKNOWN} ({unpriced:,} unpriced call{'' if unpriced == 1 else 's'})"
        return f"{format_value(key, value)} + {_unpriced_note(unpriced)}"
    return format_value(key, value)


def row_cost(row: Mapping[str, Any]) -> str:
    """A provider or model row's cost: of priced calls only, so unpriced calls are named, never $0.

    `selectors.models_usage` gives a model with no price `cost_usd` None; `selectors.providers`
    gives the priced calls' cost and counts the others in `price_unknown_calls`.
    """
    return _cost_with_unknown(row.get("cost_usd"), row.get("price_unknown_calls") or 0)


def _count(value: int, noun: str) -> str:
    return f"{value:,} {noun}{'' if value == 1 else 's'}"


def _hour(hour: int) -> str:
    return f"{hour:02d}:00"


def _generated(data: Mapping[str, Any]) -> str:
    try:
        moment = datetime.fromisoformat(data["generated_at"])
    except (KeyError, TypeError, ValueError):
        return str(data.get("generated_at", ""))
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


# --- What the data holds --------------------------------------------------------------------
def is_empty(data: Mapping[str, Any]) -> bool:
    """Whether the period has nothing to report: no session and no AI call."""
    return not data["metrics"].get("sessions") and not data.get("providers")


def sections(data: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """`SECTIONS` limited to the metrics the data has, plus any headline metric they do not list."""
    present = data["metrics"]
    out = [(title, [key for key in keys if key in present]) for title, keys in SECTIONS]
    listed = {key for _, keys in SECTIONS for key in keys}
    others = [key for key in data.get("changes", {}) if key not in listed and key in present]
    if others:
        out.append(("Other headline numbers", others))
    return [(title, keys) for title, keys in out if keys]


def _previous(data: Mapping[str, Any], key: str) -> str:
    change = data.get("changes", {}).get(key)
    if change is None:
        return ""
    return format_value(key, change.get("previous"))


def _period_title(data: Mapping[str, Any]) -> str:
    period = data["period"]
    kind = "weekly chat report" if period["days"] == 7 else f"{period['days']}-day chat report"
    return f"Parley {kind}: {period['start']} to {period['end']}"


def _filters_text(data: Mapping[str, Any]) -> str:
    filters = data.get("filters") or {}
    parts = []
    if filters.get("user_type"):
        parts.append(f"user type {filters['user_type']}")
    if filters.get("provider"):
        parts.append(f"provider {filters['provider']}")
    return ", ".join(parts)


def _subtitle(data: Mapping[str, Any]) -> str:
    previous = data["previous_period"]
    return (
        f"{_count(data['period']['days'], 'day')}, compared with {previous['start']} to {previous['end']}"
        f" · time zone {data.get('timezone', '')} · generated {_generated(data)}"
    )


def _empty_notice(data: Mapping[str, Any]) -> str:
    return f"No data: no chat sessions and no AI calls from {data['period']['start']} to {data['period']['end']}."


def subject(data: Mapping[str, Any]) -> str:
    """An email subject: the period and its headline volume ("3 sessions (▲ +200%), 8 messages")."""
    title = _period_title(data)
    filters = _filters_text(data)
    suffix = f" [{filters}]" if filters else ""
    if is_empty(data):
        return f"{title}: {NO_DATA}{suffix}"
    metrics = data["metrics"]
    sessions = _count(metrics.get("sessions") or 0, "session")
    change = format_change(data.get("changes", {}).get("sessions"))
    volume = f"{sessions} ({change})" if change != NO_DATA else sessions
    return f"{title}: {volume}, {_count(metrics.get('messages') or 0, 'message')}{suffix}"


def _definitions(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, definition) of every metric shown, then of every breakdown."""
    definitions = data.get("definitions", {})
    shown = [key for _, keys in sections(data) for key in keys]
    out = [(label(key), definitions[key]) for key in shown if key in definitions]
    breakdowns = data.get("breakdown_definitions", {})
    out += [(_BREAKDOWN_TITLES.get(key, key), text) for key, text in breakdowns.items()]
    return out


_BREAKDOWN_TITLES = {
    "top_topics": "Top topics",
    "common_issues": "Common issues",
    "user_types": "User types",
    "peak_hours": "Peak usage hours",
    "providers": "AI usage by provider",
    "models": "AI usage by model",
}


def _busiest_hours(data: Mapping[str, Any], limit: int = 3) -> list[dict[str, Any]]:
    """The busiest hours, most sessions first, ties by hour; hours with no session left out."""
    hours = [row for row in data.get("peak_hours", []) if row["sessions"]]
    return sorted(hours, key=lambda row: (-row["sessions"], row["hour"]))[:limit]


def _provider_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    headers = [
        "Provider",
        "Calls",
        "Success",
        "Failover rate",
        "Failovers",
        "Avg latency",
        "Input tok.",
        "Output tok.",
        "Cost",
    ]
    rows = [
        [
            str(row["provider"]),
            _trim(row["calls"], 0),
            format_value("provider_success_rate", row.get("success_rate")),
            format_value("failover_rate", row.get("failover_rate")),
            _trim(row.get("failovers") or 0, 0),
            format_value("avg_response_time_ms", row.get("avg_latency_ms")),
            _trim(row.get("input_tokens") or 0, 0),
            _trim(row.get("output_tokens") or 0, 0),
            row_cost(row),
        ]
        for row in data.get("providers", [])
    ]
    return headers, rows


def _model_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    headers = ["Provider", "Model", "Feature", "Calls", "Input tok.", "Output tok.", "Cached tok.", "Cost"]
    rows = [
        [
            str(row["provider"]),
            str(row["model"]) or "(unknown)",
            str(row["feature"]),
            _trim(row["calls"], 0),
            _trim(row.get("input_tokens") or 0, 0),
            _trim(row.get("output_tokens") or 0, 0),
            _trim(row.get("cached_tokens") or 0, 0),
            row_cost(row),
        ]
        for row in data.get("models", [])
    ]
    return headers, rows


def _daily_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    headers = ["Date", "Sessions", "Messages", "Avg response", "Avg rating", "Resolution", "Cost"]
    rows = [
        [
            str(day["date"]),
            format_value("sessions", day.get("sessions")),
            format_value("messages", day.get("messages")),
            format_value("avg_response_time_ms", day.get("avg_response_time_ms")),
            format_value("avg_rating", day.get("avg_rating")),
            format_value("resolution_rate", day.get("resolution_rate")),
            format_value("cost_usd", day.get("cost_usd")),
        ]
        for day in data.get("daily", [])
    ]
    return headers, rows


# --- Text -----------------------------------------------------------------------------------
def _text_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1, indent: str = "  "
) -> list[str]:
    """Columns padded to their widest cell; the first `left` columns left-aligned, the others right."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(widths[i]) if i < left else cell.rjust(widths[i]) for i, cell in enumerate(cells)]
        return (indent + "  ".join(padded)).rstrip()

    return [line(headers), indent + "  ".join("-" * width for width in widths), *(line(row) for row in rows)]


def _sparkline(values: Sequence[int]) -> str:
    """Eight-level block characters, so the day's shape fits on one line of a plain-text email."""
    blocks = "·▁▂▃▄▅▆▇█"
    top = max(values, default=0)
    if not top:
        return "·" * len(values)
    return "".join(blocks[0 if not v else max(1, round(8 * v / top))] for v in values)


def _text_ranked(rows: Iterable[Mapping[str, Any]], name: str) -> list[str]:
    items = list(rows)
    if not items:
        return [f"  {NO_DATA}"]
    width = max(len(str(row[name])) for row in items)
    return [
        f"  {rank:>2}. {str(row[name]).ljust(width)}  {_count(row['sessions'], 'session')}"
        for rank, row in enumerate(items, start=1)
    ]


def render_text(data: Mapping[str, Any]) -> str:
    """Plain text for terminals and the text part of the email."""
    title = _period_title(data)
    out = [title, "=" * len(title), _subtitle(data)]
    if _filters_text(data):
        out.append(f"Filters: {_filters_text(data)}")
    if is_empty(data):
        out += ["", _empty_notice(data)]
    for section, keys in sections(data):
        out += ["", section.upper()]
        rows = [
            [label(key), metric_display(data, key), _previous(data, key), format_change(data["changes"][key])]
            if key in data.get("changes", {})
            else [label(key), metric_display(data, key), "", ""]
            for key in keys
        ]
        out += _text_table(["Metric", "This period", "Previous", "Change"], rows)
    out += ["", "TOP TOPICS", *_text_ranked(data.get("top_topics", []), "topic")]
    out += ["", "COMMON ISSUES (topics of unresolved sessions)", *_text_ranked(data.get("common_issues", []), "topic")]
    out += ["", "USER TYPES"]
    if data.get("user_types"):
        rows = [
            [str(row["user_type"]), _trim(row["sessions"], 0), format_value("engagement_rate", row.get("share"))]
            for row in data["user_types"]
        ]
        out += _text_table(["User type", "Sessions", "Share"], rows)
    else:
        out.append(f"  {NO_DATA}")
    out += ["", f"PEAK USAGE HOURS ({data.get('timezone', '')})"]
    busiest = _busiest_hours(data)
    if busiest:
        out.append(
            "  Busiest: " + ", ".join(f"{_hour(row['hour'])} ({_count(row['sessions'], 'session')})" for row in busiest)
        )
        out.append(f"  00h |{_sparkline([row['sessions'] for row in data['peak_hours']])}| 23h")
    else:
        out.append(f"  {NO_DATA}")
    for heading, (headers, rows), left in (
        ("AI USAGE BY PROVIDER", _provider_rows(data), 1),
        ("AI USAGE BY MODEL", _model_rows(data), 3),
    ):
        out += ["", heading]
        out += _text_table(headers, rows, left=left) if rows else [f"  {NO_DATA}"]
    headers, rows = _daily_rows(data)
    out += ["", "DAILY", *(_text_table(headers, rows) if rows else [f"  {NO_DATA}"])]
    out += ["", "DEFINITIONS"]
    out += [f"  {name}: {text}" for name, text in _definitions(data)]
    return "\n".join(out) + "\n"


# --- JSON -----------------------------------------------------------------------------------
def render_json(data: Mapping[str, Any]) -> str:
    """The report data itself, keys sorted so that two runs over the same data diff cleanly."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- Markdown -------------------------------------------------------------------------------
#: Characters that could start inline Markdown, HTML or (on GitHub) math, or end a table cell.
_MD_SPECIAL = set("\\`*_[]<>|~&$")


def md_escape(value: object) -> str:
    """Backslash-escape Markdown punctuation, so a topic named `<b>x</b>` or `a|b` prints as text."""
    return "".join(f"\\{char}" if char in _MD_SPECIAL else char for char in str(value)).replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1) -> list[str]:
    """A GitHub table; the first `left` columns left-aligned, numbers right-aligned."""
    align = ["---" if i < left else "---:" for i in range(len(headers))]
    return [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def render_markdown(data: Mapping[str, Any]) -> str:
    """Markdown with tables; metric names carry footnotes with their definitions."""
    out = [f"# {md_escape(_period_title(data))}", "", f"_{md_escape(_subtitle(data))}_"]
    if _filters_text(data):
        out += ["", f"**Filters:** {md_escape(_filters_text(data))}"]
    if is_empty(data):
        out += ["", f"> **{md_escape(_empty_notice(data))}**"]
    definitions = data.get("definitions", {})
    for section, keys in sections(data):
        rows = []
        for key in keys:
            name = md_escape(label(key)) + (f"[^{key}]" if key in definitions else "")
            if key in data.get("changes", {}):
                change = format_change(data["changes"][key])
                rows.append([name, md_escape(metric_display(data, key)), md_escape(_previous(data, key)), change])
            else:
                rows.append([name, md_escape(metric_display(data, key)), "", ""])
        out += ["", f"## {section}", "", *_md_table(["Metric", "This period", "Previous", "Change"], rows)]

    def ranked(title: str, key: str, name: str) -> list[str]:
        items = data.get(key, [])
        head = ["", f"## {title}", ""]
        if not items:
            return [*head, f"_{NO_DATA}_"]
        rows = [[str(rank), md_escape(row[name]), _trim(row["sessions"], 0)] for rank, row in enumerate(items, 1)]
        return [*head, *_md_table(["#", name.replace("_", " ").capitalize(), "Sessions"], rows, left=2)]

    out += ranked("Top topics", "top_topics", "topic")
    out += ranked("Common issues (topics of unresolved sessions)", "common_issues", "topic")
    out += ["", "## User types", ""]
    if data.get("user_types"):
        rows = [
            [md_escape(row["user_type"]), _trim(row["sessions"], 0), format_value("engagement_rate", row.get("share"))]
            for row in data["user_types"]
        ]
        out += _md_table(["User type", "Sessions", "Share"], rows)
    else:
        out.append(f"_{NO_DATA}_")
    out += ["", f"## Peak usage hours ({md_escape(data.get('timezone', ''))})", ""]
    busy = [row for row in data.get("peak_hours", []) if row["sessions"]]
    if busy:
        out += _md_table(["Hour", "Sessions"], [[_hour(row["hour"]), _trim(row["sessions"], 0)] for row in busy])
    else:
        out.append(f"_{NO_DATA}_")
    for heading, (headers, rows), left in (
        ("AI usage by provider", _provider_rows(data), 1),
        ("AI usage by model", _model_rows(data), 3),
    ):
        out += ["", f"## {heading}", ""]
        escaped = [[md_escape(cell) for cell in row] for row in rows]
        out += _md_table(headers, escaped, left=left) if rows else [f"_{NO_DATA}_"]
    headers, rows = _daily_rows(data)
    out += ["", "## Daily", ""]
    out += _md_table(headers, [[md_escape(cell) for cell in row] for row in rows]) if rows else [f"_{NO_DATA}_"]
    out += ["", "## Definitions", ""]
    shown = [key for _, keys in sections(data) for key in keys if key in definitions]
    out += [f"[^{key}]: **{md_escape(label(key))}**: {md_escape(definitions[key])}" for key in shown]
    out += [""]
    out += [f"- **{_BREAKDOWN_TITLES.get(key, key)}**: {md_escape(text)}" for key, text in _breakdowns(data)]
    return "\n".join(out) + "\n"


def _breakdowns(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    return list(data.get("breakdown_definitions", {}).items())


# --- HTML and its SVG charts ----------------------------------------------------------------
def _attrs(**attributes: object) -> str:
    """HTML attributes, escaped; `class_` style names lose the underscore, `_` becomes `-`."""
    return "".join(f' {name.rstrip("_").replace("_", "-")}="{escape(value)}"' for name, value in attributes.items())


def _num(value: float) -> str:
    """An SVG coordinate: one decimal, no trailing zero."""
    return _trim(value, 1).replace(",", "")


def _svg_open(width: int, height: int, title: str) -> str:
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' role="img"{_attrs(aria_label=title)} style="display:block;max-width:100%;height:auto;'
        f'font-family:Arial,Helvetica,sans-serif"><title>{escape(title)}</title>'
    )


def _svg_text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 11, fill: str = _MUTED) -> str:
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" font-size="{size}" fill="{fill}" text-anchor="{anchor}">'
        f"{escape(text)}</text>"
    )


def _label_every(labels: Sequence[str], room: float) -> int:
    """Show every n-th x label so that labels (about 6.5 px a character at 10 px) do not overlap."""
    widest = 6.5 * max((len(text) for text in labels), default=0) + 8
    return max(1, math.ceil(widest * len(labels) / max(1.0, room)))


def svg_bars(
    series: Sequence[tuple[str, Sequence[float | None], str]],
    labels: Sequence[str],
    *,
    title: str,
    width: int = 640,
    height: int = 180,
    maximum: float | None = None,
    value_format: Callable[[float], str] = lambda v: _trim(v),
) -> str:
    """A vertical bar chart, one group of bars per label, one bar per series (name, values, colour).

    `None` values draw no bar (no data is not 0). Each bar has a tooltip with its value.
    """
    left, right, top, bottom = 36, 8, 22 if len(series) > 1 else 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, vs, _ in series for v in vs if v is not None]
    peak = maximum if maximum is not None else max(values, default=0)
    parts = [_svg_open(width, height, title)]
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="{_RULE}"/>')
    if peak:
        parts.append(_svg_text(left - 4, top + 8, value_format(peak), anchor="end", size=10))
    parts.append(_svg_text(left - 4, top + plot_h, "0", anchor="end", size=10))
    if len(series) > 1:  # legend
        x = left
        for name, _, colour in series:
            parts.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{colour}"/>')
            parts.append(_svg_text(x + 14, 13, name))
            x += 18 + 7 * len(name)
    count = max(1, len(labels))
    slot = plot_w / count
    bar_w = max(1.0, (slot * 0.8) / max(1, len(series)))
    every = _label_every(labels, plot_w)
    for i, name in enumerate(labels):
        x0 = left + i * slot + slot * 0.1
        for j, (series_name, vs, colour) in enumerate(series):
            value = vs[i] if i < len(vs) else None
            if value is None or not peak:
                continue
            h = plot_h * value / peak
            parts.append(
                f'<rect x="{_num(x0 + j * bar_w)}" y="{_num(top + plot_h - h)}" width="{_num(bar_w)}"'
                f' height="{_num(h)}" fill="{colour}"><title>{escape(f"{name}: {value_format(value)} {series_name}")}'
                "</title></rect>"
            )
        if i % every == 0:
            parts.append(_svg_text(left + i * slot + slot / 2, height - 6, name, anchor="middle", size=10))
    if not peak:  # nothing but zeros and gaps: say so rather than draw an empty frame
        parts.append(_svg_text(left + plot_w / 2, top + plot_h / 2, NO_DATA, anchor="middle", size=13))
    parts.append("</svg>")
    return "".join(parts)


def svg_hbars(items: Sequence[tuple[str, float]], *, title: str, colour: str = _BLUE, width: int = 640) -> str:
    """A horizontal bar chart (topics), labels on the left, each label escaped."""
    row_h, label_w, value_w = 22, 230, 48
    height = max(1, len(items)) * row_h + 8
    plot_w = width - label_w - value_w
    peak = max((value for _, value in items), default=0)
    parts = [_svg_open(width, height, title)]
    for i, (name, value) in enumerate(items):
        y = 4 + i * row_h
        shown = name if len(name) <= 34 else name[:33] + "…"
        parts.append(_svg_text(label_w - 6, y + 14, shown, anchor="end", size=12, fill=_INK))
        w = plot_w * value / peak if peak else 0
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{_num(w)}" height="{row_h - 8}" fill="{colour}">'
            f"<title>{escape(f'{name}: {_trim(value)}')}</title></rect>"
        )
        parts.append(_svg_text(label_w + w + 6, y + 14, _trim(value), size=11))
    if not items:
        parts.append(_svg_text(width / 2, 18, NO_DATA, anchor="middle", size=13))
    parts.append("</svg>")
    return "".join(parts)


def svg_thumbs(up: int, down: int, *, width: int = 640) -> str:
    """Thumbs up versus down as one stacked bar."""
    title = f"Thumbs up {up:,}, thumbs down {down:,}"
    height, bar_y, bar_h = 46, 4, 20
    parts = [_svg_open(width, height, title)]
    total = up + down
    if not total:
        parts.append(f'<rect x="0" y="{bar_y}" width="{width}" height="{bar_h}" fill="{_RULE}"/>')
        parts.append(_svg_text(width / 2, bar_y + 14, NO_DATA, anchor="middle", size=12, fill=_INK))
    else:
        up_w = width * up / total
        parts.append(f'<rect x="0" y="{bar_y}" width="{_num(up_w)}" height="{bar_h}" fill="{_GOOD}"/>')
        parts.append(
            f'<rect x="{_num(up_w)}" y="{bar_y}" width="{_num(width - up_w)}" height="{bar_h}" fill="{_BAD}"/>'
        )
    parts.append(_svg_text(0, height - 6, f"▲ up {up:,}", size=11, fill=_GOOD))
    parts.append(_svg_text(width, height - 6, f"down {down:,} ▼", anchor="end", size=11, fill=_BAD))
    parts.append("</svg>")
    return "".join(parts)


def svg_heatmap(heatmap: Mapping[str, Any], *, width: int = 640) -> str:
    """Sessions by weekday and hour: darker is busier."""
    weekdays, grid = heatmap.get("weekdays", []), heatmap.get("sessions", [])
    left, top, cell_h = 36, 4, 16
    cell_w = (width - left) / 24
    height = top + cell_h * len(weekdays) + 18
    peak = max((v for row in grid for v in row), default=0)
    parts = [_svg_open(width, height, "Sessions by weekday and hour")]
    for d, name in enumerate(weekdays):
        y = top + d * cell_h
        parts.append(_svg_text(left - 6, y + 12, name, anchor="end", size=10))
        for h, value in enumerate(grid[d] if d < len(grid) else []):
            opacity = 0.08 + 0.92 * value / peak if peak and value else 0.04
            parts.append(
                f'<rect x="{_num(left + h * cell_w)}" y="{y}" width="{_num(cell_w - 1)}" height="{cell_h - 1}"'
                f' fill="{_BLUE}" fill-opacity="{opacity:.2f}"><title>{escape(name)} {_hour(h)}: '
                f"{_count(value, 'session')}</title></rect>"
            )
    for h in range(0, 24, 3):
        parts.append(_svg_text(left + h * cell_w, height - 4, f"{h:02d}", size=10))
    parts.append("</svg>")
    return "".join(parts)


_TONE_COLOURS = {"good": _GOOD, "bad": _BAD, "neutral": _MUTED}
_TABLE = f'style="border-collapse:collapse;width:100%;font-size:14px;color:{_INK}"'
_TH = f'style="text-align:left;padding:6px 6px;border-bottom:2px solid {_RULE};color:{_MUTED};font-weight:600"'
_TH_NUM = f'style="text-align:right;padding:6px 6px;border-bottom:2px solid {_RULE};color:{_MUTED};font-weight:600"'
_TD = f'style="text-align:left;padding:6px 6px;border-bottom:1px solid {_RULE}"'
_TD_NUM = f'style="text-align:right;padding:6px 6px;border-bottom:1px solid {_RULE};white-space:nowrap"'
_H2 = f'style="font-size:18px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid {_RULE};color:{_INK}"'
_P_MUTED = f'style="margin:4px 0;color:{_MUTED};font-size:13px"'


def _html_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1, widths: Sequence[int] = ()
) -> str:
    """A table of already-escaped cells; columns from `left` on are right-aligned numbers.

    `widths` (percentages) line up the columns of consecutive tables, as the metric tables are.
    """
    head = "".join(
        f"<th {_TH if i < left else _TH_NUM}{_attrs(width=f'{widths[i]}%') if i < len(widths) else ''}>{h}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>" + "".join(f"<td {_TD if i < left else _TD_NUM}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<table {_TABLE} cellpadding="0" cellspacing="0"><tr>{head}</tr>{body}</table>'


def _html_cell(text: str) -> str:
    """An escaped cell; a cost's "+ price unknown…" note goes below, free to wrap, so wide tables fit."""
    amount, plus, note = text.partition(" + ")
    if not plus:
        return escape(text)
    return f'{escape(amount)}<br><span style="white-space:normal;font-size:12px;color:{_MUTED}">+ {escape(note)}</span>'


def _html_no_data() -> str:
    return f"<p {_P_MUTED}><em>{NO_DATA}</em></p>"


def _html_metrics(data: Mapping[str, Any], keys: Sequence[str]) -> str:
    definitions = data.get("definitions", {})
    rows = []
    for key in keys:
        name = f'<span{_attrs(title=definitions.get(key, ""))} style="border-bottom:1px dotted {_GREY}">'
        name += f"{escape(label(key))}</span>"
        value = f"<strong>{escape(metric_display(data, key))}</strong>"
        if key in data.get("changes", {}):
            change = data["changes"][key]
            colour = _TONE_COLOURS[change_tone(key, change)]
            changed = f'<span style="color:{colour}">{escape(format_change(change))}</span>'
            rows.append([name, value, escape(_previous(data, key)), changed])
        else:
            rows.append([name, value, "", ""])
    return _html_table(["Metric", "This period", "Previous", "Change"], rows, widths=(34, 30, 18, 18))


def _html_ranked(items: Sequence[Mapping[str, Any]], name: str, title: str, colour: str) -> str:
    if not items:
        return _html_no_data()
    chart = svg_hbars([(str(row[name]), row["sessions"]) for row in items], title=title, colour=colour)
    rows = [[str(rank), escape(row[name]), _trim(row["sessions"], 0)] for rank, row in enumerate(items, 1)]
    return chart + _html_table(["#", "Topic", "Sessions"], rows, left=2)


def render_html(data: Mapping[str, Any]) -> str:
    """A standalone HTML document for email: inline styles and SVG, nothing fetched, nothing run."""
    title = _period_title(data)
    metrics = data["metrics"]
    daily = data.get("daily", [])
    body: list[str] = [
        f'<h1 style="font-size:22px;margin:0 0 6px;color:{_INK}">{escape(title)}</h1>',
        f"<p {_P_MUTED}>{escape(_subtitle(data))}</p>",
    ]
    if _filters_text(data):
        body.append(f"<p {_P_MUTED}><strong>Filters:</strong> {escape(_filters_text(data))}</p>")
    if is_empty(data):
        body.append(
            f'<p style="margin:16px 0;padding:12px;background:#fff8c5;border:1px solid #d4a72c;color:{_INK}">'
            f"<strong>{escape(_empty_notice(data))}</strong></p>"
        )
    chart_after = {
        "Sessions": lambda: svg_bars(
            [
                ("sessions", [d.get("sessions") for d in daily], _BLUE),
                ("messages", [d.get("messages") for d in daily], _ORANGE),
            ],
            [str(d["date"])[5:] for d in daily],
            title="Sessions and messages per day",
        ),
        "Satisfaction": lambda: (
            svg_thumbs(metrics.get("thumbs_up") or 0, metrics.get("thumbs_down") or 0)
            + svg_bars(
                [("average rating", [d.get("avg_rating") for d in daily], _GOOD)],
                [str(d["date"])[5:] for d in daily],
                title="Average end-of-chat rating per day (1 to 5)",
                maximum=5,
                height=140,
            )
        ),
    }
    for section, keys in sections(data):
        body.append(f"<h2 {_H2}>{escape(section)}</h2>")
        if section in chart_after and daily:
            body.append(chart_after[section]())
        body.append(_html_metrics(data, keys))
    body.append(f"<h2 {_H2}>Top topics</h2>")
    body.append(_html_ranked(data.get("top_topics", []), "topic", "Top topics by sessions", _BLUE))
    body.append(f"<h2 {_H2}>Common issues</h2><p {_P_MUTED}>Topics of unresolved sessions.</p>")
    body.append(_html_ranked(data.get("common_issues", []), "topic", "Topics of unresolved sessions", _BAD))
    body.append(f"<h2 {_H2}>User types</h2>")
    if data.get("user_types"):
        rows = [
            [escape(row["user_type"]), _trim(row["sessions"], 0), format_value("engagement_rate", row.get("share"))]
            for row in data["user_types"]
        ]
        body.append(_html_table(["User type", "Sessions", "Share"], rows))
    else:
        body.append(_html_no_data())
    body.append(f"<h2 {_H2}>Peak usage hours</h2>")
    busiest = _busiest_hours(data)
    if busiest:
        text = ", ".join(f"{_hour(row['hour'])} ({_count(row['sessions'], 'session')})" for row in busiest)
        body.append(f"<p {_P_MUTED}>Busiest ({escape(data.get('timezone', ''))}): {escape(text)}</p>")
        hours = data["peak_hours"]
        body.append(
            svg_bars(
                [("sessions", [row["sessions"] for row in hours], _BLUE)],
                [f"{row['hour']:02d}" for row in hours],
                title="Sessions started per hour of the day",
                height=150,
            )
        )
        if data.get("peak_heatmap"):
            body.append(svg_heatmap(data["peak_heatmap"]))
    else:
        body.append(_html_no_data())
    for heading, (headers, rows), left in (
        ("AI usage by provider", _provider_rows(data), 1),
        ("AI usage by model", _model_rows(data), 3),
    ):
        body.append(f"<h2 {_H2}>{escape(heading)}</h2>")
        escaped = [[_html_cell(cell) for cell in row] for row in rows]
        body.append(_html_table(headers, escaped, left=left) if rows else _html_no_data())
    headers, rows = _daily_rows(data)
    body.append(f"<h2 {_H2}>Daily</h2>")
    body.append(_html_table(headers, [[escape(cell) for cell in row] for row in rows]) if rows else _html_no_data())
    body.append(f"<h2 {_H2}>Definitions</h2>")
    items = "".join(
        f'<dt style="font-weight:600;margin-top:8px">{escape(name)}</dt>'
        f'<dd style="margin:2px 0 0 0;color:{_MUTED}">{escape(text)}</dd>'
        for name, text in _definitions(data)
    )
    body.append(f'<dl style="font-size:13px;margin:0">{items}</dl>')
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n</head>\n"
        f'<body style="margin:0;padding:0;background:#f6f8fa">\n'
        f'<table width="100%" cellpadding="0" cellspacing="0" style="background:#f6f8fa"><tr><td align="center">\n'
        f'<div style="max-width:680px;margin:0 auto;padding:24px;background:#ffffff;text-align:left;'
        f'font-family:Arial,Helvetica,sans-serif;color:{_INK};line-height:1.4">\n'
        + "\n".join(body)
        + "\n</div>\n</td></tr></table>\n</body>\n</html>\n"
    )


# --- Entry point ----------------------------------------------------------------------------
_RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "text": render_text,
    "json": render_json,
    "markdown": render_markdown,
    "html": render_html,
}


def render(data: Mapping[str, Any], fmt: Format | str = "text") -> str:
    """The report in `fmt` (text, json, markdown or html)."""
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}") from None
    return renderer(data)

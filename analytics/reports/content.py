"""What the report says, whatever its format: titles, metric sections, tables as formatted cells.

Every renderer (text, Markdown, HTML) lays out these strings; none computes or formats a number
of its own. The sections and their metrics come from the registry (`metrics.report_sections`),
the values from the report data (`selectors.report`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.utils import timezone

from analytics import metrics
from analytics.reports.format import (
    NO_DATA,
    count,
    format_change,
    format_value,
    label,
    plural,
    row_cost,
)

#: Titles of the breakdowns, for the definitions at the end of the report.
BREAKDOWN_TITLES = {
    "top_topics": "Top topics",
    "common_issues": "Common issues",
    "user_types": "User types",
    "peak_hours": "Peak usage hours",
    "providers": "AI usage by provider",
    "models": "AI usage by model",
    "agents": "Human support by agent",
    "prediction_quality": "How right the AI is: confusion matrices",
    "sentiment": "Sentiment distribution",
    "languages": "Languages",
}
#: The confusion-matrix table's title.
PREDICTION_TITLE = BREAKDOWN_TITLES["prediction_quality"]
#: The per-agent table's title; left out of a report whose period no person answered in.
AGENTS_TITLE = BREAKDOWN_TITLES["agents"]


def generated(data: Mapping[str, Any]) -> str:
    """When the report was made, in the server's time zone: "2026-03-15 15:00 UTC"."""
    try:
        moment = datetime.fromisoformat(data["generated_at"])
    except (KeyError, TypeError, ValueError):
        return str(data.get("generated_at", ""))
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def is_empty(data: Mapping[str, Any]) -> bool:
    """Whether the period has nothing to report: no session and no AI call."""
    return not data["metrics"].get("sessions") and not data.get("providers")


def sections(data: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """The registry's report sections, limited to the metrics the data has.

    A headline metric of the data that no section lists (data of another version) is shown too,
    under "Other headline numbers", with its change.
    """
    present = data["metrics"]
    registry = metrics.report_sections()
    out: list[tuple[str, list[str]]] = [(title, [key for key in keys if key in present]) for title, keys in registry]
    listed = {key for _, keys in registry for key in keys}
    others = [key for key in data.get("changes", {}) if key not in listed and key in present]
    if others:
        out.append(("Other headline numbers", others))
    return [(title, keys) for title, keys in out if keys]


def previous(data: Mapping[str, Any], key: str) -> str:
    """A headline metric's value in the previous period ("" for a metric without a change)."""
    change = data.get("changes", {}).get(key)
    if change is None:
        return ""
    return format_value(key, change.get("previous"))


def period_title(data: Mapping[str, Any]) -> str:
    """The report's title: "Parley weekly chat report: 2026-03-09 to 2026-03-15"."""
    period = data["period"]
    kind = "weekly chat report" if period["days"] == 7 else f"{period['days']}-day chat report"
    return f"Parley {kind}: {period['start']} to {period['end']}"


def filters_text(data: Mapping[str, Any]) -> str:
    """The filters the report was narrowed by ("user type client, provider openai"), or ""."""
    filters = data.get("filters") or {}
    parts = []
    if filters.get("user_type"):
        parts.append(f"user type {filters['user_type']}")
    if filters.get("provider"):
        parts.append(f"provider {filters['provider']}")
    if filters.get("source"):
        parts.append(f"source {filters['source']}")
    return ", ".join(parts)


def subtitle(data: Mapping[str, Any]) -> str:
    """The period's length, the period it is compared with, the time zone and when it was made."""
    before = data["previous_period"]
    return (
        f"{plural(data['period']['days'], 'day')}, compared with {before['start']} to {before['end']}"
        f" · time zone {data.get('timezone', '')} · generated {generated(data)}"
    )


def empty_notice(data: Mapping[str, Any]) -> str:
    """What an empty period's report says first."""
    return f"No data: no chat sessions and no AI calls from {data['period']['start']} to {data['period']['end']}."


def subject(data: Mapping[str, Any]) -> str:
    """An email subject: the period and its headline volume ("3 sessions (▲ +200%), 8 messages")."""
    title = period_title(data)
    filters = filters_text(data)
    suffix = f" [{filters}]" if filters else ""
    if is_empty(data):
        return f"{title}: {NO_DATA}{suffix}"
    values = data["metrics"]
    sessions = plural(values.get("sessions") or 0, "session")
    change = format_change(data.get("changes", {}).get("sessions"))
    volume = f"{sessions} ({change})" if change != NO_DATA else sessions
    return f"{title}: {volume}, {plural(values.get('messages') or 0, 'message')}{suffix}"


def definition_list(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, definition) of every metric shown, then of every breakdown."""
    definitions = data.get("definitions", {})
    shown = [key for _, keys in sections(data) for key in keys]
    out = [(label(key), definitions[key]) for key in shown if key in definitions]
    breakdowns = data.get("breakdown_definitions", {})
    out += [(BREAKDOWN_TITLES.get(key, key), text) for key, text in breakdowns.items()]
    return out


def breakdowns(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, definition) of every breakdown."""
    return list(data.get("breakdown_definitions", {}).items())


def busiest_hours(data: Mapping[str, Any], limit: int = 3) -> list[dict[str, Any]]:
    """The busiest hours, most sessions first, ties by hour; hours with no session left out."""
    hours = [row for row in data.get("peak_hours", []) if row["sessions"]]
    return sorted(hours, key=lambda row: (-row["sessions"], row["hour"]))[:limit]


def provider_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The "AI usage by provider" table: headers and formatted cells."""
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
            count(row["calls"]),
            format_value("provider_success_rate", row.get("success_rate")),
            format_value("failover_rate", row.get("failover_rate")),
            count(row.get("failovers") or 0),
            format_value("avg_response_time_ms", row.get("avg_latency_ms")),
            count(row.get("input_tokens") or 0),
            count(row.get("output_tokens") or 0),
            row_cost(row),
        ]
        for row in data.get("providers", [])
    ]
    return headers, rows


def model_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The "AI usage by model" table: headers and formatted cells."""
    headers = ["Provider", "Model", "Feature", "Calls", "Input tok.", "Output tok.", "Cached tok.", "Cost"]
    rows = [
        [
            str(row["provider"]),
            str(row["model"]) or "(unknown)",
            str(row["feature"]),
            count(row["calls"]),
            count(row.get("input_tokens") or 0),
            count(row.get("output_tokens") or 0),
            count(row.get("cached_tokens") or 0),
            row_cost(row),
        ]
        for row in data.get("models", [])
    ]
    return headers, rows


def agent_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The "Human support by agent" table: headers and formatted cells."""
    headers = ["Agent", "Conversations", "First response (avg)", "Resolved", "Resolution time (avg)", "CSAT"]
    rows = [
        [
            str(row["agent"]),
            count(row["conversations"]),
            format_value("avg_human_first_response_ms", row.get("avg_human_first_response_ms")),
            count(row.get("resolved") or 0),
            format_value("avg_human_resolution_ms", row.get("avg_human_resolution_ms")),
            format_value("csat", row.get("csat")),
        ]
        for row in data.get("agents", [])
    ]
    return headers, rows


def daily_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The "Daily" table: headers and formatted cells."""
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


_SCORES = ("accuracy", "precision", "recall", "f1")


def prediction_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The "How right the AI is" table: per predictor, its confusion matrix against what visitors
    answered (positive = satisfied / resolved), the sample size and the scores."""
    headers = ["Predictor", "Checked", "TP", "FP", "FN", "TN", "Accuracy", "Precision", "Recall", "F1"]
    rows = [
        [
            str(row["label"]),
            count(row["n"]),
            *(count(row[cell]) for cell in ("tp", "fp", "fn", "tn")),
            *(format_value(f"{row['predictor']}_{score}", row.get(score)) for score in _SCORES),
        ]
        for row in data.get("prediction_quality", [])
    ]
    return headers, rows


def sentiment_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The "Sentiment distribution" table: visitor messages and analysed conversations per label."""
    headers = ["Sentiment", "Visitor messages", "Conversations"]
    sentiment = data.get("sentiment") or {}
    messages, conversations = sentiment.get("messages", {}), sentiment.get("conversations", {})
    if not any(messages.values()) and not any(conversations.values()):
        return headers, []
    rows = [
        [name.capitalize(), count(messages.get(name, 0)), count(conversations.get(name, 0))]
        for name in ("negative", "neutral", "positive")
    ]
    rows.append(["Unscored (uncovered language)", count(messages.get("unscored", 0)), ""])
    return headers, rows

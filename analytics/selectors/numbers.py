"""Breakdowns, the daily series, AI usage and the weekly report's data, over a period's rollup rows."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from analytics import metrics, support
from analytics.metrics import Totals
from analytics.selectors.base import (
    WEEKDAYS,
    Filters,
    Period,
    _bounds,
    _provider_rows,
    _session_rows,
    _sessions_in,
    summary,
)
from analytics.selectors.sources import by_source
from assistant.models import ChatEvent


def breakdowns(period: Period, filters: Filters = Filters(), *, limit: int = 10) -> dict[str, Any]:
    """Topics, common issues, user types, peak hours, providers, models, sentiment, languages and
    how right the AI is (`prediction_quality`) of a period."""
    intelligence = Totals()
    topics: dict[str, int] = defaultdict(int)
    issues: dict[str, int] = defaultdict(int)
    user_types: dict[str, int] = defaultdict(int)
    hours = [0] * 24
    heat = [[0] * 24 for _ in WEEKDAYS]
    for row in _session_rows(period, filters, "day", "user_type", "sessions", "topics", "issue_topics", "hours",
                             *INTELLIGENCE_FIELDS):  # fmt: skip
        intelligence.add_session_row({name: row[name] for name in INTELLIGENCE_FIELDS})
        for topic, count in row["topics"].items():
            topics[topic] += count
        for topic, count in row["issue_topics"].items():
            issues[topic] += count
        user_types[row["user_type"]] += row["sessions"]
        for hour, count in enumerate(row["hours"] or []):
            hours[hour] += count
            heat[row["day"].weekday()][hour] += count
    sessions = sum(user_types.values())
    return {
        "top_topics": [{"topic": name, "sessions": count} for name, count in metrics.top(topics, limit)],
        "common_issues": [{"topic": name, "sessions": count} for name, count in metrics.top(issues, limit)],
        "user_types": [
            {"user_type": name, "sessions": count, "share": metrics.round_value("x", metrics.rate(count, sessions))}
            for name, count in metrics.top(user_types, len(user_types))
        ],
        "peak_hours": [{"hour": hour, "sessions": count} for hour, count in enumerate(hours)],
        "peak_heatmap": {"weekdays": WEEKDAYS, "sessions": heat},
        "providers": providers(period, filters),
        "models": models_usage(period, filters),
        **intelligence_breakdowns(intelligence, limit=limit),
        "sources": by_source(period, filters),
    }


#: The rollup sums the sentiment, language and accuracy breakdowns read.
INTELLIGENCE_FIELDS = (
    "message_sentiments",
    "unscored_messages",
    "conversation_sentiments",
    "languages",
    "confusion",
)
SENTIMENT_LABELS = ("negative", "neutral", "positive")


def intelligence_breakdowns(totals: Totals, *, limit: int = 10) -> dict[str, Any]:
    """The sentiment distribution, the languages and the confusion matrices of a period's totals."""
    return {
        "sentiment": {
            "messages": {
                **{name: totals.message_sentiments.get(name, 0) for name in SENTIMENT_LABELS},
                "unscored": totals.unscored_messages,
            },
            "conversations": {name: totals.conversation_sentiments.get(name, 0) for name in SENTIMENT_LABELS},
        },
        "languages": [{"language": name, "sessions": count} for name, count in metrics.top(totals.languages, limit)],
        "prediction_quality": metrics.prediction_quality(totals),
    }


def providers(period: Period, filters: Filters = Filters()) -> list[dict[str, Any]]:
    """Per provider: calls, success and failover rates, latency, tokens, cost."""
    by_provider: dict[str, Totals] = defaultdict(Totals)
    latency: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in _provider_rows(period, filters):
        by_provider[row["provider"]].add_provider_row(row)
        latency[row["provider"]][0] += row["latency_ms_sum"]
        latency[row["provider"]][1] += row["latency_count"]
    out = []
    for name in sorted(by_provider):
        t = by_provider[name]
        out.append(
            {
                "provider": name,
                "calls": t.calls,
                "attempted": t.calls_attempted,
                "success_rate": metrics.round_value(
                    "provider_success_rate", metrics.provider_success_rate(ok=t.calls_ok, attempted=t.calls_attempted)
                ),
                "failover_rate": metrics.round_value(
                    "failover_rate",
                    metrics.provider_failover_rate(failed_over=t.calls_failed_over, attempted=t.calls_attempted),
                ),
                "failovers": t.calls_failed_over,
                "avg_latency_ms": metrics.round_value("avg_response_time_ms", metrics.ratio(*latency[name])),
                "input_tokens": t.input_tokens,
                "output_tokens": t.output_tokens,
                "cached_tokens": t.cached_tokens,
                "cost_usd": metrics.round_value("cost_usd", float(t.cost_usd)),
                "price_unknown_calls": t.price_unknown_calls,
            }
        )  # fmt: skip
    return out


def provider_totals(period: Period, filters: Filters = Filters(), *, by: str = "feature") -> dict[str, Totals]:
    """The period's provider-call sums per value of `by` (feature, provider or model), for the registry."""
    grouped: dict[str, Totals] = defaultdict(Totals)
    for row in _provider_rows(period, filters):
        grouped[row[by]].add_provider_row(row)
    return dict(grouped)


def models_usage(period: Period, filters: Filters = Filters()) -> list[dict[str, Any]]:
    """Per provider, model and feature: calls, tokens, cost (or "price unknown")."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in _provider_rows(period, filters):
        if row["calls"] == 0:
            continue  # a failover-only row (the failed provider's model was not recorded)
        key = (row["provider"], row["model"], row["feature"])
        group = groups.setdefault(
            key,
            {
                "provider": key[0],
                "model": key[1],
                "feature": key[2],
                "calls": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cached_tokens": 0,
                "cost": Decimal(0),
                "price_unknown_calls": 0,
            },
        )
        for name in ("calls", "input_tokens", "output_tokens", "cached_tokens", "price_unknown_calls"):
            group[name] += row[name]
        group["cost"] += row["cost_usd"]
    out = []
    for key in sorted(groups):
        group = groups.pop(key)
        cost = group.pop("cost")
        group["price_unknown"] = group["price_unknown_calls"] > 0
        group["cost_usd"] = None if group["price_unknown"] and cost == 0 else float(round(cost, 6))
        out.append(group)
    return out


def daily_series(period: Period, filters: Filters = Filters()) -> list[dict[str, Any]]:
    """Per day of the period: the summary metrics of that day alone (empty days included)."""
    per_day: dict[date, Totals] = defaultdict(Totals)
    for row in _session_rows(period, filters):
        per_day[row["day"]].add_session_row(row)
    for row in _provider_rows(period, filters):
        per_day[row["day"]].add_provider_row(row)
    out = []
    for offset in range(period.days):
        day = period.start + timedelta(days=offset)
        values = metrics.summarize(per_day.get(day) or Totals())
        out.append({"date": day.isoformat(), **{key: metrics.round_value(key, value) for key, value in values.items()}})
    return out


def agent_table(period: Period, filters: Filters = Filters()) -> list[dict[str, Any]]:
    """Per person at the desk, over the period's sessions: conversations, first response, resolution, CSAT."""
    return support.agent_rows(_sessions_in(period, filters))


def report(period: Period, filters: Filters = Filters(), *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the weekly report shows, as JSON-ready data."""
    now = now or timezone.now()
    data = summary(period, filters)
    data.update(breakdowns(period, filters))
    data["daily"] = daily_series(period, filters)
    data["agents"] = agent_table(period, filters)
    data["generated_at"] = now.isoformat()
    data["timezone"] = settings.TIME_ZONE
    data["definitions"] = {key: metric.definition for key, metric in metrics.METRICS.items()}
    data["breakdown_definitions"] = dict(metrics.BREAKDOWN_DEFINITIONS)
    return data


# --- Dashboard reads ------------------------------------------------------------------------
def feature_usage(period: Period, filters: Filters = Filters()) -> dict[str, Any]:
    """AI calls, tokens and cost per feature (chat replies, titles), and widget actions by name."""
    features: dict[str, dict[str, Any]] = {}
    for row in models_usage(period, filters):
        item = features.setdefault(
            row["feature"],
            {"feature": row["feature"], "calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0,
             "price_unknown_calls": 0},
        )  # fmt: skip
        for name in ("calls", "input_tokens", "output_tokens", "price_unknown_calls"):
            item[name] += row[name]
        item["cost_usd"] = round(item["cost_usd"] + (row["cost_usd"] or 0.0), 6)
    start, end = _bounds(period)
    events = ChatEvent.objects.filter(created_at__gte=start, created_at__lt=end)
    if filters.user_type:
        events = events.filter(session__user_type=filters.user_type)
    events = events.filter(filters.sessions())
    actions = {row["name"]: row["n"] for row in events.values("name").annotate(n=Count("pk")).order_by()}
    return {
        "ai_features": [features[key] for key in sorted(features)],
        "actions": [{"name": name, "count": count} for name, count in metrics.top(actions, len(actions))],
    }


def cost_trend(period: Period, filters: Filters = Filters()) -> dict[str, Any]:
    """AI cost and tokens per day, and per provider and model, for the period."""
    daily = [
        {
            "date": day["date"],
            "cost_usd": day["cost_usd"],
            "tokens": day["tokens"],
            "price_unknown_calls": day["price_unknown_calls"],
            "sessions": day["sessions"],
            "cost_per_session": day["cost_per_session"],
        }
        for day in daily_series(period, filters)
    ]
    return {"daily": daily, "providers": providers(period, filters), "models": models_usage(period, filters)}

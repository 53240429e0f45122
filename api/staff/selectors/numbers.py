"""The staff API's numbers: the metric registry, insights and AI usage, read through the analytics selectors.

Nothing here computes a metric: every value is a registry metric (`analytics.metrics.METRICS`)
over the same period sums the dashboard and the weekly report read (`selectors.period_totals`,
`daily_series`, `tables`, `cost_trend`, `feature_usage`, `provider_totals`), rounded as they
round it (`metrics.round_value`). The API only renames them to the fields its clients expect
(`total_ai_messages` is the `assistant_messages` metric, and so on: docs/api.md lists each).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from analytics import metrics, selectors
from analytics.metrics import Totals
from analytics.selectors import Filters, Period

#: Insights' overview: each field and the registry metric it is.
OVERVIEW = {
    "total_ai_messages": "assistant_messages",
    "feedback_rate": "feedback_rate",
    "satisfaction_rate": "satisfaction_rate",
    "engagement_rate": "feedback_session_rate",
    "avg_messages_per_conversation": "messages_per_session",
    "total_conversations": "sessions",
    "ai_messages_with_feedback": "rated_replies",
}
#: The metric of insights' 24-hour trend.
TREND_METRIC = "assistant_messages"
FEEDBACK_DAYS = 7
#: Usage: each field and the registry metric it is.
USAGE = {
    "total_requests": "provider_calls",
    "cached_requests": "cached_replies",
    "failed_requests": "failed_provider_calls",
    "cache_hit_rate": "cache_hit_rate",
    "success_rate": "provider_success_rate",
    "total_cost": "cost_usd",
    "avg_execution_time": "avg_provider_latency_ms",
    "total_tokens": "tokens",
    "price_unknown_calls": "price_unknown_calls",
}


def _rounded(values: dict[str, Any], key: str) -> Any:
    return metrics.round_value(key, values[key])


def _values(totals: Totals) -> dict[str, Any]:
    return metrics.summarize(totals)


# --- /metrics/ --------------------------------------------------------------------------------
def metric_list(period: Period, filters: Filters, *, now: datetime | None = None) -> dict[str, Any]:
    """Every registry metric: value, previous period's value, change, and its definition.

    The live metrics (no formula: visitors live or waiting now) carry their value now, whatever
    the period and filters, and no previous value.
    """
    now = now or timezone.now()
    current = _values(selectors.period_totals(period, filters))
    previous = _values(selectors.period_totals(period.previous(), filters))
    live = selectors.live_numbers(now)
    items = []
    for key, metric in metrics.METRICS.items():
        item: dict[str, Any] = {
            "key": key,
            "label": metric.label,
            "unit": metric.unit,
            "definition": metric.definition,
            "higher_is_better": metric.higher_is_better,
            "headline": metric.headline,
            "live": metric.formula is None,
        }
        if metric.formula is None:
            item.update(value=live.get(key), previous_value=None, change=None, direction=None)
        else:
            change = metrics.change(current[key], previous[key])
            item.update(
                value=_rounded(current, key),
                previous_value=_rounded(previous, key),
                change=change["pct"],
                direction=change["direction"],
            )
        items.append(item)
    return {
        "period": period.as_dict(),
        "previous_period": period.previous().as_dict(),
        "filters": filters.as_dict(),
        "metrics": items,
    }


# --- /insights/ -------------------------------------------------------------------------------
def insights(period: Period, filters: Filters, *, now: datetime | None = None) -> dict[str, Any]:
    """The overview of a period, the 24-hour trend, a week of feedback, recent feedback, busiest
    conversations, and how right the AI is (`metrics.prediction_quality`, as the dashboard and report)."""
    now = now or timezone.now()
    values = selectors.summary(period, filters)["metrics"]
    day = Period.last_hours(24, now)
    current = _values(selectors.period_totals(day, filters))[TREND_METRIC]
    previous = _values(selectors.period_totals(day.previous(), filters))[TREND_METRIC]
    change = metrics.change(current, previous)
    week = Period.ending(period.end, FEEDBACK_DAYS)
    tables = selectors.tables(period, filters)
    return {
        "period": period.as_dict(),
        "filters": filters.as_dict(),
        "overview": {field: values[key] for field, key in OVERVIEW.items()},
        "trend_24h": {
            "metric": TREND_METRIC,
            "start": day.window[0] if day.window else None,
            "end": day.window[1] if day.window else None,
            "current": current,
            "previous": previous,
            "change_percent": change["pct"],
            "direction": change["direction"] or "flat",
        },
        "daily_feedback": [
            {"date": row["date"], "positive": row["thumbs_up"], "negative": row["thumbs_down"]}
            for row in selectors.daily_series(week, filters)
        ],
        "recent_feedback": [
            {
                "message_id": row["message_id"],
                "conversation_id": row["session_id"],
                "rating": row["rating"],
                "reason": row["reason"],
                "comment": row["comment"],
                "created_at": row["at"],
                "provider": row["provider"],
            }
            for row in tables["last_feedback"]
        ],
        "most_active_conversations": [
            {
                "id": row["session_id"],
                "title": row["title"],
                "message_count": row["messages"],
                "last_activity_at": row["last_activity_at"],
                "started_at": row["started_at"],
            }
            for row in tables["most_active"]
        ],
        "prediction_quality": metrics.prediction_quality(selectors.period_totals(period, filters)),
    }


# --- /usage/ ----------------------------------------------------------------------------------
def usage(period: Period, filters: Filters) -> dict[str, Any]:
    """AI usage over a period: requests, cache, failures, cost, time, tokens, and per feature."""
    values = _values(selectors.period_totals(period, filters))
    return {
        "period": period.as_dict(),
        "filters": filters.as_dict(),
        **{field: _rounded(values, key) for field, key in USAGE.items()},
        "feature_breakdown": feature_breakdown(period, filters),
    }


def feature_breakdown(period: Period, filters: Filters) -> list[dict[str, Any]]:
    """Per AI feature (chat replies, titles): calls, share of all calls, cost, mean call time."""
    groups = {feature: _values(totals) for feature, totals in selectors.provider_totals(period, filters).items()}
    total = sum(values["provider_calls"] for values in groups.values())
    return [
        {
            "feature": feature,
            "count": values["provider_calls"],
            "percentage": metrics.round_value("percentage", metrics.rate(values["provider_calls"], total)),
            "total_cost": _rounded(values, "cost_usd"),
            "avg_execution_time": _rounded(values, "avg_provider_latency_ms"),
            "price_unknown_calls": values["price_unknown_calls"],
        }
        for feature, values in sorted(groups.items())
        if values["provider_calls"]
    ]


def usage_daily(period: Period, filters: Filters) -> dict[str, Any]:
    """The usage numbers of each day of the period (empty days included)."""
    days = [
        {"date": row["date"], **{field: row[key] for field, key in USAGE.items()}}
        for row in selectors.daily_series(period, filters)
    ]
    return {"period": period.as_dict(), "filters": filters.as_dict(), "daily": days}


def usage_cost_trend(period: Period, filters: Filters) -> dict[str, Any]:
    """Cost and tokens per day, per provider and per model (the dashboard's cost chart)."""
    return {"period": period.as_dict(), "filters": filters.as_dict(), **selectors.cost_trend(period, filters)}


def usage_features(period: Period, filters: Filters) -> dict[str, Any]:
    """Per AI feature (calls, share, cost, time, tokens) and the widget's actions by name."""
    data = selectors.feature_usage(period, filters)
    return {
        "period": period.as_dict(),
        "filters": filters.as_dict(),
        "feature_breakdown": feature_breakdown(period, filters),
        "ai_features": data["ai_features"],
        "actions": data["actions"],
    }

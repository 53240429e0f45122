"""The period's numbers side by side per source: the widget's chats beside the API's and an import's.

A team that imports its history wants to compare it with Parley's own chats (before and after):
the same registry metrics, computed over each source's rollup rows with the same `period_totals`
(so a column here equals the dashboard filtered to that source), plus each source's top topics.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.db.models import Q

from analytics import metrics
from analytics.models import DailySessionRollup
from analytics.selectors.base import Filters, Period, _session_rows, _sessions_in, period_totals

#: The registry metrics the comparison shows, in order.
SOURCE_METRICS: tuple[str, ...] = (
    "sessions",
    "messages",
    "csat",
    "ai_csat",
    "ai_csat_coverage",
    "resolution_rate",
    "fcr_rate",
    "avg_agent_response_ms",
    "avg_sentiment",
    "negative_conversation_rate",
    "recovered_rate",
)
#: Top topics listed per source.
TOPICS_PER_SOURCE = 3
#: Sources compared at most (the largest first): the column count of a table stays readable.
MAX_SOURCES = 8


def sources_present(period: Period, filters: Filters = Filters()) -> list[str]:
    """The sources with sessions in the period (and the other filters), the largest first."""
    if period.window is not None or filters.per_session:
        counts: dict[str, int] = {}
        for source in _sessions_in(period, filters).values_list("session__source", flat=True).iterator():
            counts[source] = counts.get(source, 0) + 1
    else:
        query = Q(day__gte=period.start, day__lte=period.end)
        if filters.user_type:
            query &= Q(user_type=filters.user_type)
        if filters.provider:
            query &= Q(provider=filters.provider)
        if filters.source:
            query &= Q(source=filters.source)
        counts = {}
        for source, sessions in DailySessionRollup.objects.filter(query).values_list("source", "sessions"):
            counts[source] = counts.get(source, 0) + sessions
    return [name for name, _ in metrics.top(counts, MAX_SOURCES)]


def by_source(period: Period, filters: Filters = Filters()) -> list[dict[str, Any]]:
    """One row per source: its registry metrics (`SOURCE_METRICS`) and top topics over the period."""
    out = []
    for source in sources_present(period, filters):
        narrowed = replace(filters, source=source)
        values = metrics.summarize(period_totals(period, narrowed))
        topics: dict[str, int] = {}
        for row in _session_rows(period, narrowed, "topics"):
            for topic, count in (row["topics"] or {}).items():
                topics[topic] = topics.get(topic, 0) + count
        out.append(
            {
                "source": source,
                "metrics": {key: metrics.round_value(key, values.get(key)) for key in SOURCE_METRICS},
                "top_topics": [
                    {"topic": name, "sessions": count} for name, count in metrics.top(topics, TOPICS_PER_SOURCE)
                ],
            }
        )
    return out

"""Analytics reads: period summaries, breakdowns and series, all from the daily rollups.

The weekly report, the dashboard, its JSON API and the exports call these and nothing else, so
they print the same numbers. Formulas live in `metrics`; this module only picks rows and sums.

Periods are whole local days (`TIME_ZONE`), `start` to `end` inclusive. Filters: `user_type`
narrows the session numbers; `provider` narrows both session numbers (by the provider that
answered most of a session's replies) and provider calls. Token and cost numbers are not split
by user type (provider calls are rolled up per provider and model only). `source` (both rollups
are kept per source) narrows sessions and their calls; so does `external_user_id` (one visitor),
which no rollup is kept by: it is rolled up on the fly from that visitor's rows, like a window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from analytics import metrics, rollup, support
from analytics.metrics import Totals
from analytics.models import ChatAnalytics, DailyProviderRollup, DailySessionRollup
from assistant.models import ChatEvent, ChatSession, Feedback, ProviderCall, SessionRating

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
SESSION_ROLLUP_FIELDS = [
    f.name
    for f in DailySessionRollup._meta.concrete_fields
    if f.name not in {"id", "user_type", "provider", "source", "computed_at"}
]
SUMMARY_ROLLUP_FIELDS = [name for name in SESSION_ROLLUP_FIELDS if name not in {"topics", "issue_topics", "hours"}]
PROVIDER_ROLLUP_FIELDS = [
    f.name for f in DailyProviderRollup._meta.concrete_fields if f.name not in {"id", "computed_at"}
]


@dataclass(frozen=True, slots=True)
class Period:
    """Whole local days from `start` to `end`, inclusive; or, with `window`, exactly those times.

    Day periods read the stored daily rollups. A window (the dashboard's "last 24 hours") is
    rolled up on the fly from the sessions that started in it and the calls made in it, with
    the same arithmetic (`analytics.rollup`); `start`/`end` are then the local days it touches.
    """

    start: date
    end: date
    window: tuple[datetime, datetime] | None = None

    @classmethod
    def ending(cls, end: date, days: int) -> Period:
        """The `days` days that end with `end`."""
        return cls(start=end - timedelta(days=days - 1), end=end)

    @classmethod
    def last_hours(cls, hours: int, now: datetime | None = None) -> Period:
        """The `hours` hours up to `now`."""
        now = now or timezone.now()
        return cls.between(now - timedelta(hours=hours), now)

    @classmethod
    def between(cls, start: datetime, end: datetime) -> Period:
        """Exactly `[start, end)`."""
        return cls(start=timezone.localdate(start), end=timezone.localdate(end), window=(start, end))

    @property
    def days(self) -> int:
        """How many (local) days the period covers or touches."""
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        if self.window is not None:
            start, end = self.window
            return Period.between(start - (end - start), start)
        return Period.ending(self.start - timedelta(days=1), self.days)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        data: dict[str, Any] = {"start": self.start.isoformat(), "end": self.end.isoformat(), "days": self.days}
        if self.window is not None:
            data["start_time"], data["end_time"] = (moment.isoformat() for moment in self.window)
            data["hours"] = round((self.window[1] - self.window[0]).total_seconds() / 3600, 2)
        return data


@dataclass(frozen=True, slots=True)
class Filters:
    """Optional narrowing of a summary."""

    user_type: str | None = None
    provider: str | None = None
    source: str | None = None
    external_user_id: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """JSON form."""
        return {
            "user_type": self.user_type,
            "provider": self.provider,
            "source": self.source,
            "external_user_id": self.external_user_id,
        }

    @property
    def per_session(self) -> bool:
        """Whether the rollups cannot answer (they are kept per day, user type, provider and source)."""
        return bool(self.external_user_id)

    def sessions(self, prefix: str = "session__") -> Q:
        """The source and visitor filters on `ChatSession` fields reached through `prefix`."""
        q = Q()
        if self.source:
            q &= Q(**{f"{prefix}source": self.source})
        if self.external_user_id:
            q &= Q(**{f"{prefix}external_user_id": self.external_user_id})
        return q


def _session_rows(period: Period, filters: Filters, *fields: str) -> Iterable[dict[str, Any]]:
    """The period's session rollup rows as dicts of `fields` (stored, or rolled up for a window)."""
    if period.window is not None or filters.per_session:
        names = fields or SESSION_ROLLUP_FIELDS
        return [
            {name: getattr(row, name) for name in names}
            for row in rollup.session_rows(_sessions_in(period, filters), by_source=False)
        ]
    rows = DailySessionRollup.objects.filter(day__gte=period.start, day__lte=period.end)
    if filters.user_type:
        rows = rows.filter(user_type=filters.user_type)
    if filters.provider:
        rows = rows.filter(provider=filters.provider)
    if filters.source:
        rows = rows.filter(source=filters.source)
    return rows.values(*(fields or SESSION_ROLLUP_FIELDS))


def _provider_rows(period: Period, filters: Filters) -> Iterable[dict[str, Any]]:
    """The period's provider rollup rows as dicts (stored, or rolled up for a window)."""
    if period.window is not None or filters.per_session:
        calls = ProviderCall.objects.filter(filters.sessions())
        if filters.provider:
            calls = calls.filter(Q(provider=filters.provider) | Q(fallback_from=filters.provider))
        start, end = _bounds(period)
        if period.window is None:  # days without one of the filtered calls need no query of their own
            seen = calls.filter(started_at__gte=start, started_at__lt=end).aggregate(
                low=Min("started_at"), high=Max("started_at")
            )
            if seen["low"] is None:
                return []
            start, end = seen["low"], seen["high"] + timedelta(microseconds=1)
        out = []
        for day, low, high in rollup.day_parts(start, end):
            out += [
                {name: getattr(row, name) for name in PROVIDER_ROLLUP_FIELDS}
                for row in rollup.provider_rows(calls.filter(started_at__gte=low, started_at__lt=high), day)
                if not filters.provider or row.provider == filters.provider
            ]
        return out
    rows = DailyProviderRollup.objects.filter(day__gte=period.start, day__lte=period.end)
    if filters.provider:
        rows = rows.filter(provider=filters.provider)
    if filters.source:
        rows = rows.filter(source=filters.source)
    return rows.values(*PROVIDER_ROLLUP_FIELDS)


def period_totals(period: Period, filters: Filters = Filters()) -> Totals:
    """The sums of a period's rollup rows."""
    totals = Totals()
    # Topics and hours feed the breakdowns, not the summary: not decoding them saves a third.
    for row in _session_rows(period, filters, *SUMMARY_ROLLUP_FIELDS):
        totals.add_session_row(row)
    for row in _provider_rows(period, filters):
        totals.add_provider_row(row)
    return totals


def summary(period: Period, filters: Filters = Filters()) -> dict[str, Any]:
    """Every metric of the period, the previous period's, and the change of each headline one."""
    current = metrics.summarize(period_totals(period, filters))
    previous = metrics.summarize(period_totals(period.previous(), filters))
    return {
        "period": period.as_dict(),
        "previous_period": period.previous().as_dict(),
        "filters": filters.as_dict(),
        "metrics": {key: metrics.round_value(key, value) for key, value in current.items()},
        "changes": {
            key: _rounded_change(key, current[key], previous[key]) for key in metrics.headline() if key in current
        },
    }


def _rounded_change(key: str, current: Any, previous: Any) -> dict[str, Any]:
    result = metrics.change(current, previous)
    result["previous"] = metrics.round_value(key, result["previous"])  # type: ignore[arg-type]
    return result


def breakdowns(period: Period, filters: Filters = Filters(), *, limit: int = 10) -> dict[str, Any]:
    """Topics, common issues, user types, peak hours, providers and models of a period."""
    topics: dict[str, int] = defaultdict(int)
    issues: dict[str, int] = defaultdict(int)
    user_types: dict[str, int] = defaultdict(int)
    hours = [0] * 24
    heat = [[0] * 24 for _ in WEEKDAYS]
    for row in _session_rows(period, filters, "day", "user_type", "sessions", "topics", "issue_topics", "hours"):
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


def live_sessions(now: datetime | None = None) -> int:
    """Open sessions with visitor activity within `LIVE_SESSION_WINDOW_S` (read live, not rolled up)."""
    now = now or timezone.now()
    return ChatSession.objects.filter(
        status=ChatSession.Status.ACTIVE,
        last_seen_at__gte=now - timedelta(seconds=settings.LIVE_SESSION_WINDOW_S),
        last_seq__gt=0,
    ).count()


def live_numbers(now: datetime | None = None) -> dict[str, int]:
    """The registry's live metrics (`metrics.LIVE`) as they are now: sessions live, the queue for a person."""
    now = now or timezone.now()
    return {"live_sessions": live_sessions(now), **support.queue_now(now)}


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


def table_sizes() -> dict[str, int]:
    """Row counts of the chat and analytics tables (what `seed_demo_data` reports)."""
    return {
        "sessions": ChatSession.objects.count(),
        "analytics": ChatAnalytics.objects.count(),
        "rollups": DailySessionRollup.objects.count(),
    }


def session_analytics(session_pk: int) -> ChatAnalytics | None:
    """One session's analytics row."""
    return ChatAnalytics.objects.filter(session_id=session_pk).first()


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


def _bounds(period: Period) -> tuple[datetime, datetime]:
    if period.window is not None:
        return period.window
    zone = timezone.get_current_timezone()
    start = datetime.combine(period.start, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(period.end + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return start, end


SESSION_ROW_FIELDS = (
    "session__public_id",
    "session__title",
    "session__status",
    "user_type",
    "started_at",
    "last_activity_at",
    "total_messages",
    "engagement_score",
    "resolution",
    "escalated_to_human",
    "topics_discussed",
    "satisfaction_rating",
    "provider",
    "avg_response_time_ms",
    "handoff_requests",
    "human_involved",
)


def _session_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "session_id": str(row["session__public_id"]),
        "title": row["session__title"],
        "status": row["session__status"],
        "user_type": row["user_type"],
        "started_at": row["started_at"].isoformat(),
        "last_activity_at": row["last_activity_at"].isoformat(),
        "messages": row["total_messages"],
        "engagement_score": row["engagement_score"],
        "resolution": row["resolution"],
        "escalated": row["escalated_to_human"],
        "topics": row["topics_discussed"][:5],
        "rating": row["satisfaction_rating"],
        "provider": row["provider"],
        "avg_response_time_ms": row["avg_response_time_ms"],
        "handoff_requests": row["handoff_requests"],
        "human_involved": row["human_involved"],
    }


def _sessions_in(period: Period, filters: Filters) -> QuerySet[ChatAnalytics]:
    if period.window is not None:
        rows = ChatAnalytics.objects.filter(started_at__gte=period.window[0], started_at__lt=period.window[1])
    else:
        rows = ChatAnalytics.objects.filter(day__gte=period.start, day__lte=period.end)
    if filters.user_type:
        rows = rows.filter(user_type=filters.user_type)
    if filters.provider:
        rows = rows.filter(provider=filters.provider)
    return rows.filter(filters.sessions())


def tables(period: Period, filters: Filters = Filters(), *, limit: int = 20) -> dict[str, Any]:
    """The dashboard's tables: recent sessions, most active, last feedback, unresolved and escalated, agents."""
    rows = _sessions_in(period, filters)
    recent = rows.order_by("-started_at").values(*SESSION_ROW_FIELDS)[:limit]
    active = rows.order_by("-total_messages", "-started_at").values(*SESSION_ROW_FIELDS)[:5]
    attention = (
        rows.filter(Q(resolution=ChatAnalytics.Resolution.UNRESOLVED) | Q(escalated_to_human=True))
        .order_by("-last_activity_at")
        .values(*SESSION_ROW_FIELDS)[:limit]
    )
    start, end = _bounds(period)
    feedback = Feedback.objects.filter(updated_at__gte=start, updated_at__lt=end)
    if filters.user_type:
        feedback = feedback.filter(session__user_type=filters.user_type)
    if filters.provider:
        feedback = feedback.filter(message__provider=filters.provider)
    feedback = feedback.filter(filters.sessions())
    last_feedback = [
        {
            "session_id": str(item["session__public_id"]),
            "message_id": str(item["message__public_id"]),
            "rating": item["rating"],
            "reason": item["reason"],
            "comment": item["comment"],
            "reply": item["message__text"][:200],
            "provider": item["message__provider"],
            "at": item["updated_at"].isoformat(),
        }
        for item in feedback.order_by("-updated_at").values(
            "session__public_id", "message__public_id", "rating", "reason", "comment", "message__text",
            "message__provider", "updated_at",
        )[:20]
    ]  # fmt: skip
    return {
        "recent_sessions": [_session_row(row) for row in recent],
        "most_active": [_session_row(row) for row in active],
        "last_feedback": last_feedback,
        "attention": [_session_row(row) for row in attention],
        "agents": agent_table(period, filters),
    }


def snapshot(period: Period, filters: Filters = Filters(), *, now: datetime | None = None) -> dict[str, Any]:
    """The dashboard's headline numbers now: the live ones (`live`) plus the period's summary."""
    now = now or timezone.now()
    data = summary(period, filters)
    values = data["metrics"]
    live = live_numbers(now)
    data.update(
        {
            "timestamp": now.isoformat(),
            "live": live,
            "active_sessions": live["live_sessions"],
            "avg_response_time": values["avg_response_time_ms"],
            "avg_satisfaction": values["avg_rating"],
            "satisfaction_rate": values["satisfaction_rate"],
        }
    )
    return data


def transcript(session_id: Any) -> dict[str, Any] | None:
    """A session's messages with provider, timing and feedback, and its analytics row."""
    session = ChatSession.objects.filter(public_id=session_id).first()
    if session is None:
        return None
    feedback = {item.message_id: item for item in Feedback.objects.filter(session=session)}
    calls: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for call in ProviderCall.objects.filter(session=session).order_by("started_at", "pk"):
        if call.message_id is not None:
            calls[call.message_id].append(
                {"provider": call.provider, "model": call.model, "attempt": call.attempt, "outcome": call.outcome,
                 "latency_ms": call.latency_ms, "error_kind": call.error_kind, "fallback_from": call.fallback_from}
            )  # fmt: skip
    messages = []
    for message in session.messages.order_by("seq"):
        item = feedback.get(message.pk)
        messages.append(
            {
                "seq": message.seq,
                "message_id": str(message.public_id),
                "role": message.role,
                "text": message.text,
                "status": message.status,
                "provider": message.provider,
                "model": message.model,
                "ttft_ms": message.ttft_ms,
                "duration_ms": message.duration_ms,
                "cached": message.cached,
                "error": message.error_code,
                "sources": message.knowledge_sections,
                "created_at": message.created_at.isoformat(),
                "author": message.author_name,
                "feedback": {"rating": item.rating, "reason": item.reason, "comment": item.comment} if item else None,
                "calls": calls.get(message.pk, []),
            }
        )
    row = ChatAnalytics.objects.filter(session=session).values().first()
    rating = SessionRating.objects.filter(session=session).values("score", "resolved", "comment").first()
    analytics = None
    if row is not None:
        analytics = {
            key: (value.isoformat() if hasattr(value, "isoformat") else value)
            for key, value in row.items()
            if key not in {"id", "session_id", "response_times_ms", "ttfts_ms"}
        }
    return {
        "session_id": str(session.public_id),
        "title": session.title,
        "status": session.status,
        "user_type": session.user_type,
        "page_url": session.page_url,
        "created_at": session.created_at.isoformat(),
        "live": session.status == ChatSession.Status.ACTIVE
        and session.last_seen_at >= timezone.now() - timedelta(seconds=settings.LIVE_SESSION_WINDOW_S),
        "messages": messages,
        "rating": rating,
        "analytics": analytics,
    }

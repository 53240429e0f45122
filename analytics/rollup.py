"""Rollup arithmetic: sums over sessions and provider calls, as (unsaved) rollup rows.

`services.rollup_day` stores them per local day; `selectors` builds them on the fly for windows
that are not whole days (the dashboard's last 24 hours). One implementation, so a window and
the stored days add up the same way.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from analytics import metrics, pricing
from analytics.models import ChatAnalytics, DailyProviderRollup, DailySessionRollup
from assistant.models import ProviderCall


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The aware datetimes where a local day starts and the next one starts."""
    zone = timezone.get_current_timezone()
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return start, end


def day_parts(start: datetime, end: datetime) -> list[tuple[date, datetime, datetime]]:
    """`[start, end)` cut at local midnights: (local day, part start, part end) for each day it touches."""
    parts = []
    day = timezone.localtime(start).date()
    while True:
        day_start, day_end = day_bounds(day)
        low, high = max(start, day_start), min(end, day_end)
        if low < high:
            parts.append((day, low, high))
        if day_end >= end:
            return parts
        day += timedelta(days=1)


def session_rows(analytics: QuerySet[ChatAnalytics], *, by_source: bool = True) -> list[DailySessionRollup]:
    """Unsaved session rollup rows of the given sessions, per local day, user type, main provider and source.

    `by_source=False` leaves the source out (rows then carry source ""): a window's sums need no
    grouping, and the source is the one column that takes a join with the sessions.
    """
    groups: dict[tuple[date, str, str, str], DailySessionRollup] = {}
    for row in analytics.values(
        "day",
        "user_type",
        "provider",
        *(["session__source"] if by_source else []),
        "started_at",
        "closed",
        "total_messages",
        "user_messages",
        "assistant_messages",
        "response_times_ms",
        "ttfts_ms",
        "cached_replies",
        "failed_replies",
        "feedback_up",
        "feedback_down",
        "satisfaction_rating",
        "resolution",
        "escalated_to_human",
        "engagement_score",
        "avg_sentiment",
        "failovers",
        "provider_errors",
        "topics_discussed",
        "handoff_requests",
        "human_involved",
        "human_resolved",
        "agent_messages",
        "avg_agent_response_ms",
        "human_first_response_ms",
        "human_resolution_ms",
        "visitor_returned",
        *INTELLIGENCE_FIELDS,
    ):
        key = (row["day"], row["user_type"], row["provider"], row.get("session__source", ""))
        group = groups.get(key)
        if group is None:
            group = groups[key] = DailySessionRollup(
                day=key[0], user_type=key[1], provider=key[2], source=key[3], response_hist={}, ttft_hist={},
                rating_hist={}, topics={}, issue_topics={}, hours=[0] * 24, human_first_response_hist={},
                message_sentiments={}, languages={}, conversation_sentiments={}, confusion={},
            )  # fmt: skip
        _add_session(group, row)
    return list(groups.values())


def _add_session(group: DailySessionRollup, row: dict[str, Any]) -> None:
    """Fold one session's analytics into its group's sums."""
    group.sessions += 1
    group.closed_sessions += row["closed"]
    group.engaged_sessions += metrics.is_engaged(row["user_messages"])
    group.total_messages += row["total_messages"]
    group.user_messages += row["user_messages"]
    group.assistant_messages += row["assistant_messages"]
    times, ttfts = row["response_times_ms"] or [], row["ttfts_ms"] or []
    group.replies_timed += len(times)
    group.response_ms_sum += sum(times)
    _count_into(group.response_hist, times)
    group.ttft_count += len(ttfts)
    group.ttft_ms_sum += sum(ttfts)
    _count_into(group.ttft_hist, ttfts)
    group.cached_replies += row["cached_replies"]
    group.failed_replies += row["failed_replies"]
    group.feedback_up += row["feedback_up"]
    group.feedback_down += row["feedback_down"]
    group.sessions_with_feedback += bool(row["feedback_up"] or row["feedback_down"])
    if row["satisfaction_rating"] is not None:
        group.ratings += 1
        group.rating_sum += row["satisfaction_rating"]
        score = str(row["satisfaction_rating"])
        group.rating_hist[score] = group.rating_hist.get(score, 0) + 1
    kind = row["resolution"]
    group.resolved_confirmed += kind == ChatAnalytics.Resolution.CONFIRMED
    group.resolved_assumed += kind == ChatAnalytics.Resolution.ASSUMED
    group.unresolved += kind == ChatAnalytics.Resolution.UNRESOLVED
    group.pending += kind == ChatAnalytics.Resolution.PENDING
    group.escalated += row["escalated_to_human"]
    group.engagement_sum += row["engagement_score"]
    # `avg_sentiment` is the mean of the session's *scored* visitor messages: weighted by them,
    # so a message in a language no lexicon covers neither counts as 0 nor dilutes the mean.
    scored = sum((row["message_sentiments"] or {}).values())
    if row["avg_sentiment"] is not None and scored:
        group.sentiment_sum += row["avg_sentiment"] * scored
        group.sentiment_count += scored
    group.failovers += row["failovers"]
    group.provider_errors += row["provider_errors"]
    for topic in session_topics(row["topics_discussed"], row["session__analysis__topics"]):
        group.topics[topic] = group.topics.get(topic, 0) + 1
        if kind == ChatAnalytics.Resolution.UNRESOLVED:
            group.issue_topics[topic] = group.issue_topics.get(topic, 0) + 1
    group.hours[timezone.localtime(row["started_at"]).hour] += 1
    _add_human_support(group, row)
    _add_intelligence(group, row)


#: The `ChatAnalytics` values (and, through the session, its rating and analysis) that
#: `_add_intelligence` reads. A session without an analysis or a rating reads None (LEFT JOIN).
INTELLIGENCE_FIELDS = (
    "message_sentiments",
    "unscored_messages",
    "language",
    "opening_sentiment",
    "closing_sentiment",
    "rule_resolved",
    "session__rating__resolved",
    "session__analysis__id",
    "session__analysis__sentiment_label",
    "session__analysis__predicted_satisfaction",
    "session__analysis__predicted_resolved",
    "session__analysis__topics",
    "session__analysis__needs_follow_up",
)


def session_topics(tracked: list[str] | None, analysed: list[str] | None) -> list[str]:
    """A session's topics: the tracker's (knowledge sections, taxonomy keywords), then the
    analysis's that the tracker did not find, each once; so an analysed history has topics too."""
    seen = list(dict.fromkeys(tracked or []))
    return seen + [topic for topic in dict.fromkeys(analysed or []) if topic and topic not in seen]


def _add_intelligence(group: DailySessionRollup, row: dict[str, Any]) -> None:
    """Fold one session's sentiment, trajectory, AI predictions and their checks into the sums."""
    _count_labels(group.message_sentiments, row["message_sentiments"] or {})
    group.unscored_messages += row["unscored_messages"]
    language = row["language"] or ""
    group.languages[language] = group.languages.get(language, 0) + 1
    opening, closing = row["opening_sentiment"], row["closing_sentiment"]
    if opening is not None and closing is not None:
        group.trajectory_sessions += 1
        group.opening_sentiment_sum += opening
        group.closing_sentiment_sum += closing
        opened_negative = metrics.opened_negative(opening)
        group.opened_negative += opened_negative
        group.recovered += opened_negative and metrics.closed_positive(closing)
    rating = row["satisfaction_rating"]
    finished = row["resolution"] != ChatAnalytics.Resolution.PENDING
    predicted = row["session__analysis__predicted_satisfaction"]
    if row["session__analysis__id"] is not None:
        group.analyzed_sessions += 1
        if row["session__analysis__sentiment_label"]:
            _count_labels(group.conversation_sentiments, {row["session__analysis__sentiment_label"]: 1})
        group.follow_up_sessions += bool(row["session__analysis__needs_follow_up"])
    if finished and rating is None:
        group.unrated_finished += 1
        if predicted is not None:
            group.predicted_sessions += 1
            group.predicted_satisfied += metrics.is_satisfied(predicted)
            group.predicted_satisfaction_sum += predicted
    checks = {
        "satisfaction": (
            None if predicted is None or rating is None else metrics.is_satisfied(predicted),
            None if rating is None else metrics.is_satisfied(rating),
        ),
        "resolution": (row["session__analysis__predicted_resolved"], row["session__rating__resolved"]),
        "assumed_rule": (row["rule_resolved"], row["session__rating__resolved"]),
    }
    for predictor, (guess, truth) in checks.items():
        if guess is not None and truth is not None:
            key = f"{predictor}.{metrics.confusion_cell(predicted=guess, actual=truth)}"
            group.confusion[key] = group.confusion.get(key, 0) + 1


def _count_labels(target: dict[str, int], counts: dict[str, int]) -> None:
    """Add label counts into `target` in place."""
    for name, count in counts.items():
        target[name] = target.get(name, 0) + count


def _add_human_support(group: DailySessionRollup, row: dict[str, Any]) -> None:
    """Fold one session's human-support numbers into its group's sums."""
    kind = row["resolution"]
    group.handoff_sessions += row["handoff_requests"] > 0
    group.human_sessions += row["human_involved"]
    resolved = kind in {ChatAnalytics.Resolution.CONFIRMED, ChatAnalytics.Resolution.ASSUMED}
    group.contained += resolved and not row["human_involved"]
    group.agent_messages += row["agent_messages"]
    first = row["human_first_response_ms"] or []
    group.human_first_response_count += len(first)
    group.human_first_response_ms_sum += sum(first)
    _count_into(group.human_first_response_hist, first)
    resolutions = row["human_resolution_ms"] or []
    group.human_resolution_count += len(resolutions)
    group.human_resolution_ms_sum += sum(resolutions)
    if row["avg_agent_response_ms"] is not None:
        group.agent_response_sessions += 1
        group.agent_response_ms_sum += row["avg_agent_response_ms"]
    fcr = metrics.is_resolved_at_first_contact(
        resolution=kind, human_resolved=row["human_resolved"], visitor_returned=row["visitor_returned"]
    )
    if fcr is not None:
        group.fcr_sessions += 1
        group.fcr_resolved += fcr


def _count_into(hist: dict[str, int], values: list[int]) -> None:
    """Add `values` to a histogram in place (`metrics.histogram`'s buckets): a group's histograms grow
    with every session, and merging a copy per session made rolling up a window quadratic in its buckets."""
    for value in values:
        bucket = str(metrics.histogram_bucket(value))
        hist[bucket] = hist.get(bucket, 0) + 1


def provider_rows(calls: QuerySet[ProviderCall], day: date) -> list[DailyProviderRollup]:
    """Unsaved provider rollup rows of the given calls (all of local day `day`, priced that day), per
    feature, provider, model and the source of the call's session ('' for a call outside a session)."""
    priced = pricing.table()
    rows: dict[tuple[str, str, str, str], DailyProviderRollup] = {}
    tokens = Q(input_tokens__gt=0) | Q(output_tokens__gt=0)
    for group in (
        calls.values("feature", "provider", "model", "session__source")
        .annotate(
            n=Count("pk"),
            n_ok=Count("pk", filter=Q(outcome="ok")),
            n_error=Count("pk", filter=Q(outcome="error")),
            n_interrupted=Count("pk", filter=Q(outcome="interrupted")),
            n_stopped=Count("pk", filter=Q(outcome="stopped")),
            n_skipped=Count("pk", filter=Q(outcome="skipped")),
            latency_sum=Sum("latency_ms"),
            latency_n=Count("latency_ms"),
            ttft_sum=Sum("ttft_ms"),
            ttft_n=Count("ttft_ms"),
            input_sum=Sum("input_tokens"),
            output_sum=Sum("output_tokens"),
            cached_sum=Sum("cached_tokens"),
            estimated=Count("pk", filter=Q(tokens_estimated=True)),
            billed=Count("pk", filter=tokens),
        )
        .order_by()
    ):
        input_tokens, output_tokens = group["input_sum"] or 0, group["output_sum"] or 0
        cached_tokens = group["cached_sum"] or 0
        price = priced.price(group["provider"], group["model"], day)
        cost = (
            metrics.call_cost(
                input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached_tokens, price=price
            )
            if price is not None
            else Decimal(0)
        )
        source = group["session__source"] or ""
        rows[(group["feature"], group["provider"], group["model"], source)] = DailyProviderRollup(
            day=day,
            feature=group["feature"],
            provider=group["provider"],
            model=group["model"],
            source=source,
            calls=group["n"],
            ok=group["n_ok"],
            errors=group["n_error"],
            interrupted=group["n_interrupted"],
            stopped=group["n_stopped"],
            skipped=group["n_skipped"],
            latency_ms_sum=group["latency_sum"] or 0,
            latency_count=group["latency_n"],
            ttft_ms_sum=group["ttft_sum"] or 0,
            ttft_count=group["ttft_n"],
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens,
            estimated_calls=group["estimated"],
            cost_usd=cost,
            price_unknown_calls=group["billed"] if price is None else 0,
        )
    # A failover is charged to the provider that failed: the call before the one naming it.
    failed = calls.exclude(fallback_from="").values("feature", "fallback_from", "session__source")
    for group in failed.annotate(n=Count("pk")).order_by():
        source = group["session__source"] or ""
        key = next(
            (k for k in rows if k[0] == group["feature"] and k[1] == group["fallback_from"] and k[3] == source),
            (group["feature"], group["fallback_from"], "", source),
        )
        if key not in rows:
            rows[key] = DailyProviderRollup(day=day, feature=key[0], provider=key[1], model=key[2], source=source)
        rows[key].failed_over += group["n"]
    return list(rows.values())

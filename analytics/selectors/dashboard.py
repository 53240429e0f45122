"""The dashboard's reads: live numbers, its tables and snapshot, one session's transcript."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from analytics import support
from analytics.models import ChatAnalytics, DailySessionRollup
from analytics.selectors.base import Filters, Period, _bounds, _sessions_in, summary
from analytics.selectors.numbers import agent_table
from assistant.models import ChatSession, Feedback, ProviderCall, SessionRating


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

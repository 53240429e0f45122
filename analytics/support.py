"""Reads of human support that the daily rollups cannot hold: the queue now, and per agent.

`analytics.selectors` calls these for the dashboard, its API and the weekly report. The period
numbers of human support (handoff rate, first human response, resolution time…) come from the
rollups like every other metric; the per-agent table is read from the period's `Handoff` rows
(a few per hundred sessions) with the registry's own formulas, so its columns mean what the
headline numbers mean; the live numbers come from the waiting queue's partial index.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Min, QuerySet
from django.utils import timezone

from analytics import metrics
from analytics.metrics import Totals
from analytics.models import ChatAnalytics
from analytics.session_stats import is_takeover
from assistant.handoff.selectors import display_name
from assistant.models import ChatSession, Handoff, SessionRating


def queue_now(now: datetime | None = None) -> dict[str, int]:
    """Visitors waiting for a person now, and how long the longest has waited (0 when nobody waits)."""
    now = now or timezone.now()
    waiting = Handoff.objects.filter(
        outcome=Handoff.Outcome.OPEN, session__handoff_state=ChatSession.Handoff.WAITING
    ).aggregate(visitors=Count("session_id", distinct=True), oldest=Min("requested_at"))
    oldest = waiting["oldest"]
    return {
        "waiting_now": waiting["visitors"],
        "longest_wait_ms": metrics.milliseconds(oldest, now) if oldest is not None else 0,
    }


def agent_rows(sessions: QuerySet[ChatAnalytics]) -> list[dict[str, Any]]:
    """Per person who held a conversation of `sessions`: conversations, first response,
    resolution time and CSAT, each by the registry's formula over that person's part.

    A conversation counts for the person who held it last (after transfers); requests count
    for first response and resolution time as in the period's numbers (takeovers do not).
    """
    per_agent: dict[int, Totals] = defaultdict(Totals)
    conversations: dict[int, set[int]] = defaultdict(set)
    for row in Handoff.objects.filter(session_id__in=sessions.values("session_id"), agent_id__isnull=False).values(
        "agent_id", "session_id", "requested_at", "assigned_at", "first_response_at", "ended_at", "outcome"
    ):
        totals = per_agent[row["agent_id"]]
        conversations[row["agent_id"]].add(row["session_id"])
        if is_takeover(requested_at=row["requested_at"], assigned_at=row["assigned_at"]):
            continue
        if row["first_response_at"] is not None:
            elapsed = metrics.milliseconds(row["requested_at"], row["first_response_at"])
            totals.human_first_response_count += 1
            totals.human_first_response_ms_sum += elapsed
            totals.human_first_response_hist = metrics.merge_histograms(
                [totals.human_first_response_hist, metrics.histogram([elapsed])]
            )
        if row["outcome"] == Handoff.Outcome.RESOLVED and row["ended_at"] is not None:
            totals.human_resolution_count += 1
            totals.human_resolution_ms_sum += metrics.milliseconds(row["requested_at"], row["ended_at"])
    if not per_agent:
        return []
    scores = dict(
        SessionRating.objects.filter(session_id__in={pk for pks in conversations.values() for pk in pks}).values_list(
            "session_id", "score"
        )
    )
    for agent_id, session_pks in conversations.items():
        totals = per_agent[agent_id]
        totals.human_sessions = len(session_pks)
        for pk in session_pks:
            if pk in scores:
                totals.ratings += 1
                totals.rating_sum += scores[pk]
                totals.rating_hist[str(scores[pk])] = totals.rating_hist.get(str(scores[pk]), 0) + 1
    names = {user.pk: display_name(user) for user in get_user_model().objects.filter(pk__in=list(per_agent))}
    rows = [_agent_row(agent_id, names.get(agent_id, f"#{agent_id}"), totals) for agent_id, totals in per_agent.items()]
    return sorted(rows, key=lambda row: (-row["conversations"], row["agent"], row["agent_id"]))


def _agent_row(agent_id: int, name: str, totals: Totals) -> dict[str, Any]:
    def value(key: str) -> float | int | None:
        return metrics.round_value(key, metrics.METRICS[key].value(totals))

    return {
        "agent_id": agent_id,
        "agent": name,
        "conversations": totals.human_sessions,
        "first_responses": totals.human_first_response_count,
        "avg_human_first_response_ms": value("avg_human_first_response_ms"),
        "resolved": totals.human_resolution_count,
        "avg_human_resolution_ms": value("avg_human_resolution_ms"),
        "ratings": totals.ratings,
        "csat": value("csat"),
    }

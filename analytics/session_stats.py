"""One session's running numbers, fed either live (the tracker) or from the database (recovery).

Both paths call the same `observe_*` methods, so a session rebuilt from its rows after a crash
has exactly the numbers the live tracker would have written. Observations are keyed (messages by
seq, feedback by message id) so seeing the same thing twice (two tabs, a replayed frame) counts
once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from analytics import metrics, sentiment, taxonomy

#: At most this many actions are kept per session (a widget left open all day sends many).
MAX_ACTIONS = 100


@dataclass(slots=True)
class Reply:
    """What analytics needs of one assistant message."""

    status: str
    provider: str
    ttft_ms: int | None
    duration_ms: int | None
    cached: bool
    failovers: int
    errors: int


@dataclass(slots=True)
class SessionStats:
    """Accumulated observations of one session; `row()` turns them into `ChatAnalytics` fields."""

    session_pk: int
    started_at: datetime
    user_type: str
    closed: bool = False
    last_seq: int = 0
    last_activity_at: datetime | None = None
    user_sentiment: dict[int, float] = field(default_factory=dict)
    last_user_seq: int = 0
    replies: dict[int, Reply] = field(default_factory=dict)
    agent_seqs: set[int] = field(default_factory=set)
    topics: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    asked_for_human: bool = False
    actions: list[dict[str, str]] = field(default_factory=list)
    feedback: dict[str, str] = field(default_factory=dict)
    rating_score: int | None = None
    rating_resolved: bool | None = None

    # --- observations ----------------------------------------------------------------------
    def _touch(self, at: datetime | None, seq: int = 0) -> None:
        at = at or timezone.now()
        if self.last_activity_at is None or at > self.last_activity_at:
            self.last_activity_at = at
        self.last_seq = max(self.last_seq, seq)

    def observe_user_message(self, *, seq: int, text: str, at: datetime | None = None) -> bool:
        """A visitor message; False when it was already counted."""
        if seq in self.user_sentiment:
            return False
        self.user_sentiment[seq] = sentiment.score(text)
        self.last_user_seq = max(self.last_user_seq, seq)
        rules = taxonomy.get()
        for topic in rules.topics_of(text):
            self.topics.setdefault(topic, None)
        if rules.asks_for_human(text):
            self.asked_for_human = True
        self.closed = False  # a message reopens an ended session
        self._touch(at, seq)
        return True

    def observe_agent_message(self, *, seq: int, at: datetime | None = None) -> None:
        """A message written by a human agent: the session was escalated."""
        self.agent_seqs.add(seq)
        self._touch(at, seq)

    def observe_reply(
        self,
        *,
        seq: int,
        status: str,
        provider: str = "",
        ttft_ms: int | None = None,
        duration_ms: int | None = None,
        cached: bool = False,
        sources: list[dict[str, Any]] | None = None,
        failovers: int = 0,
        errors: int = 0,
        at: datetime | None = None,
    ) -> bool:
        """An assistant message that reached its final status; False when already counted."""
        if seq in self.replies or status == "streaming":
            return False
        self.replies[seq] = Reply(status, provider, ttft_ms, duration_ms, cached, failovers, errors)
        for source in sources or []:
            title = source.get("title")
            if isinstance(title, str) and title:
                self.topics.setdefault(title, None)
        self._touch(at, seq)
        return True

    def observe_feedback(self, *, message_id: str, rating: str, at: datetime | None = None) -> None:
        """A thumbs up/down (replacing any earlier one on the same reply)."""
        self.feedback[message_id] = rating
        self._touch(at)

    def observe_rating(self, *, score: int, resolved: bool | None, at: datetime | None = None) -> None:
        """The end-of-chat survey (replacing any earlier one)."""
        self.rating_score, self.rating_resolved = score, resolved
        self._touch(at)

    def observe_event(self, *, name: str, at: datetime | None = None) -> None:
        """A widget action (link click, quick reply, open/close…)."""
        at = at or timezone.now()
        if len(self.actions) < MAX_ACTIONS:
            self.actions.append({"name": name, "at": at.isoformat()})
        if name in taxonomy.get().escalation_events:
            self.asked_for_human = True
        self._touch(at)

    def observe_end(self, *, at: datetime | None = None) -> None:
        """The visitor ended the session."""
        self.closed = True
        self._touch(at)

    # --- derived ---------------------------------------------------------------------------
    def row(self, now: datetime | None = None) -> dict[str, Any]:
        """The `ChatAnalytics` fields these observations give, as of `now`."""
        now = now or timezone.now()
        last_activity = self.last_activity_at or self.started_at
        idle = now - last_activity >= timedelta(minutes=settings.RESOLUTION_IDLE_MINUTES)
        closed = self.closed or idle
        complete = {seq: r for seq, r in self.replies.items() if r.status == "complete"}
        response_times = [r.duration_ms for _, r in sorted(complete.items()) if r.duration_ms is not None]
        ttfts = [
            r.ttft_ms
            for _, r in sorted(self.replies.items())
            if r.ttft_ms is not None and r.status in {"complete", "stopped"}
        ]
        escalated = self.asked_for_human or bool(self.agent_seqs)
        negative = any(rating == "down" for rating in self.feedback.values())
        unanswered = self.last_user_seq > max(complete, default=0)
        kind = metrics.resolution(
            rating_resolved=self.rating_resolved,
            finished=closed,
            answered=bool(complete),
            escalated=escalated,
            negative_feedback=negative,
            unanswered=unanswered,
        )
        providers = Counter(r.provider for r in complete.values() if r.provider)
        user_messages = len(self.user_sentiment)
        avg = metrics.mean(response_times)
        avg_ttft = metrics.mean(ttfts)
        avg_sentiment = metrics.mean(self.user_sentiment.values())
        local = timezone.localtime(self.started_at)
        return {
            "day": local.date(),
            "started_at": self.started_at,
            "last_activity_at": last_activity,
            "user_type": self.user_type,
            "provider": providers.most_common(1)[0][0] if providers else "",
            "last_seq": self.last_seq,
            "total_messages": user_messages + len(self.replies) + len(self.agent_seqs),
            "user_messages": user_messages,
            "assistant_messages": len(self.replies),
            "avg_response_time_ms": round(avg) if avg is not None else None,
            "p95_response_time_ms": metrics.exact_percentile(response_times, 95),
            "avg_ttft_ms": round(avg_ttft) if avg_ttft is not None else None,
            "response_times_ms": response_times,
            "ttfts_ms": ttfts,
            "resolved": kind in {"confirmed", "assumed"},
            "resolution": kind,
            "escalated_to_human": escalated,
            "unanswered": unanswered,
            "closed": closed,
            "topics_discussed": list(self.topics),
            "actions_taken": list(self.actions),
            "engagement_score": metrics.engagement_score(
                user_messages=user_messages,
                actions=len(self.actions),
                feedback_given=bool(self.feedback),
                rated=self.rating_score is not None,
            ),
            "satisfaction_rating": self.rating_score,
            "avg_sentiment": round(avg_sentiment, 4) if avg_sentiment is not None else None,
            "feedback_up": sum(1 for rating in self.feedback.values() if rating == "up"),
            "feedback_down": sum(1 for rating in self.feedback.values() if rating == "down"),
            "cached_replies": sum(1 for r in complete.values() if r.cached),
            "failed_replies": sum(1 for r in self.replies.values() if r.status == "failed"),
            "failovers": sum(r.failovers for r in self.replies.values()),
            "provider_errors": sum(r.errors for r in self.replies.values()),
            "duration_s": max(0, int((last_activity - self.started_at).total_seconds())),
        }

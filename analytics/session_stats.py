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
#: Characters of the visitor's text the conversation's language is detected on; then it is settled.
LANGUAGE_SAMPLE_CHARS = 300


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
class HumanPart:
    """What analytics needs of one `Handoff` row: a request for a person, or a takeover."""

    requested_at: datetime
    taken_over: bool
    assigned_at: datetime | None
    first_response_at: datetime | None
    ended_at: datetime | None
    outcome: str


def is_takeover(*, requested_at: datetime, assigned_at: datetime | None) -> bool:
    """Whether a `Handoff` row is a person stepping in unasked rather than a visitor's request.

    `assistant.handoff.services.claim` writes a takeover's request and claim with one timestamp;
    a real request is claimed later. Takeovers count as a person's involvement, not as requests.
    """
    return assigned_at is not None and assigned_at == requested_at


@dataclass(slots=True)
class SessionStats:
    """Accumulated observations of one session; `row()` turns them into `ChatAnalytics` fields."""

    session_pk: int
    started_at: datetime
    user_type: str
    closed: bool = False
    last_seq: int = 0
    last_activity_at: datetime | None = None
    locale: str = ""  # the session's locale: the language hint when the text cannot tell
    human_channel: bool = False  # imported chats: a person answering is the normal answer, not an escalation
    language: str = ""
    user_sentiment: dict[int, float | None] = field(default_factory=dict)  # None: not scored
    # Visitor texts kept until the language is settled, so that they are re-scored if it changes.
    pending_texts: dict[int, str] | None = field(default_factory=dict)
    language_sample: str = ""
    user_times: dict[int, datetime] = field(default_factory=dict)
    last_user_seq: int = 0
    replies: dict[int, Reply] = field(default_factory=dict)
    agent_times: dict[int, datetime] = field(default_factory=dict)  # agent messages by seq
    handoffs: dict[int, HumanPart] = field(default_factory=dict)  # by Handoff pk
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
        self._observe_language(seq, text)
        self.user_sentiment[seq] = sentiment.score(text, self.language)
        self.user_times[seq] = at or timezone.now()
        self.last_user_seq = max(self.last_user_seq, seq)
        rules = taxonomy.get()
        for topic in rules.topics_of(text):
            self.topics.setdefault(topic, None)
        if rules.asks_for_human(text):
            self.asked_for_human = True
        self.closed = False  # a message reopens an ended session
        self._touch(at, seq)
        return True

    def _observe_language(self, seq: int, text: str) -> None:
        """Detect the conversation's language on the visitor's text so far, until it is settled.

        When the language found changes, the messages kept meanwhile are scored again in it.
        """
        if self.pending_texts is None:  # settled
            return
        self.pending_texts[seq] = text[: sentiment.MAX_CHARS]
        self.language_sample = f"{self.language_sample} {text}".strip()[:LANGUAGE_SAMPLE_CHARS]
        found = sentiment.detect(self.language_sample, hint=self.locale or settings.LANGUAGE_CODE)
        if found != self.language:
            self.language = found
            for earlier, kept in self.pending_texts.items():
                if earlier in self.user_sentiment:
                    self.user_sentiment[earlier] = sentiment.score(kept, found)
        if len(self.language_sample) >= LANGUAGE_SAMPLE_CHARS:
            self.pending_texts = None

    def observe_agent_message(self, *, seq: int, at: datetime | None = None) -> bool:
        """A message written by a person at the desk: an answer (not the assistant's), and escalation.

        Live, it is also the first response of an open request that has none yet (as the desk's
        service records it on the `Handoff` row); False when it was already counted.
        """
        if seq in self.agent_times:
            return False
        at = at or timezone.now()
        self.agent_times[seq] = at
        for part in self.handoffs.values():
            if part.outcome == "open" and part.first_response_at is None and at >= part.requested_at:
                part.first_response_at = at
        self._touch(at, seq)
        return True

    def observe_handoff_request(self, *, at: datetime | None = None) -> None:
        """The visitor asked for a person (the `Handoff` row itself comes with the next load)."""
        self.asked_for_human = True
        self._touch(at)

    def observe_handoff(
        self,
        *,
        key: int,
        requested_at: datetime,
        assigned_at: datetime | None,
        first_response_at: datetime | None,
        ended_at: datetime | None,
        outcome: str,
    ) -> None:
        """A stored `Handoff` row (replacing what was known of it)."""
        taken_over = is_takeover(requested_at=requested_at, assigned_at=assigned_at)
        self.handoffs[key] = HumanPart(requested_at, taken_over, assigned_at, first_response_at, ended_at, outcome)
        if not taken_over:
            self.asked_for_human = True

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
        human = self._human()
        escalated = self.asked_for_human or (bool(human["human_involved"]) and not self.human_channel)
        negative = any(rating == "down" for rating in self.feedback.values())
        # A person's message answers the visitor too (it is not an AI answer: `answered` and the
        # reply times stay the assistant's).
        unanswered = self.last_user_seq > max(max(complete, default=0), max(self.agent_times, default=0))
        kind = metrics.resolution(
            rating_resolved=self.rating_resolved,
            finished=closed,
            answered=bool(complete) or (self.human_channel and bool(self.agent_times)),
            escalated=escalated,
            negative_feedback=negative,
            unanswered=unanswered,
        )
        # The assumed rule's own verdict, blind to the rating: what the accuracy views check.
        rule = metrics.resolution(
            rating_resolved=None,
            finished=closed,
            answered=bool(complete) or (self.human_channel and bool(self.agent_times)),
            escalated=escalated,
            negative_feedback=negative,
            unanswered=unanswered,
        )
        providers = Counter(r.provider for r in complete.values() if r.provider)
        user_messages = len(self.user_sentiment)
        avg = metrics.mean(response_times)
        avg_ttft = metrics.mean(ttfts)
        scores = [self.user_sentiment[seq] for seq in sorted(self.user_sentiment)]
        scored = [value for value in scores if value is not None]
        avg_sentiment = metrics.mean(scored)
        labels = Counter(sentiment.label(value) for value in scored)
        local = timezone.localtime(self.started_at)
        return {
            "day": local.date(),
            "started_at": self.started_at,
            "last_activity_at": last_activity,
            "user_type": self.user_type,
            "provider": providers.most_common(1)[0][0] if providers else "",
            "last_seq": self.last_seq,
            "total_messages": user_messages + len(self.replies) + len(self.agent_times),
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
            "language": self.language,
            "message_sentiments": {name: labels[name] for name in ("negative", "neutral", "positive") if labels[name]},
            "unscored_messages": len(scores) - len(scored),
            "opening_sentiment": scored[0] if scored else None,
            "closing_sentiment": scored[-1] if len(scored) >= 2 else None,
            "rule_resolved": None if rule == "pending" else rule == "assumed",
            "feedback_up": sum(1 for rating in self.feedback.values() if rating == "up"),
            "feedback_down": sum(1 for rating in self.feedback.values() if rating == "down"),
            "cached_replies": sum(1 for r in complete.values() if r.cached),
            "failed_replies": sum(1 for r in self.replies.values() if r.status == "failed"),
            "failovers": sum(r.failovers for r in self.replies.values()),
            "provider_errors": sum(r.errors for r in self.replies.values()),
            "duration_s": max(0, int((last_activity - self.started_at).total_seconds())),
            **human,
        }

    def _human(self) -> dict[str, Any]:
        """The human-support fields of the row (docs/analytics.md, "Human support")."""
        parts = sorted(self.handoffs.values(), key=lambda part: part.requested_at)
        requests = [part for part in parts if not part.taken_over]
        conversation = sorted(
            [(seq, "user", at) for seq, at in self.user_times.items()]
            + [(seq, "agent", at) for seq, at in self.agent_times.items()]
        )
        agent_times = metrics.agent_response_times((role, at) for _, role, at in conversation)
        avg_agent = metrics.mean(agent_times)
        return {
            "handoff_requests": len(requests),
            "human_involved": bool(self.agent_times) or any(part.assigned_at is not None for part in parts),
            "human_resolved": any(part.outcome == "resolved" for part in parts) and self.rating_resolved is not False,
            "agent_messages": len(self.agent_times),
            "avg_agent_response_ms": round(avg_agent) if avg_agent is not None else None,
            "human_first_response_ms": [
                metrics.milliseconds(part.requested_at, part.first_response_at)
                for part in requests
                if part.first_response_at is not None
            ],
            "human_resolution_ms": [
                metrics.milliseconds(part.requested_at, part.ended_at)
                for part in requests
                if part.outcome == "resolved" and part.ended_at is not None
            ],
        }

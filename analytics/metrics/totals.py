"""`Totals`: the sums over a period's rollup rows that every metric's formula reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal

from analytics.metrics.formulas import rate


@dataclass(slots=True)
class Totals:
    """Sums over a period's rollup rows; `summarize` turns them into metrics."""

    sessions: int = 0
    closed_sessions: int = 0
    engaged_sessions: int = 0
    total_messages: int = 0
    user_messages: int = 0
    assistant_messages: int = 0
    replies_timed: int = 0
    response_ms_sum: int = 0
    response_hist: dict[str, int] = field(default_factory=dict)
    ttft_count: int = 0
    ttft_ms_sum: int = 0
    ttft_hist: dict[str, int] = field(default_factory=dict)
    cached_replies: int = 0
    failed_replies: int = 0
    feedback_up: int = 0
    feedback_down: int = 0
    sessions_with_feedback: int = 0
    ratings: int = 0
    rating_sum: int = 0
    rating_hist: dict[str, int] = field(default_factory=dict)
    resolved_confirmed: int = 0
    resolved_assumed: int = 0
    unresolved: int = 0
    pending: int = 0
    escalated: int = 0
    engagement_sum: int = 0
    sentiment_sum: float = 0.0
    sentiment_count: int = 0
    failovers: int = 0
    provider_errors: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    issue_topics: dict[str, int] = field(default_factory=dict)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    # Human support (per session, summed like the rest):
    handoff_sessions: int = 0
    human_sessions: int = 0
    contained: int = 0
    agent_messages: int = 0
    human_first_response_count: int = 0
    human_first_response_ms_sum: int = 0
    human_first_response_hist: dict[str, int] = field(default_factory=dict)
    human_resolution_count: int = 0
    human_resolution_ms_sum: int = 0
    agent_response_sessions: int = 0
    agent_response_ms_sum: int = 0
    fcr_sessions: int = 0
    fcr_resolved: int = 0
    # Sentiment, trajectory, AI predictions and their accuracy (docs/analytics.md):
    message_sentiments: dict[str, int] = field(default_factory=dict)
    unscored_messages: int = 0
    languages: dict[str, int] = field(default_factory=dict)
    trajectory_sessions: int = 0
    opening_sentiment_sum: float = 0.0
    closing_sentiment_sum: float = 0.0
    opened_negative: int = 0
    recovered: int = 0
    analyzed_sessions: int = 0
    conversation_sentiments: dict[str, int] = field(default_factory=dict)
    unrated_finished: int = 0
    predicted_sessions: int = 0
    predicted_satisfied: int = 0
    predicted_satisfaction_sum: int = 0
    follow_up_sessions: int = 0
    confusion: dict[str, int] = field(default_factory=dict)
    # From the provider rollup:
    calls: int = 0
    calls_attempted: int = 0
    calls_ok: int = 0
    calls_failed_over: int = 0
    call_latency_ms_sum: int = 0
    call_latency_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    price_unknown_calls: int = 0

    def add_session_row(self, row: Mapping[str, object]) -> None:
        """Add one `DailySessionRollup` row (as a mapping of its fields)."""
        for item in fields(self):
            name = item.name
            if name not in row or name in _PROVIDER_FIELDS:
                continue
            value = row[name]
            if name in _DICT_FIELDS:
                target: dict[str, int] = getattr(self, name)
                for key, count in dict(value).items():  # type: ignore[call-overload]
                    target[key] = target.get(key, 0) + count
            elif name == "hours":
                for hour, count in enumerate(value or []):  # type: ignore[arg-type]
                    self.hours[hour] += count
            else:
                setattr(self, name, getattr(self, name) + value)

    def add_provider_row(self, row: Mapping[str, object]) -> None:
        """Add one `DailyProviderRollup` row."""
        calls, skipped = int(row["calls"]), int(row["skipped"])  # type: ignore[call-overload]
        self.calls += calls
        self.calls_attempted += calls - skipped
        self.calls_ok += int(row["ok"]) + int(row["stopped"])  # type: ignore[call-overload]
        self.calls_failed_over += int(row["failed_over"])  # type: ignore[call-overload]
        self.call_latency_ms_sum += int(row["latency_ms_sum"])  # type: ignore[call-overload]
        self.call_latency_count += int(row["latency_count"])  # type: ignore[call-overload]
        self.input_tokens += int(row["input_tokens"])  # type: ignore[call-overload]
        self.output_tokens += int(row["output_tokens"])  # type: ignore[call-overload]
        self.cached_tokens += int(row["cached_tokens"])  # type: ignore[call-overload]
        self.cost_usd += Decimal(row["cost_usd"])  # type: ignore[arg-type]
        self.price_unknown_calls += int(row["price_unknown_calls"])  # type: ignore[call-overload]


_DICT_FIELDS = {
    "response_hist",
    "ttft_hist",
    "rating_hist",
    "topics",
    "issue_topics",
    "human_first_response_hist",
    "message_sentiments",
    "languages",
    "conversation_sentiments",
    "confusion",
}
_PROVIDER_FIELDS = {
    "calls",
    "calls_attempted",
    "calls_ok",
    "calls_failed_over",
    "call_latency_ms_sum",
    "call_latency_count",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "price_unknown_calls",
}


def provider_success_rate(*, ok: int, attempted: int) -> float | None:
    """Answered calls (ok or stopped by the visitor) over calls attempted."""
    return rate(ok, attempted)


def provider_failover_rate(*, failed_over: int, attempted: int) -> float | None:
    """Calls after which another provider took over, over calls attempted."""
    return rate(failed_over, attempted)

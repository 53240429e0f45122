"""Every metric Parley reports, defined once: the `METRICS` registry.

A `Metric` carries its formula, its one-line definition, its unit, its weekly report section and
its dashboard card. The dashboard, the JSON API, the CSV exports and the weekly report all take
their numbers from `summarize` (over a period's `Totals`) and their per-session numbers from the
functions below; the report's sections (`report_sections`) and the dashboard's cards (`cards`,
sent to the page by `definitions`) come from the registry too. Add or change a metric here and
every surface follows; nothing else lists metrics.

A rate whose denominator is zero is `None`, shown as "no data": an empty week is not 0 %.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Literal

Unit = Literal["count", "ms", "percent", "usd", "score", "rating", "ratio", "tokens"]
Direction = Literal["up", "down", "flat"]

#: Visitor messages that make a session "engaged" (`engagement_rate`).
ENGAGED_MIN_USER_MESSAGES = 2
#: Ratings at or above this count as satisfied for CSAT.
CSAT_MIN_SCORE = 4
#: Changes smaller than this (in %) are shown as flat.
FLAT_CHANGE_PCT = 0.5


# --- Small formulas -------------------------------------------------------------------------
def rate(numerator: float, denominator: float) -> float | None:
    """`numerator / denominator` as a percentage, or None (no data) when the denominator is 0."""
    if not denominator:
        return None
    return 100.0 * numerator / denominator


def ratio(numerator: float, denominator: float) -> float | None:
    """`numerator / denominator`, or None when the denominator is 0."""
    if not denominator:
        return None
    return numerator / denominator


def histogram_bucket(value_ms: int) -> int:
    """`value_ms` rounded to two significant digits: the histograms' bucket (at most 5 % off)."""
    value = max(0, int(value_ms))
    if value < 100:
        return value
    scale = 10 ** (len(str(value)) - 2)
    return math.floor(value / scale + 0.5) * scale  # half up: 1250 -> 1300


def histogram(values: Iterable[int]) -> dict[str, int]:
    """A histogram (bucket to count) of millisecond values; JSON keys are strings."""
    counts = Counter(histogram_bucket(value) for value in values)
    return {str(bucket): count for bucket, count in sorted(counts.items())}


def merge_histograms(histograms: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Sum histograms bucket by bucket."""
    total: Counter[str] = Counter()
    for item in histograms:
        total.update(item)
    return dict(total)


def percentile(hist: Mapping[str, int], p: float) -> int | None:
    """Nearest-rank percentile `p` (0-100) of a histogram, or None when it is empty."""
    count = sum(hist.values())
    if count == 0:
        return None
    rank = max(1, math.ceil(p / 100 * count))
    seen = 0
    for bucket in sorted(hist, key=int):
        seen += hist[bucket]
        if seen >= rank:
            return int(bucket)
    return int(max(hist, key=int))


def exact_percentile(values: Iterable[int], p: float) -> int | None:
    """Nearest-rank percentile of raw values (a session's own p95)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def mean(values: Iterable[float]) -> float | None:
    """Arithmetic mean, or None for no values."""
    items = list(values)
    return sum(items) / len(items) if items else None


def engagement_score(*, user_messages: int, actions: int, feedback_given: bool, rated: bool) -> int:
    """0-100: 10 per visitor message (up to 50), 5 per widget action (up to 20), 15 for feedback, 15 for a rating."""
    return min(user_messages, 5) * 10 + min(actions, 4) * 5 + (15 if feedback_given else 0) + (15 if rated else 0)


def is_engaged(user_messages: int) -> bool:
    """Whether a session counts toward the engagement rate."""
    return user_messages >= ENGAGED_MIN_USER_MESSAGES


def resolution(
    *,
    rating_resolved: bool | None,
    finished: bool,
    answered: bool,
    escalated: bool,
    negative_feedback: bool,
    unanswered: bool,
) -> str:
    """A session's resolution kind: confirmed, assumed, unresolved, or pending.

    `confirmed` when the visitor said so in the end-of-chat rating, `unresolved` when they said
    not; otherwise, once the session is finished (ended, or idle past RESOLUTION_IDLE_MINUTES),
    `assumed` if an assistant answer came with no escalation, no thumbs down and no unanswered
    question, else `unresolved`. Until then it is `pending` and left out of the resolution rate.
    """
    if rating_resolved is True:
        return "confirmed"
    if rating_resolved is False:
        return "unresolved"
    if not finished:
        return "pending"
    if answered and not escalated and not negative_feedback and not unanswered:
        return "assumed"
    return "unresolved"


def call_cost(
    *, input_tokens: int, output_tokens: int, cached_tokens: int, price: tuple[Decimal, Decimal, Decimal]
) -> Decimal:
    """USD cost of tokens at (input, output, cached input) prices per million tokens.

    `input_tokens` includes the cached ones (every provider reports it so); those are billed at
    the cached price instead of the input price.
    """
    per_input, per_output, per_cached = price
    cached = min(cached_tokens, input_tokens)
    return ((input_tokens - cached) * per_input + cached * per_cached + output_tokens * per_output) / Decimal(1_000_000)


def change(current: float | None, previous: float | None) -> dict[str, object]:
    """The change of a headline number versus the previous period: % and direction.

    `pct` is None when either side has no data or the previous value is 0 (no meaningful %).
    """
    if current is None or previous is None:
        return {"previous": previous, "pct": None, "direction": None}
    if previous == 0:
        direction: Direction = "flat" if current == 0 else "up"
        return {"previous": previous, "pct": None, "direction": direction}
    pct = 100.0 * (current - previous) / abs(previous)
    direction = "flat" if abs(pct) < FLAT_CHANGE_PCT else ("up" if pct > 0 else "down")
    return {"previous": previous, "pct": round(pct, 1), "direction": direction}


# --- Period totals and the summary ----------------------------------------------------------
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
    # From the provider rollup:
    calls: int = 0
    calls_attempted: int = 0
    calls_ok: int = 0
    calls_failed_over: int = 0
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
            if name in {"response_hist", "ttft_hist", "rating_hist", "topics", "issue_topics"}:
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
        self.input_tokens += int(row["input_tokens"])  # type: ignore[call-overload]
        self.output_tokens += int(row["output_tokens"])  # type: ignore[call-overload]
        self.cached_tokens += int(row["cached_tokens"])  # type: ignore[call-overload]
        self.cost_usd += Decimal(row["cost_usd"])  # type: ignore[arg-type]
        self.price_unknown_calls += int(row["price_unknown_calls"])  # type: ignore[call-overload]


_PROVIDER_FIELDS = {
    "calls",
    "calls_attempted",
    "calls_ok",
    "calls_failed_over",
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


# --- The registry: every metric, its formula, and where each surface shows it -----------------
Section = Literal["Sessions", "Messages", "Performance", "Satisfaction", "AI usage and cost"]
#: The weekly report's metric sections, in order (`Metric.section` names one).
SECTIONS: tuple[Section, ...] = ("Sessions", "Messages", "Performance", "Satisfaction", "AI usage and cost")

#: A metric's formula over a period's totals.
Formula = Callable[[Totals], float | int | None]


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric and everything a surface needs to show it, so that a new metric is added once.

    `formula` computes it from a period's `Totals`, or names the `Totals` field it is; None
    leaves it out of `summarize` (`live_sessions` is read live). `section` is the weekly report
    section that lists it (None: not in the report), in registry order. `card` is the position
    of its headline card on the dashboard (None: no card). Every surface shows `label` and
    formats the value by `unit`; `higher_is_better` colours a change (None: neither).
    """

    key: str
    label: str
    unit: Unit
    definition: str
    higher_is_better: bool | None = None
    headline: bool = False
    formula: Formula | str | None = None
    section: Section | None = None
    card: int | None = None

    def value(self, totals: Totals) -> float | int | None:
        """The metric over `totals`; None without a formula, or for a rate over nothing."""
        if self.formula is None:
            return None
        if isinstance(self.formula, str):
            return getattr(totals, self.formula)  # type: ignore[no-any-return]
        return self.formula(totals)


def _finished(t: Totals) -> int:
    """Sessions whose resolution is decided: pending ones are left out of the resolution rates."""
    return t.resolved_confirmed + t.resolved_assumed + t.unresolved


def _rated_replies(t: Totals) -> int:
    return t.feedback_up + t.feedback_down


def _satisfied_ratings(t: Totals) -> int:
    return sum(count for score, count in t.rating_hist.items() if int(score) >= CSAT_MIN_SCORE)


# In report order within each section; `card` numbers give the dashboard's order.
_METRICS = [
    Metric(
        "sessions", "Sessions", "count", "Chat sessions started in the period.", True, True,
        formula="sessions", section="Sessions", card=2,
    ),
    Metric(
        "active_sessions", "Active sessions", "count",
        "Sessions started in the period that are still going: not ended and not idle past the idle window.", None, True,
        formula=lambda t: t.sessions - t.closed_sessions, section="Sessions",
    ),
    Metric(
        "closed_sessions", "Closed sessions", "count",
        "Sessions started in the period that the visitor ended or that went idle past the idle window.",
        formula="closed_sessions", section="Sessions",
    ),
    Metric(
        "live_sessions", "Live now", "count", "Open sessions with visitor activity in the last few minutes.", card=1
    ),
    Metric(
        "messages", "Messages", "count", "All messages in sessions started in the period.", True, True,
        formula="total_messages", section="Messages", card=3,
    ),
    Metric(
        "user_messages", "Visitor messages", "count", "Messages sent by visitors.",
        formula="user_messages", section="Messages",
    ),
    Metric(
        "assistant_messages", "Assistant messages", "count", "Replies written by the assistant, any status.",
        formula="assistant_messages", section="Messages",
    ),
    Metric(
        "messages_per_session", "Messages per session", "ratio", "Messages divided by sessions.", True, True,
        formula=lambda t: ratio(t.total_messages, t.sessions), section="Messages", card=4,
    ),
    Metric(
        "avg_response_time_ms", "Response time (avg)", "ms",
        "Mean time from a visitor message to the end of its reply, over finished replies.", False, True,
        formula=lambda t: ratio(t.response_ms_sum, t.replies_timed), section="Performance", card=5,
    ),
    Metric(
        "p50_response_time_ms", "Response time p50", "ms", "Median reply time (values rounded to 2 digits).", False,
        formula=lambda t: percentile(t.response_hist, 50), section="Performance",
    ),
    Metric(
        "p95_response_time_ms", "Response time p95", "ms",
        "95th percentile reply time: 95 % of replies finished within it (values rounded to 2 digits).", False, True,
        formula=lambda t: percentile(t.response_hist, 95), section="Performance", card=6,
    ),
    Metric(
        "p99_response_time_ms", "Response time p99", "ms", "99th percentile reply time (rounded to 2 digits).", False,
        formula=lambda t: percentile(t.response_hist, 99),
    ),
    Metric(
        "avg_ttft_ms", "Time to first token (avg)", "ms",
        "Mean time from a visitor message to the first text of its reply.", False, True,
        formula=lambda t: ratio(t.ttft_ms_sum, t.ttft_count), section="Performance", card=7,
    ),
    Metric(
        "p50_ttft_ms", "TTFT p50", "ms", "Median time to first token (rounded to 2 digits).", False,
        formula=lambda t: percentile(t.ttft_hist, 50),
    ),
    Metric(
        "p95_ttft_ms", "TTFT p95", "ms", "95th percentile time to first token (rounded to 2 digits).", False,
        formula=lambda t: percentile(t.ttft_hist, 95), section="Performance",
    ),
    Metric(
        "p99_ttft_ms", "TTFT p99", "ms", "99th percentile time to first token (rounded to 2 digits).", False,
        formula=lambda t: percentile(t.ttft_hist, 99),
    ),
    Metric(
        "resolution_rate", "Resolution rate", "percent",
        "Share of finished sessions that were resolved, confirmed by the visitor or assumed.", True, True,
        formula=lambda t: rate(t.resolved_confirmed + t.resolved_assumed, _finished(t)), section="Performance", card=12,
    ),
    Metric(
        "confirmed_resolution_rate", "Confirmed resolution rate", "percent",
        "Share of finished sessions the visitor said were resolved in the end-of-chat rating.", True,
        formula=lambda t: rate(t.resolved_confirmed, _finished(t)), section="Performance",
    ),
    Metric(
        "assumed_resolution_rate", "Assumed resolution rate", "percent",
        "Share of finished sessions that ended or went idle after an answer, with no escalation, "
        "no thumbs down and no unanswered question.", True,
        formula=lambda t: rate(t.resolved_assumed, _finished(t)), section="Performance",
    ),
    Metric(
        "escalation_rate", "Escalation rate", "percent", "Share of sessions handed to a human.", False, True,
        formula=lambda t: rate(t.escalated, t.sessions), section="Performance", card=13,
    ),
    Metric(
        "engagement_rate", "Engagement rate", "percent",
        f"Share of sessions in which the visitor sent at least {ENGAGED_MIN_USER_MESSAGES} messages.", True, True,
        formula=lambda t: rate(t.engaged_sessions, t.sessions), section="Performance", card=14,
    ),
    Metric(
        "avg_engagement_score", "Engagement score", "score",
        "Mean per-session engagement score, 0 to 100 (messages, actions, feedback, rating).", True,
        formula=lambda t: ratio(t.engagement_sum, t.sessions), section="Performance",
    ),
    Metric(
        "cache_hit_rate", "Cache hit rate", "percent", "Share of finished replies served from the response cache.",
        True, formula=lambda t: rate(t.cached_replies, t.replies_timed), section="Performance",
    ),
    Metric(
        "avg_rating", "Average rating", "rating", "Mean end-of-chat rating, 1 to 5.", True, True,
        formula=lambda t: ratio(t.rating_sum, t.ratings), section="Satisfaction", card=10,
    ),
    Metric("ratings", "Ratings", "count", "End-of-chat ratings given.", formula="ratings", section="Satisfaction"),
    Metric(
        "csat", "CSAT", "percent", "Share of end-of-chat ratings that are 4 or 5.", True, True,
        formula=lambda t: rate(_satisfied_ratings(t), t.ratings), section="Satisfaction", card=11,
    ),
    Metric(
        "thumbs_up", "Thumbs up", "count", "Replies rated thumbs up.", formula="feedback_up", section="Satisfaction"
    ),
    Metric(
        "thumbs_down", "Thumbs down", "count", "Replies rated thumbs down.",
        formula="feedback_down", section="Satisfaction",
    ),
    Metric(
        "satisfaction_rate", "Satisfaction rate", "percent", "Share of rated replies that got a thumbs up.", True, True,
        formula=lambda t: rate(t.feedback_up, _rated_replies(t)), section="Satisfaction", card=8,
    ),
    Metric(
        "feedback_rate", "Feedback rate", "percent", "Share of assistant replies that got a thumbs up or down.",
        True, True,
        formula=lambda t: rate(_rated_replies(t), t.assistant_messages), section="Satisfaction", card=9,
    ),
    Metric(
        "avg_sentiment", "Visitor sentiment", "ratio",
        "Mean VADER compound score of visitor messages, -1 (negative) to 1 (positive).", True,
        formula=lambda t: ratio(t.sentiment_sum, t.sentiment_count), section="Satisfaction",
    ),
    Metric(
        "tokens", "Tokens", "tokens", "Input plus output tokens of every provider call.", None, True,
        formula=lambda t: t.input_tokens + t.output_tokens, section="AI usage and cost", card=17,
    ),
    Metric(
        "input_tokens", "Input tokens", "tokens", "Prompt tokens of every provider call, cached included.",
        formula="input_tokens", section="AI usage and cost",
    ),
    Metric(
        "output_tokens", "Output tokens", "tokens", "Generated tokens of every provider call.",
        formula="output_tokens", section="AI usage and cost",
    ),
    Metric(
        "cost_usd", "AI cost", "usd",
        "Price-table cost of every priced provider call; calls of unpriced models are counted apart.", False, True,
        formula=lambda t: float(t.cost_usd), section="AI usage and cost", card=15,
    ),
    Metric(
        "cost_per_session", "Cost per session", "usd", "AI cost divided by sessions.", False, True,
        formula=lambda t: ratio(float(t.cost_usd), t.sessions), section="AI usage and cost", card=16,
    ),
    Metric(
        "price_unknown_calls", "Unpriced calls", "count", "Calls that used tokens of a model with no price.",
        formula="price_unknown_calls", section="AI usage and cost",
    ),
    Metric(
        "provider_success_rate", "Provider success rate", "percent",
        "Share of provider calls attempted (not skipped by the circuit breaker) that answered.", True, True,
        formula=lambda t: provider_success_rate(ok=t.calls_ok, attempted=t.calls_attempted),
        section="AI usage and cost", card=18,
    ),
    Metric(
        "failover_rate", "Failover rate", "percent",
        "Share of provider calls after which another provider had to take over.", False, True,
        formula=lambda t: provider_failover_rate(failed_over=t.calls_failed_over, attempted=t.calls_attempted),
        section="AI usage and cost", card=19,
    ),
    Metric(
        "failovers", "Failovers", "count", "Times a reply moved to the next provider.",
        formula="failovers", section="AI usage and cost",
    ),
]  # fmt: skip
#: The registry, by key. Every surface below reads it when it runs, never a copy of its own.
METRICS: dict[str, Metric] = {metric.key: metric for metric in _METRICS}


def headline() -> list[str]:
    """The keys of the headline metrics: their change versus the previous period is shown."""
    return [metric.key for metric in METRICS.values() if metric.headline]


#: `headline()` at import, for callers that want a constant.
HEADLINE = headline()


def summarize(totals: Totals) -> dict[str, float | int | None]:
    """Every metric of `METRICS` that has a formula, for one period's totals."""
    return {key: metric.value(totals) for key, metric in METRICS.items() if metric.formula is not None}


def report_sections() -> list[tuple[Section, list[str]]]:
    """The weekly report's sections and the keys of their metrics, in order."""
    return [(title, [key for key, metric in METRICS.items() if metric.section == title]) for title in SECTIONS]


def cards() -> list[str]:
    """The keys of the dashboard's headline cards, in the order they are shown."""
    numbered = [(metric.card, key) for key, metric in METRICS.items() if metric.card is not None]
    return [key for _, key in sorted(numbered)]


def definitions() -> dict[str, dict[str, object]]:
    """The registry as JSON for the dashboard and `api/definitions/`: cards come from it, in order."""
    return {
        key: {
            "label": metric.label,
            "unit": metric.unit,
            "definition": metric.definition,
            "higher_is_better": metric.higher_is_better,
            "headline": metric.headline,
            "section": metric.section,
            "card": metric.card,
        }
        for key, metric in METRICS.items()
    }


BREAKDOWN_DEFINITIONS = {
    "top_topics": "Topics of the period's sessions: knowledge sections the replies used and taxonomy keywords.",
    "common_issues": "Topics of the period's unresolved sessions.",
    "user_types": "Sessions by the kind of visitor the site identified (anonymous when not identified).",
    "peak_hours": "Sessions started in each hour of the day (and weekday), in the server's time zone.",
    "providers": "Provider calls, success and failover rates, tokens and cost per provider.",
    "models": "Tokens and cost per provider model; unpriced models are flagged, never shown as $0.",
}


def top(counts: Mapping[str, int], limit: int = 10) -> list[tuple[str, int]]:
    """The `limit` largest entries, ties broken by name so that output is stable."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]


def round_value(key: str, value: float | int | None) -> float | int | None:
    """The precision a metric is shown and exported with (2 decimals; 6 for money)."""
    if value is None or isinstance(value, int):
        return value
    unit = METRICS[key].unit if key in METRICS else "ratio"
    if unit == "usd":
        return round(value, 6)
    if unit in {"ms", "count", "tokens"}:
        return round(value, 1)
    return round(value, 2)

"""The small formulas every metric is built from: rates, histograms and percentiles, the
engagement score, a session's resolution, the cost of a call, a headline's change, and the
times of human support. `analytics.metrics.registry` names each metric built from them.

A rate whose denominator is zero is `None`, shown as "no data": an empty week is not 0 %.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Literal

from analytics.sentiment import NEGATIVE_MAX, POSITIVE_MIN

Unit = Literal["count", "ms", "duration", "percent", "usd", "score", "rating", "ratio", "tokens"]
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


# --- Human support --------------------------------------------------------------------------
def milliseconds(start: datetime, end: datetime) -> int:
    """Whole milliseconds from `start` to `end` (0 if `end` comes first: clocks of two hosts)."""
    return max(0, round((end - start).total_seconds() * 1000))


def agent_response_times(messages: Iterable[tuple[str, datetime]]) -> list[int]:
    """For each agent message, ms since the latest visitor message before it (PowerPulse).

    `messages` are (role, time) in the conversation's order. An agent message with no visitor
    message before it (a person writing first) has no response time. Two agent messages after
    one visitor message are both timed from it: the visitor waited that long for each.
    """
    times: list[int] = []
    last_visitor: datetime | None = None
    for role, at in messages:
        if role == "user":
            last_visitor = at
        elif role == "agent" and last_visitor is not None:
            times.append(milliseconds(last_visitor, at))
    return times


def is_resolved_at_first_contact(
    *, resolution: str, human_resolved: bool, visitor_returned: bool | None
) -> bool | None:
    """Whether a finished session counts as first-contact resolved; None when it does not count.

    It counts only for an identified visitor (`visitor_returned` is None for anonymous ones, who
    cannot be recognised when they come back) once the session is finished (not pending). It is
    resolved at first contact when it was resolved (by the assistant, confirmed or assumed, or
    by a person) and the visitor started no new session within `FCR_WINDOW_DAYS`.
    """
    if visitor_returned is None or resolution == "pending":
        return None
    resolved = resolution in {"confirmed", "assumed"} or human_resolved
    return resolved and not visitor_returned


# --- Sentiment trajectory and predicted satisfaction ----------------------------------------
def opened_negative(opening: float) -> bool:
    """Whether a conversation's opening visitor message is negative (`sentiment.label`'s cut)."""
    return opening <= NEGATIVE_MAX


def closed_positive(closing: float) -> bool:
    """Whether a conversation's closing visitor message is positive: with a negative opening, "recovered"."""
    return closing >= POSITIVE_MIN


def is_satisfied(score: int) -> bool:
    """Whether a 1-5 satisfaction score (rated or predicted) counts as satisfied for CSAT and AI CSAT."""
    return score >= CSAT_MIN_SCORE


# --- How right the AI is ----------------------------------------------------------------------
#: The predictions checked against the visitor's own answer, in the order every surface lists them.
#: `satisfaction`: predicted score ≥ CSAT_MIN_SCORE vs rated ≥ CSAT_MIN_SCORE; `resolution`: the
#: analysis's predicted_resolved vs the visitor's "was it resolved?"; `assumed_rule`: the assumed
#: resolution rule's own verdict vs that answer. Positive class: satisfied / resolved.
PREDICTORS: tuple[str, ...] = ("satisfaction", "resolution", "assumed_rule")
#: The cells of a confusion matrix, as the rollups key them ("satisfaction.tp").
CONFUSION_CELLS: tuple[str, ...] = ("tp", "fp", "fn", "tn")


def confusion_cell(*, predicted: bool, actual: bool) -> str:
    """The confusion-matrix cell of one prediction checked against the truth: tp, fp, fn or tn."""
    if predicted:
        return "tp" if actual else "fp"
    return "fn" if actual else "tn"


def confusion_matrix(counts: Mapping[str, int], predictor: str) -> dict[str, int]:
    """One predictor's cells from the rollups' flat `confusion` counts ("satisfaction.tp": n), and `n`."""
    cells = {cell: int(counts.get(f"{predictor}.{cell}", 0)) for cell in CONFUSION_CELLS}
    return {**cells, "n": sum(cells.values())}


def accuracy(*, tp: int, fp: int, fn: int, tn: int) -> float | None:
    """Share (%) of checked predictions that were right; None when nothing was checked."""
    return rate(tp + tn, tp + fp + fn + tn)


def precision(*, tp: int, fp: int) -> float | None:
    """Share (%) of positive predictions that were right; None (undefined) when nothing was predicted positive."""
    return rate(tp, tp + fp)


def recall(*, tp: int, fn: int) -> float | None:
    """Share (%) of actual positives the predictor found; None (undefined) when there was no actual positive."""
    return rate(tp, tp + fn)


def f1(*, tp: int, fp: int, fn: int) -> float | None:
    """Harmonic mean (%) of precision and recall, 2·tp / (2·tp + fp + fn).

    None when precision or recall is undefined: a predictor that never says "positive", or a
    sample with no positive, has no F1 (0 would read as "always wrong"). A real 0 (positives
    predicted and present, none right) stays 0.
    """
    if precision(tp=tp, fp=fp) is None or recall(tp=tp, fn=fn) is None:
        return None
    return rate(2 * tp, 2 * tp + fp + fn)

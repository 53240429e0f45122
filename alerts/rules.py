"""What a rule means, without the database: what it may watch, when it fires, when it resolves.

Three kinds of rule:

* ``metric``: any metric of the registry (`analytics.metrics.METRICS`) over the last
  `window_minutes`, read through the dashboard's own selectors. The registry's live metrics
  (`metrics.LIVE`: live sessions, visitors waiting, longest wait) are read as they are now.
* ``waiting``: a visitor has waited for a person longer than `threshold` minutes (the registry's
  live `longest_wait_ms`, in minutes).
* ``provider_failures``: provider calls that failed (attempted, not answered) in the last
  `window_minutes`: the registry's `failed_provider_calls`, named as a rule of its own.

`decide` is the whole state machine (minimum sample, K consecutive breaches, hysteresis,
cooldown) as a pure function, so the tests can walk it value by value and the services only
store what it says.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from analytics import metrics
from analytics.metrics import Totals

Kind = Literal["metric", "waiting", "provider_failures"]
Comparison = Literal[">", ">=", "<", "<="]
Status = Literal["ok", "breached", "cooldown", "firing", "no_data", "error"]

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
#: Windows are rolled up on the fly from the sessions and calls in them, like the dashboard's
#: "last 24 hours": a week is the longest that stays cheap to read every minute.
MAX_WINDOW_MINUTES = 7 * 24 * 60
#: What a `provider_failures` rule counts (a registry metric).
PROVIDER_FAILURES_METRIC = "failed_provider_calls"
#: Without a `hysteresis` of its own, a rule resolves this share of the room back past the
#: threshold: of the threshold itself (values are never negative), or, for a rule alerting below a
#: threshold on a bounded unit (percent, rating, score), of the distance up to the bound, so that
#: "success rate below 95 %" resolves at 95.5 %, not at an impossible 104.5 %.
DEFAULT_HYSTERESIS_SHARE = 0.10
#: The highest value of the bounded units.
CEILINGS = {"percent": 100.0, "rating": 5.0, "score": 100.0}
MAX_CONSECUTIVE = 10


@dataclass(frozen=True, slots=True)
class SampleBasis:
    """What a rule's minimum sample counts in its window, read from the period's `Totals`."""

    label: str
    count: Callable[[Totals], int]


#: The sample a rule's `min_sample` counts. Each is the denominator (or close to it) of the
#: metrics it is the default for, so "not enough data" means what a reader would expect.
SAMPLES: dict[str, SampleBasis] = {
    "sessions": SampleBasis("sessions", lambda t: t.sessions),
    "replies": SampleBasis("finished replies", lambda t: t.replies_timed),
    "assistant_messages": SampleBasis("assistant replies", lambda t: t.assistant_messages),
    "rated_replies": SampleBasis("rated replies", lambda t: t.feedback_up + t.feedback_down),
    "ratings": SampleBasis("end-of-chat ratings", lambda t: t.ratings),
    "provider_calls": SampleBasis("provider calls attempted", lambda t: t.calls_attempted),
    "handoff_requests": SampleBasis("requests for a person answered", lambda t: t.human_first_response_count),
}
_DEFAULT_SAMPLE = {
    **dict.fromkeys(
        ["avg_response_time_ms", "p50_response_time_ms", "p95_response_time_ms", "p99_response_time_ms",
         "avg_ttft_ms", "p50_ttft_ms", "p95_ttft_ms", "p99_ttft_ms", "cache_hit_rate", "cached_replies"],
        "replies",
    ),
    **dict.fromkeys(["feedback_rate", "assistant_messages"], "assistant_messages"),
    **dict.fromkeys(["satisfaction_rate", "thumbs_up", "thumbs_down", "rated_replies"], "rated_replies"),
    **dict.fromkeys(["avg_rating", "csat", "ratings"], "ratings"),
    **dict.fromkeys(
        ["provider_success_rate", "failover_rate", "failovers", "tokens", "input_tokens", "output_tokens",
         "cost_usd", "price_unknown_calls", "provider_calls", "failed_provider_calls", "avg_provider_latency_ms"],
        "provider_calls",
    ),
    **dict.fromkeys(["avg_human_first_response_ms", "p50_human_first_response_ms", "p90_human_first_response_ms"],
                    "handoff_requests"),
}  # fmt: skip


def default_sample(kind: str, metric: str) -> str:
    """The sample a rule counts when it names none: the metric's own denominator, else sessions."""
    if kind == "provider_failures":
        return "provider_calls"
    return _DEFAULT_SAMPLE.get(metric, "sessions")


def is_live(kind: str, metric: str) -> bool:
    """Whether the rule reads a number as it is now rather than over a window."""
    return kind == "waiting" or (kind == "metric" and metric in metrics.LIVE)


def alertable_metrics() -> list[tuple[str, str]]:
    """(key, label) of every registry metric a rule may watch: those with a formula, and the live ones."""
    return [
        (key, f"{metric.label} ({metric.unit})")
        for key, metric in metrics.METRICS.items()
        if metric.formula is not None or key in metrics.LIVE
    ]


def unit(kind: str, metric: str) -> str:
    """The unit a rule's value and threshold are in."""
    if kind == "waiting":
        return "minutes"
    if kind == "provider_failures":
        return "count"
    return metrics.METRICS[metric].unit if metric in metrics.METRICS else "ratio"


def ceiling(kind: str, metric: str) -> float | None:
    """The highest value the rule's number can take (None: unbounded)."""
    return CEILINGS.get(unit(kind, metric))


def label(kind: str, metric: str) -> str:
    """What the rule's value is, for people."""
    if kind == "waiting":
        return "Longest wait for a person"
    if kind == "provider_failures":
        return "Failed provider calls"
    return metrics.METRICS[metric].label if metric in metrics.METRICS else metric


def problems(
    *, kind: str, metric: str, window_minutes: int, comparison: str, threshold: float, hysteresis: float | None,
    consecutive: int, sample: str, user_type: str, provider: str,
) -> dict[str, str]:  # fmt: skip
    """What is wrong with a rule's settings, by field name (empty when it can be evaluated)."""
    found: dict[str, str] = {}
    if kind not in {"metric", "waiting", "provider_failures"}:
        found["kind"] = "Choose metric, waiting or provider_failures."
    if kind == "metric":
        allowed = {key for key, _ in alertable_metrics()}
        if metric not in allowed:
            found["metric"] = f"Not a metric of the registry one can alert on: {metric[:64]!r}."
    elif metric:
        found["metric"] = "Only metric rules name a metric."
    if not is_live(kind, metric) and not 1 <= window_minutes <= MAX_WINDOW_MINUTES:
        found["window_minutes"] = f"The window must be 1 to {MAX_WINDOW_MINUTES} minutes (7 days)."
    if comparison not in COMPARISONS:
        found["comparison"] = "Use >, >=, < or <=."
    elif kind == "waiting" and comparison not in {">", ">="}:
        found["comparison"] = "A waiting rule alerts when someone waits longer: use > or >=."
    if not _finite(threshold):
        found["threshold"] = "The threshold must be a number."
    if hysteresis is not None and (not _finite(hysteresis) or hysteresis < 0):
        found["hysteresis"] = "The hysteresis is a margin of zero or more, in the metric's unit."
    elif "metric" not in found and "comparison" not in found and "threshold" not in found:
        limits = Limits(comparison=comparison, threshold=threshold, hysteresis=hysteresis,
                        ceiling=ceiling(kind, metric))  # fmt: skip
        shifted = resolve_threshold(limits)
        if limits.ceiling is not None and comparison in {"<", "<="} and shifted > limits.ceiling:
            found["hysteresis"] = (
                f"It would resolve only above {shifted:g}, beyond the highest value {limits.ceiling:g}."
            )
        elif comparison in {">", ">="} and shifted < 0 and unit(kind, metric) != "ratio":
            found["hysteresis"] = f"It would resolve only below {shifted:g}, and the value is never negative."
    if not 1 <= consecutive <= MAX_CONSECUTIVE:
        found["consecutive"] = f"From 1 to {MAX_CONSECUTIVE} evaluations."
    if sample and sample not in SAMPLES:
        found["sample"] = f"One of: {', '.join(SAMPLES)}."
    if is_live(kind, metric) and (user_type or provider):
        found["user_type" if user_type else "provider"] = "Live numbers are not split by visitor type or provider."
    if user_type and default_sample(kind, metric) == "provider_calls":
        # The provider rollups are per provider and model only: the filter would be ignored.
        found["user_type"] = "Provider calls, tokens and costs are not split by visitor type."
    return found


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and value == value and abs(value) != float("inf")


@dataclass(frozen=True, slots=True)
class Reading:
    """One evaluation's number: its value and the sample it stands on (None: not counted)."""

    value: float | None
    sample: int | None = None
    #: Words about the reading for the message ("3 visitors waiting").
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Memory:
    """What the rule's state says before an evaluation."""

    firing: bool = False
    breaches: int = 0
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """The settings of a rule that `decide` reads."""

    comparison: str
    threshold: float
    hysteresis: float | None = None
    min_sample: int = 0
    consecutive: int = 1
    cooldown: timedelta = timedelta(0)
    #: The highest value the number can take (percent: 100), for the default hysteresis.
    ceiling: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a reading: `fire`, `resolve` or neither, and the state to keep."""

    status: Status
    breaches: int
    fire: bool = False
    resolve: bool = False


def margin(limits: Limits) -> float:
    """How far back past the threshold a firing rule's value must go to resolve."""
    if limits.hysteresis is not None:
        return limits.hysteresis
    if limits.ceiling is not None and limits.comparison in {"<", "<="}:
        return max(0.0, limits.ceiling - limits.threshold) * DEFAULT_HYSTERESIS_SHARE
    return abs(limits.threshold) * DEFAULT_HYSTERESIS_SHARE


def resolve_threshold(limits: Limits) -> float:
    """The threshold shifted back by the hysteresis: beyond it (the other way), the alert resolves."""
    shift = margin(limits)
    return limits.threshold - shift if limits.comparison in {">", ">="} else limits.threshold + shift


def breached(value: float, limits: Limits) -> bool:
    """Whether `value` is past the threshold (the condition the rule alerts on)."""
    return COMPARISONS[limits.comparison](value, limits.threshold)


def recovered(value: float, limits: Limits) -> bool:
    """Whether a firing rule's `value` went back past the threshold by the hysteresis margin.

    A value hovering at the threshold (just over, just under) stays firing: it must clear the
    shifted threshold, not the threshold itself, so the alert does not flap.
    """
    return not COMPARISONS[limits.comparison](value, resolve_threshold(limits))


def enough(reading: Reading, limits: Limits) -> bool:
    """Whether the reading stands on enough data: a value, over at least the minimum sample."""
    if reading.value is None:
        return False
    return reading.sample is None or reading.sample >= limits.min_sample


def decide(reading: Reading, memory: Memory, limits: Limits, *, now: datetime) -> Decision:
    """The next state of a rule after `reading`.

    Not enough data: neither fire nor resolve (and a run of breaches starts over). Firing:
    resolve once the value recovered past the hysteresis margin. Not firing: count consecutive
    breaches; fire at `consecutive` of them unless the cooldown since the last resolution runs.
    """
    if not enough(reading, limits):
        return Decision(status="no_data", breaches=memory.breaches if memory.firing else 0)
    value = float(reading.value)  # type: ignore[arg-type]
    if memory.firing:
        if recovered(value, limits):
            return Decision(status="ok", breaches=0, resolve=True)
        return Decision(status="firing", breaches=memory.breaches)
    if not breached(value, limits):
        return Decision(status="ok", breaches=0)
    breaches = min(memory.breaches + 1, MAX_CONSECUTIVE)
    if breaches < limits.consecutive:
        return Decision(status="breached", breaches=breaches)
    if memory.resolved_at is not None and now < memory.resolved_at + limits.cooldown:
        return Decision(status="cooldown", breaches=breaches)
    return Decision(status="firing", breaches=breaches, fire=True)

"""The state machine of a rule (`alerts.rules.decide`), value by value, without the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts import rules
from alerts.rules import Decision, Limits, Memory, Reading

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def walk(values: list[float | None], limits: Limits, *, sample: int | None = None, step_s: int = 60) -> list[str]:
    """Evaluate `values` one a minute; what happened at each: fire, resolve, or the status."""
    memory = Memory()
    seen = []
    for index, value in enumerate(values):
        now = T0 + timedelta(seconds=step_s * index)
        decision = rules.decide(Reading(value=value, sample=sample), memory, limits, now=now)
        seen.append("FIRE" if decision.fire else "RESOLVE" if decision.resolve else decision.status)
        firing = (memory.firing or decision.fire) and not decision.resolve
        memory = Memory(
            firing=firing, breaches=decision.breaches, resolved_at=now if decision.resolve else memory.resolved_at
        )
    return seen


def test_a_value_hovering_at_the_threshold_fires_once_and_does_not_flap() -> None:
    # Threshold 100, default hysteresis 10 %: resolves only at 90 or less.
    limits = Limits(comparison=">", threshold=100)
    seen = walk([99, 101, 99, 101, 100, 95, 91, 90.5, 101, 90, 101], limits)
    assert seen == ["ok", "FIRE", "firing", "firing", "firing", "firing", "firing", "firing", "firing", "RESOLVE",
                    "FIRE"]  # fmt: skip


def test_without_hysteresis_the_same_values_would_flap() -> None:
    limits = Limits(comparison=">", threshold=100, hysteresis=0)
    assert walk([101, 99, 101, 99], limits) == ["FIRE", "RESOLVE", "FIRE", "RESOLVE"]


def test_a_below_rule_resolves_above_the_threshold_plus_its_margin() -> None:
    # Success rate below 95 %, margin 2 points: resolves at 97 % or more.
    limits = Limits(comparison="<", threshold=95, hysteresis=2)
    assert rules.resolve_threshold(limits) == 97
    assert walk([96, 94.9, 95, 96.9, 97], limits) == ["ok", "FIRE", "firing", "firing", "RESOLVE"]


@pytest.mark.parametrize(
    ("comparison", "fires_at", "holds_at", "resolves_at"),
    [(">", 11, 9.5, 9), (">=", 10, 9.1, 8.9), ("<", 9, 10.5, 11), ("<=", 10, 10.9, 11.1)],
)
def test_each_comparison_fires_past_the_threshold_and_resolves_past_the_margin(
    comparison: str, fires_at: float, holds_at: float, resolves_at: float
) -> None:
    limits = Limits(comparison=comparison, threshold=10)  # margin 1
    assert walk([fires_at, holds_at, resolves_at], limits) == ["FIRE", "firing", "RESOLVE"]


def test_fewer_than_the_minimum_sample_neither_fires_nor_resolves() -> None:
    limits = Limits(comparison="<", threshold=95, min_sample=20, ceiling=100)
    memory = Memory()
    thin = rules.decide(Reading(value=50.0, sample=19), memory, limits, now=T0)
    assert thin == Decision(status="no_data", breaches=0)
    firing = Memory(firing=True, breaches=1)
    assert rules.decide(Reading(value=100.0, sample=3), firing, limits, now=T0) == Decision("no_data", 1)
    assert rules.decide(Reading(value=100.0, sample=20), firing, limits, now=T0).resolve


def test_no_value_is_not_enough_data() -> None:
    limits = Limits(comparison=">", threshold=0)
    assert walk([None, None], limits) == ["no_data", "no_data"]


def test_consecutive_breaches_are_needed_and_a_gap_starts_the_count_again() -> None:
    limits = Limits(comparison=">", threshold=10, consecutive=3)
    assert walk([11, 11, 5, 11, 11, 11], limits) == ["breached", "breached", "ok", "breached", "breached", "FIRE"]


def test_no_new_firing_within_the_cooldown_after_resolving() -> None:
    limits = Limits(comparison=">", threshold=10, hysteresis=0, cooldown=timedelta(minutes=3))
    # Minute 0 fires, 1 resolves; 2, 3 are inside the 3-minute cooldown; 4 is past it.
    assert walk([11, 5, 11, 11, 11], limits) == ["FIRE", "RESOLVE", "cooldown", "cooldown", "FIRE"]


def test_a_rule_with_a_zero_threshold_resolves_at_zero() -> None:
    limits = Limits(comparison=">", threshold=0)
    assert walk([1, 0], limits) == ["FIRE", "RESOLVE"]


def test_problems_name_the_field_of_a_rule_that_cannot_be_evaluated() -> None:
    base = {
        "kind": "metric", "metric": "csat", "window_minutes": 60, "comparison": "<", "threshold": 80.0,
        "hysteresis": None, "consecutive": 1, "sample": "", "user_type": "", "provider": "",
    }  # fmt: skip
    assert rules.problems(**base) == {}
    assert set(rules.problems(**{**base, "metric": "csat_typo"})) == {"metric"}
    assert set(rules.problems(**{**base, "window_minutes": 0})) == {"window_minutes"}
    assert set(rules.problems(**{**base, "window_minutes": rules.MAX_WINDOW_MINUTES + 1})) == {"window_minutes"}
    assert set(rules.problems(**{**base, "comparison": "=="})) == {"comparison"}
    assert set(rules.problems(**{**base, "threshold": float("nan")})) == {"threshold"}
    assert set(rules.problems(**{**base, "hysteresis": -1.0})) == {"hysteresis"}
    assert set(rules.problems(**{**base, "consecutive": 11})) == {"consecutive"}
    assert set(rules.problems(**{**base, "sample": "visitors"})) == {"sample"}
    assert set(rules.problems(**{**base, "metric": "waiting_now", "provider": "openai"})) == {"provider"}
    assert set(rules.problems(**{**base, "kind": "waiting", "metric": "csat", "comparison": ">"})) == {"metric"}
    assert rules.problems(**{**base, "kind": "waiting", "metric": "", "window_minutes": 0, "comparison": ">"}) == {}
    assert set(rules.problems(**{**base, "kind": "waiting", "metric": "", "comparison": "<"})) == {"comparison"}
    assert set(rules.problems(**{**base, "metric": "cost_usd", "comparison": ">", "user_type": "client"})) == {
        "user_type"
    }
    assert rules.problems(**{**base, "metric": "cost_usd", "comparison": ">", "provider": "openai"}) == {}


def test_every_metric_of_the_registry_with_a_formula_or_live_can_be_watched() -> None:
    from analytics.metrics import LIVE, METRICS

    watchable = {key for key, _ in rules.alertable_metrics()}
    assert watchable == {key for key, metric in METRICS.items() if metric.formula is not None} | set(LIVE)
    assert {"cost_usd", "provider_success_rate", "p95_response_time_ms", "satisfaction_rate"} <= watchable
    assert rules.PROVIDER_FAILURES_METRIC in METRICS


def test_the_default_hysteresis_of_a_rule_below_a_percentage_is_a_tenth_of_the_room_up_to_100() -> None:
    assert rules.resolve_threshold(Limits(comparison="<", threshold=95, ceiling=100)) == pytest.approx(95.5)
    assert rules.resolve_threshold(Limits(comparison="<", threshold=70, ceiling=100)) == pytest.approx(73)
    assert rules.resolve_threshold(Limits(comparison=">", threshold=30, ceiling=100)) == pytest.approx(27)
    assert rules.resolve_threshold(Limits(comparison=">", threshold=10_000)) == pytest.approx(9_000)


def test_a_hysteresis_that_could_never_resolve_is_refused() -> None:
    base = {
        "kind": "metric", "metric": "provider_success_rate", "window_minutes": 15, "comparison": "<",
        "threshold": 95.0, "hysteresis": 2.0, "consecutive": 1, "sample": "", "user_type": "", "provider": "",
    }  # fmt: skip
    assert rules.problems(**base) == {}
    assert set(rules.problems(**{**base, "hysteresis": 6.0})) == {"hysteresis"}  # would resolve at 101 %
    assert set(rules.problems(**{**base, "metric": "cost_usd", "comparison": ">", "threshold": 1.0,
                                 "hysteresis": 2.0})) == {"hysteresis"}  # fmt: skip

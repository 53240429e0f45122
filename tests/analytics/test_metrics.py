"""The metric formulas, on hand-computed numbers."""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import pytest

from analytics import metrics
from analytics.metrics import Totals


def test_rate_of_an_empty_denominator_is_no_data_not_zero() -> None:
    assert metrics.rate(0, 0) is None
    assert metrics.ratio(5, 0) is None
    assert metrics.rate(1, 4) == 25.0


@pytest.mark.parametrize(
    ("value", "bucket"),
    [(0, 0), (7, 7), (99, 99), (100, 100), (1234, 1200), (1250, 1300), (1349, 1300), (98765, 99000), (-5, 0)],
)
def test_histogram_bucket_rounds_to_two_significant_digits_half_up(value: int, bucket: int) -> None:
    assert metrics.histogram_bucket(value) == bucket


def test_percentiles_are_nearest_rank_over_the_merged_histogram() -> None:
    day1 = metrics.histogram([100, 200, 300])
    day2 = metrics.histogram([400, 500, 600, 700, 800, 900, 1000])
    merged = metrics.merge_histograms([day1, day2])
    # Ten values 100..1000: p50 is the 5th (500), p95 and p99 the 10th (1000), p10 the 1st.
    assert metrics.percentile(merged, 50) == 500
    assert metrics.percentile(merged, 95) == 1000
    assert metrics.percentile(merged, 99) == 1000
    assert metrics.percentile(merged, 10) == 100
    assert metrics.percentile({}, 95) is None


def test_exact_percentile_of_a_session() -> None:
    assert metrics.exact_percentile([3000, 1000, 2000], 95) == 3000
    assert metrics.exact_percentile([3000, 1000, 2000], 50) == 2000
    assert metrics.exact_percentile([], 95) is None


@pytest.mark.parametrize(
    ("user_messages", "actions", "feedback", "rated", "score"),
    [
        (0, 0, False, False, 0),
        (1, 0, False, False, 10),
        (3, 2, True, False, 30 + 10 + 15),
        (9, 9, True, True, 50 + 20 + 15 + 15),  # every part capped: 100
    ],
)
def test_engagement_score(user_messages: int, actions: int, feedback: bool, rated: bool, score: int) -> None:
    assert (
        metrics.engagement_score(user_messages=user_messages, actions=actions, feedback_given=feedback, rated=rated)
        == score
    )


@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [
        ({"rating_resolved": True, "finished": False, "escalated": True}, "confirmed"),
        ({"rating_resolved": False}, "unresolved"),
        ({"finished": False}, "pending"),
        ({}, "assumed"),
        ({"answered": False}, "unresolved"),
        ({"escalated": True}, "unresolved"),
        ({"negative_feedback": True}, "unresolved"),
        ({"unanswered": True}, "unresolved"),
    ],
)
def test_resolution_kinds(kwargs: dict[str, object], kind: str) -> None:
    base = {
        "rating_resolved": None,
        "finished": True,
        "answered": True,
        "escalated": False,
        "negative_feedback": False,
        "unanswered": False,
    }
    assert metrics.resolution(**{**base, **kwargs}) == kind  # type: ignore[arg-type]


def test_call_cost_bills_cached_input_at_the_cached_price() -> None:
    price = (Decimal("0.40"), Decimal("1.60"), Decimal("0.10"))
    # (800 x 0.40 + 200 x 0.10 + 500 x 1.60) / 1e6 = 1140 / 1e6
    cost = metrics.call_cost(input_tokens=1000, output_tokens=500, cached_tokens=200, price=price)
    assert cost == Decimal("0.00114")


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [
        (3, 1, {"previous": 1, "pct": 200.0, "direction": "up"}),
        (1, 4, {"previous": 4, "pct": -75.0, "direction": "down"}),
        (100.2, 100, {"previous": 100, "pct": 0.2, "direction": "flat"}),
        (5, 0, {"previous": 0, "pct": None, "direction": "up"}),
        (0, 0, {"previous": 0, "pct": None, "direction": "flat"}),
        (None, 3, {"previous": 3, "pct": None, "direction": None}),
        (3, None, {"previous": None, "pct": None, "direction": None}),
    ],
)
def test_change_versus_previous_period(current: float | None, previous: float | None, expected: dict) -> None:
    assert metrics.change(current, previous) == expected


def test_summary_of_an_empty_period_is_no_data_everywhere_a_rate_is_involved() -> None:
    values = metrics.summarize(Totals())
    assert values["sessions"] == 0 and values["messages"] == 0 and values["cost_usd"] == 0.0
    for key in [
        "messages_per_session",
        "avg_response_time_ms",
        "p95_response_time_ms",
        "feedback_rate",
        "satisfaction_rate",
        "csat",
        "avg_rating",
        "resolution_rate",
        "escalation_rate",
        "engagement_rate",
        "cost_per_session",
        "cache_hit_rate",
        "provider_success_rate",
        "failover_rate",
    ]:
        assert values[key] is None, key


def test_every_metric_summarize_returns_is_defined_with_a_one_line_definition() -> None:
    values = metrics.summarize(Totals())
    assert set(values) == set(metrics.METRICS) - set(metrics.LIVE)
    for metric in metrics.METRICS.values():
        assert metric.definition.endswith(".") and "\n" not in metric.definition, metric.key
    assert set(metrics.HEADLINE) <= set(values)


def test_docs_list_every_metric_with_the_same_definition_as_the_code() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "analytics.md").read_text(encoding="utf-8")
    positions = []
    for metric in metrics.METRICS.values():
        star = " ★" if metric.headline else ""
        row = f"| {metric.label}{star} | `{metric.key}` | {metric.unit} | {metric.definition} |"
        assert row in docs, f"docs/analytics.md lacks or differs for {metric.key}: regenerate the table"
        positions.append(docs.index(row))
    assert positions == sorted(positions), "docs/analytics.md lists the metrics in another order than the registry"


# --- The registry ---------------------------------------------------------------------------
def test_summarize_reads_each_metric_formula_or_totals_field() -> None:
    totals = Totals(sessions=4, closed_sessions=1, total_messages=10, feedback_up=3, feedback_down=1,
                    assistant_messages=5, cost_usd=Decimal("0.02"))  # fmt: skip
    values = metrics.summarize(totals)
    assert values["sessions"] == 4  # the `sessions` field
    assert values["messages"] == 10  # `total_messages`
    assert values["thumbs_up"] == 3 and values["thumbs_down"] == 1  # `feedback_up`, `feedback_down`
    assert values["active_sessions"] == 3  # 4 - 1
    assert values["messages_per_session"] == 2.5  # 10 / 4
    assert values["satisfaction_rate"] == 75.0  # 3 up of 4 rated
    assert values["feedback_rate"] == 80.0  # 4 rated of 5 replies
    assert values["cost_per_session"] == 0.005  # 0.02 / 4
    assert "live_sessions" not in values  # no formula: the dashboard reads it live


def test_a_formula_named_by_field_names_a_field_of_totals() -> None:
    names = {item.name for item in fields(Totals)}
    for metric in metrics.METRICS.values():
        if isinstance(metric.formula, str):
            assert metric.formula in names, metric.key


def test_report_sections_follow_the_registry_in_order() -> None:
    sections = metrics.report_sections()
    assert [title for title, _ in sections] == list(metrics.SECTIONS)
    assert sections[0] == ("Sessions", ["sessions", "active_sessions", "closed_sessions"])
    assert sections[1] == ("Messages", ["messages", "user_messages", "assistant_messages", "messages_per_session"])
    listed = [key for _, keys in sections for key in keys]
    assert len(listed) == len(set(listed))
    for title, keys in sections:
        assert keys, f"section {title} lists no metric"
        assert all(metrics.METRICS[key].formula is not None for key in keys), title  # a report shows computed values
    # A headline metric shows its change in the report, so it needs a section.
    assert set(metrics.headline()) <= set(listed)
    # Left out of the report: the live numbers and the tail percentiles (they are on the API).
    assert set(metrics.METRICS) - set(listed) == {
        "live_sessions", "waiting_now", "longest_wait_ms", "p99_response_time_ms", "p50_ttft_ms", "p99_ttft_ms"
    }  # fmt: skip


def test_dashboard_cards_are_numbered_without_gaps_each_with_a_number_to_show() -> None:
    cards = metrics.cards()
    assert cards[:4] == ["live_sessions", "sessions", "messages", "messages_per_session"]
    assert len(cards) == 28
    positions = [metrics.METRICS[key].card for key in cards]
    assert positions == list(range(1, len(cards) + 1))  # no two cards in one place, no gap
    for key in cards:
        # The dashboard reads the live numbers live; every other card needs a computed value.
        assert (metrics.METRICS[key].formula is None) == (key in metrics.LIVE), key


def test_definitions_hand_the_dashboard_every_metric_with_its_card_and_section() -> None:
    definitions = metrics.definitions()
    assert list(definitions) == list(metrics.METRICS)
    assert definitions["sessions"] == {
        "label": "Sessions",
        "unit": "count",
        "definition": "Chat sessions started in the period.",
        "higher_is_better": True,
        "headline": True,
        "section": "Sessions",
        "card": 2,
        "companion": None,
        "live": False,
    }
    assert definitions["live_sessions"]["card"] == 1 and definitions["live_sessions"]["section"] is None
    assert definitions["p99_ttft_ms"]["card"] is None

"""Period summaries and breakdowns on the hand-computed week (tests/analytics/conftest.py)."""

from __future__ import annotations

from datetime import date

import pytest

from analytics import selectors
from analytics.models import ChatAnalytics
from analytics.selectors import Filters, Period
from tests.analytics.conftest import EXPECTED, EXPECTED_PREVIOUS, PERIOD

# Day cutting, JSON fields and SQL aggregates differ between SQLite and Postgres: run on both.
pytestmark = pytest.mark.backends


@pytest.mark.django_db
def test_summary_of_the_week_matches_the_hand_computed_numbers(week) -> None:
    values = selectors.summary(PERIOD)["metrics"]
    for key, expected in EXPECTED.items():
        assert values[key] == expected, key


@pytest.mark.django_db
def test_previous_week_and_the_change_of_headline_numbers(week) -> None:
    summary = selectors.summary(PERIOD)
    assert summary["previous_period"] == {"start": "2026-02-23", "end": "2026-03-01", "days": 7}
    previous = selectors.summary(PERIOD.previous())["metrics"]
    for key, expected in EXPECTED_PREVIOUS.items():
        assert previous[key] == expected, key
    changes = summary["changes"]
    assert changes["sessions"] == {"previous": 1, "pct": 200.0, "direction": "up"}  # 3 vs 1
    assert changes["messages"] == {"previous": 2, "pct": 300.0, "direction": "up"}  # 8 vs 2
    assert changes["avg_response_time_ms"] == {"previous": 500.0, "pct": 300.0, "direction": "up"}
    assert changes["resolution_rate"] == {"previous": 100.0, "pct": -66.7, "direction": "down"}
    # No cost last week (one cached local reply): no meaningful %, but a direction.
    assert changes["cost_usd"] == {"previous": 0.0, "pct": None, "direction": "up"}
    assert changes["avg_rating"] == {"previous": None, "pct": None, "direction": None}


@pytest.mark.django_db
def test_days_are_cut_in_the_configured_time_zone(week) -> None:
    rows = {row.session_id: row.day for row in ChatAnalytics.objects.all()}
    # 23:30 UTC is 00:30 the next day in Paris (UTC+1 in March before the switch).
    assert rows[week.sessions["S1"].pk] == date(2026, 3, 2)
    assert rows[week.sessions["S4"].pk] == date(2026, 3, 9)
    first_day = selectors.summary(Period(date(2026, 3, 2), date(2026, 3, 2)))["metrics"]
    assert first_day["sessions"] == 1 and first_day["cost_usd"] == 0.00114
    after = selectors.summary(Period(date(2026, 3, 9), date(2026, 3, 9)))["metrics"]
    assert after["sessions"] == 1 and after["messages"] == 2


@pytest.mark.django_db
def test_empty_period_gives_no_data_not_errors(week) -> None:
    summary = selectors.summary(Period(date(2025, 1, 1), date(2025, 1, 7)))
    values = summary["metrics"]
    assert values["sessions"] == 0 and values["messages"] == 0
    assert values["avg_response_time_ms"] is None and values["resolution_rate"] is None
    assert values["csat"] is None and values["cost_per_session"] is None
    report = selectors.report(Period(date(2025, 1, 1), date(2025, 1, 7)))
    assert report["top_topics"] == [] and report["providers"] == [] and len(report["daily"]) == 7


@pytest.mark.django_db
def test_breakdowns_of_the_week(week) -> None:
    data = selectors.breakdowns(PERIOD)
    assert data["top_topics"] == [
        {"topic": "Billing › Refunds", "sessions": 1},
        {"topic": "billing", "sessions": 1},
        {"topic": "installation", "sessions": 1},
    ]
    assert data["common_issues"] == [{"topic": "installation", "sessions": 1}]  # S3; S2 has no topic
    assert data["user_types"] == [
        {"user_type": "anonymous", "sessions": 2, "share": 66.67},
        {"user_type": "client", "sessions": 1, "share": 33.33},
    ]
    hours = {item["hour"]: item["sessions"] for item in data["peak_hours"] if item["sessions"]}
    assert hours == {0: 1, 11: 1, 16: 1}  # Paris hours of S1, S2, S3
    heat = data["peak_heatmap"]["sessions"]
    assert heat[0][0] == 1 and heat[2][11] == 1 and heat[4][16] == 1  # Mon 00h, Wed 11h, Fri 16h
    assert sum(map(sum, heat)) == 3


@pytest.mark.django_db
def test_providers_and_models_with_price_unknown_never_zero(week) -> None:
    data = selectors.breakdowns(PERIOD)
    providers = {item["provider"]: item for item in data["providers"]}
    assert providers["openai"]["calls"] == 4 and providers["openai"]["success_rate"] == 75.0
    assert providers["openai"]["failovers"] == 1 and providers["openai"]["failover_rate"] == 25.0
    assert providers["anthropic"]["calls"] == 1 and providers["anthropic"]["failover_rate"] == 100.0
    assert providers["gemini"]["success_rate"] == 0.0
    models = {(m["provider"], m["model"]): m for m in data["models"]}
    assert models[("openai", "gpt-4.1-mini")]["cost_usd"] == 0.0041
    assert models[("openai", "llama3.1:8b")]["price_unknown"] is True
    assert models[("openai", "llama3.1:8b")]["cost_usd"] is None
    # claude-mystery has no price either, but its call failed before using any token: no bill.
    assert models[("anthropic", "claude-mystery")]["price_unknown"] is False


@pytest.mark.django_db
def test_filters_narrow_by_user_type_and_provider(week) -> None:
    client = selectors.summary(PERIOD, Filters(user_type="client"))["metrics"]
    assert client["sessions"] == 1 and client["messages"] == 4 and client["escalation_rate"] == 100.0
    openai = selectors.summary(PERIOD, Filters(provider="openai"))["metrics"]
    # Sessions whose replies were mostly openai's: S1 and S2 (S3's only reply failed).
    assert openai["sessions"] == 2
    assert openai["input_tokens"] == 4050  # openai's calls: 1000 + 2000 + 1000 + 50


@pytest.mark.django_db
def test_daily_series_covers_every_day_with_its_own_numbers(week) -> None:
    series = selectors.daily_series(PERIOD)
    assert series[0]["date"] == "2026-03-02" and len(series) == 7
    by_day = {day["date"]: day for day in series}
    assert by_day["2026-03-04"]["messages"] == 4 and by_day["2026-03-04"]["thumbs_down"] == 1
    assert by_day["2026-03-05"]["sessions"] == 0 and by_day["2026-03-05"]["avg_response_time_ms"] is None


@pytest.mark.django_db
def test_per_session_rows_of_the_fixture(week) -> None:
    rows = {row.session_id: row for row in ChatAnalytics.objects.all()}
    s1, s2, s3 = (rows[week.sessions[name].pk] for name in ("S1", "S2", "S3"))
    assert (s1.resolution, s1.engagement_score, s1.satisfaction_rating) == ("confirmed", 40, 5)
    assert s1.topics_discussed == ["billing", "Billing › Refunds"]
    assert (s2.resolution, s2.escalated_to_human, s2.engagement_score) == ("unresolved", True, 50)
    assert (s2.avg_response_time_ms, s2.p95_response_time_ms, s2.avg_ttft_ms) == (2500, 3000, 200)
    assert (s2.failovers, s2.provider_errors, s2.feedback_down) == (1, 1, 1)
    assert (s3.resolution, s3.unanswered, s3.failed_replies, s3.avg_response_time_ms) == ("unresolved", True, 1, None)
    assert s2.duration_s == 120  # first message 10:00, last activity (feedback) 10:02
    assert s1.avg_sentiment is not None and -1 <= s1.avg_sentiment <= 1


@pytest.mark.django_db
def test_a_window_of_whole_local_days_equals_the_stored_rollups(week) -> None:
    from analytics.rollup import day_bounds

    start, _ = day_bounds(PERIOD.start)
    _, end = day_bounds(PERIOD.end)
    window = selectors.summary(Period.between(start, end))
    assert window["metrics"] == selectors.summary(PERIOD)["metrics"]
    assert selectors.breakdowns(Period.between(start, end)) == selectors.breakdowns(PERIOD)


@pytest.mark.django_db
def test_the_last_24_hours_are_read_on_the_fly_and_compared_with_the_24_before(week) -> None:
    from datetime import UTC, datetime

    # 2026-03-04 09:00 UTC to 2026-03-05 09:00 UTC holds S2 only (started 10:00 UTC).
    period = Period.last_hours(24, now=datetime(2026, 3, 5, 9, 0, tzinfo=UTC))
    summary = selectors.summary(period)
    values = summary["metrics"]
    assert (values["sessions"], values["messages"], values["escalation_rate"]) == (1, 4, 100.0)
    assert values["cost_usd"] == 0.00296  # S2's two openai calls: 960 + 2000 per million
    assert summary["period"]["hours"] == 24 and summary["previous_period"]["start_time"] == "2026-03-03T09:00:00+00:00"
    assert summary["changes"]["sessions"] == {"previous": 0, "pct": None, "direction": "up"}
    assert selectors.breakdowns(period)["providers"][0]["provider"] == "anthropic"

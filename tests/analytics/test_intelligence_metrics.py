"""Sentiment, trajectory, AI CSAT and how right the AI is, on the hand-computed day of
tests/analytics/intelligence_fixture.py: the rollups, the registry, the window path, every surface."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from analytics import selectors, services
from analytics.models import ChatAnalytics, ConversationAnalysis, DailySessionRollup
from analytics.selectors import Period
from tests.analytics.intelligence_fixture import (
    DAY,
    EXPECTED,
    EXPECTED_LANGUAGES,
    EXPECTED_QUALITY,
    EXPECTED_SENTIMENT,
    NOW,
    PERIOD,
    TRAJECTORIES,
    build_intelligence_day,
)

pytestmark = [pytest.mark.django_db, pytest.mark.backends]

QUERY = {"start_date": str(PERIOD.start), "end_date": str(PERIOD.end)}


@pytest.fixture
def day(db, settings) -> dict[str, Any]:
    """The fixture, in UTC with a 30-minute idle window."""
    settings.TIME_ZONE = "UTC"
    settings.RESOLUTION_IDLE_MINUTES = 30
    return build_intelligence_day()


def _vader(text: str) -> float:
    """The message's compound score straight from the VADER library (the lexicon is not under test)."""
    return SentimentIntensityAnalyzer().polarity_scores(text)["compound"]


def _report(fmt: str) -> str:
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("generate_chat_weekly_report", "--format", fmt, "--end-date", DAY.isoformat(), "--no-progress",
                     stdout=out, stderr=StringIO())  # fmt: skip
    return out.getvalue()


def test_the_rollup_sums_are_the_hand_computed_ones(day) -> None:
    rows = list(DailySessionRollup.objects.filter(day=DAY))
    total = {name: sum(getattr(row, name) for row in rows) for name in (
        "sessions", "unscored_messages", "trajectory_sessions", "opened_negative", "recovered", "analyzed_sessions",
        "unrated_finished", "predicted_sessions", "predicted_satisfied", "predicted_satisfaction_sum",
        "follow_up_sessions",
    )}  # fmt: skip
    assert total == {
        "sessions": 16, "unscored_messages": 2, "trajectory_sessions": 3, "opened_negative": 2, "recovered": 1,
        "analyzed_sessions": 15, "unrated_finished": 5, "predicted_sessions": 3, "predicted_satisfied": 2,
        "predicted_satisfaction_sum": 11, "follow_up_sessions": 2,
    }  # fmt: skip
    confusion: dict[str, int] = {}
    for row in rows:
        for key, count in row.confusion.items():
            confusion[key] = confusion.get(key, 0) + count
    assert confusion == {
        "satisfaction.tp": 3, "satisfaction.fp": 1, "satisfaction.fn": 2, "satisfaction.tn": 4,
        "resolution.tp": 2, "resolution.fp": 2, "resolution.fn": 1, "resolution.tn": 2,
        "assumed_rule.tp": 3, "assumed_rule.fp": 2, "assumed_rule.fn": 1, "assumed_rule.tn": 2,
    }  # fmt: skip


def test_every_new_metric_is_the_hand_computed_value(day) -> None:
    values = selectors.summary(PERIOD)["metrics"]
    for key, value in EXPECTED.items():
        assert values[key] == value, key
    openings = [_vader(first) for first, _ in TRAJECTORIES.values()]
    closings = [_vader(last) for _, last in TRAJECTORIES.values()]
    assert values["avg_opening_sentiment"] == round(sum(openings) / 3, 2)
    assert values["avg_closing_sentiment"] == round(sum(closings) / 3, 2)
    # The mean of the 18 scored messages: the Japanese ones neither count as 0 nor dilute it.
    scored = [_vader(text) for pair in TRAJECTORIES.values() for text in pair]  # the neutral ones score 0
    assert values["avg_sentiment"] == round(sum(scored) / 18, 2)


def test_breakdowns_carry_the_confusion_matrices_sentiment_languages_and_analysed_topics(day) -> None:
    data = selectors.breakdowns(PERIOD)
    assert data["prediction_quality"] == EXPECTED_QUALITY
    assert data["sentiment"] == EXPECTED_SENTIMENT
    assert data["languages"] == EXPECTED_LANGUAGES
    assert {"topic": "loyalty card", "sessions": 2} in data["top_topics"]


def test_the_window_path_gives_the_stored_days_numbers(day) -> None:
    window = Period.between(*_day_bounds())
    with time_machine.travel(NOW, tick=False):
        stored, rolled = selectors.summary(Period(DAY, DAY))["metrics"], selectors.summary(window)["metrics"]
        assert rolled == stored
        stored_b, rolled_b = selectors.breakdowns(Period(DAY, DAY)), selectors.breakdowns(window)
    for key in ("prediction_quality", "sentiment", "languages", "top_topics"):
        assert rolled_b[key] == stored_b[key], key


def _day_bounds() -> tuple[Any, Any]:
    from analytics.rollup import day_bounds

    return day_bounds(DAY)


def test_an_analysis_written_later_reaches_the_rollups_on_the_next_refresh(day) -> None:
    """Whoever writes an analysis touches ChatAnalytics.updated_at: the sweep re-rolls its day."""
    j = day["J"]
    later = NOW.replace(hour=21, minute=30)
    with time_machine.travel(later, tick=False):
        ConversationAnalysis.objects.create(session=j, content_hash="1" * 64, version="test", method="offline",
                                            predicted_satisfaction=4, analyzed_at=later)  # fmt: skip
        ChatAnalytics.objects.filter(session=j).update(updated_at=later)
        services.rollups_refresh()
        values = selectors.summary(PERIOD)["metrics"]
    # J joins AI CSAT: 3 of 4 predicted 4-5 (T1, T2, J), coverage 4 / 5.
    assert (values["ai_csat"], values["ai_csat_coverage"], values["analyzed_sessions"]) == (75.0, 80.0, 16)


def test_dashboard_api_and_report_print_the_same_new_numbers(day) -> None:
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    staff = Client()
    staff.force_login(user)
    with time_machine.travel(NOW, tick=False):
        dashboard = staff.get("/admin/chat-analytics/api/summary/", QUERY).json()
        snapshot = staff.get("/admin/chat-analytics/api/", QUERY).json()
    report = json.loads(_report("json"))
    for key, value in EXPECTED.items():
        assert dashboard["metrics"][key] == snapshot["metrics"][key] == report["metrics"][key] == value, key
    assert dashboard["prediction_quality"] == report["prediction_quality"] == EXPECTED_QUALITY
    assert dashboard["sentiment"] == report["sentiment"] == EXPECTED_SENTIMENT

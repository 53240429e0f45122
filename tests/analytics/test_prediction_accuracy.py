"""How right the AI is: the confusion-matrix formulas on hand counts, undefined scores as None (never
0), the flat `confusion` counts merged across rollup rows, and the matrices in every report format,
the staff API's insights and the session-analytics export (tests/analytics/intelligence_fixture.py)."""

from __future__ import annotations

import csv
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.http import QueryDict
from django.test import Client

from analytics import exports, metrics, params
from analytics.metrics import Totals
from analytics.rollup import session_topics
from tests.analytics.intelligence_fixture import DAY, EXPECTED_QUALITY, NOW, PERIOD, build_intelligence_day


def test_scores_of_a_known_confusion_matrix() -> None:
    # tp 3, fp 1, fn 2, tn 4: accuracy 7/10, precision 3/4, recall 3/5, F1 6/9.
    assert metrics.accuracy(tp=3, fp=1, fn=2, tn=4) == 70.0
    assert metrics.precision(tp=3, fp=1) == 75.0
    assert metrics.recall(tp=3, fn=2) == 60.0
    assert metrics.f1(tp=3, fp=1, fn=2) == pytest.approx(66.6667, abs=1e-3)


def test_undefined_scores_are_none_and_a_real_zero_stays_zero() -> None:
    # Never predicted positive: precision and F1 undefined; recall 0 of 2 is a real 0.
    assert metrics.precision(tp=0, fp=0) is None
    assert metrics.recall(tp=0, fn=2) == 0.0
    assert metrics.f1(tp=0, fp=0, fn=2) is None
    # No actual positive: recall and F1 undefined, precision 0 of 3 is a real 0.
    assert metrics.recall(tp=0, fn=0) is None
    assert metrics.precision(tp=0, fp=3) == 0.0
    assert metrics.f1(tp=0, fp=3, fn=0) is None
    # Positives predicted and present, none right: F1 is 0, not None.
    assert metrics.f1(tp=0, fp=1, fn=1) == 0.0
    assert metrics.accuracy(tp=0, fp=0, fn=0, tn=0) is None


def test_confusion_cells() -> None:
    cells = [metrics.confusion_cell(predicted=p, actual=a) for p, a in [(1, 1), (1, 0), (0, 1), (0, 0)]]
    assert cells == ["tp", "fp", "fn", "tn"]


def test_flat_confusion_counts_merge_across_rows_and_give_the_registry_scores() -> None:
    totals = Totals()
    totals.add_session_row({"confusion": {"satisfaction.tp": 2, "satisfaction.fn": 2, "resolution.tn": 1}})
    totals.add_session_row({"confusion": {"satisfaction.tp": 1, "satisfaction.fp": 1, "satisfaction.tn": 4}})
    assert metrics.confusion_matrix(totals.confusion, "satisfaction") == {"tp": 3, "fp": 1, "fn": 2, "tn": 4, "n": 10}
    values = metrics.summarize(totals)
    assert values["satisfaction_checked"] == 10 and values["satisfaction_accuracy"] == 70.0
    assert values["resolution_accuracy"] == 100.0 and values["resolution_precision"] is None
    assert values["assumed_rule_checked"] == 0 and values["assumed_rule_accuracy"] is None
    quality = metrics.prediction_quality(totals)
    assert quality[0] == EXPECTED_QUALITY[0]
    assert [row["predictor"] for row in quality] == ["satisfaction", "resolution", "assumed_rule"]


def test_ai_csat_and_coverage_from_totals() -> None:
    # 5 unrated finished, 3 predicted (5, 4, 2): AI CSAT 2/3, coverage 3/5, average 11/3.
    values = metrics.summarize(
        Totals(unrated_finished=5, predicted_sessions=3, predicted_satisfied=2, predicted_satisfaction_sum=11)
    )
    assert values["ai_csat"] == pytest.approx(66.6667, abs=1e-3)
    assert values["ai_csat_coverage"] == 60.0
    assert values["predicted_satisfaction_avg"] == pytest.approx(3.6667, abs=1e-3)
    assert metrics.summarize(Totals())["ai_csat"] is None


def test_session_topics_are_the_union_each_once() -> None:
    assert session_topics(["billing", "refunds"], ["refunds", "loyalty card", ""]) == [
        "billing", "refunds", "loyalty card",
    ]  # fmt: skip
    assert session_topics(None, None) == []


def test_ai_csat_sits_beside_csat_with_its_coverage() -> None:
    cards = metrics.cards()
    assert cards[cards.index("csat") + 1] == "ai_csat"
    assert metrics.definitions()["ai_csat"]["companion"] == "ai_csat_coverage"


# --- Every surface -----------------------------------------------------------------------------
@pytest.fixture
def day(db, settings):
    settings.TIME_ZONE = "UTC"
    settings.RESOLUTION_IDLE_MINUTES = 30
    return build_intelligence_day()


def _report(fmt: str) -> str:
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("generate_chat_weekly_report", "--format", fmt, "--end-date", DAY.isoformat(), "--no-progress",
                     stdout=out, stderr=StringIO())  # fmt: skip
    return out.getvalue()


@pytest.mark.django_db
@pytest.mark.backends
def test_the_report_prints_the_confusion_matrices_in_every_format(day) -> None:
    text = _report("text")
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("HOW RIGHT THE AI IS (CONFUSION"))
    rows = [line.split() for line in lines[start + 3 : start + 6]]
    assert rows[0][-9:] == ["10", "3", "1", "2", "4", "70%", "75%", "60%", "66.67%"]
    assert rows[1][-9:] == ["7", "2", "2", "1", "2", "57.14%", "50%", "66.67%", "57.14%"]
    assert rows[2][-9:] == ["8", "3", "2", "1", "2", "62.5%", "60%", "75%", "66.67%"]
    assert "HOW RIGHT THE AI IS" in lines and "CONVERSATION INTELLIGENCE" in lines
    markdown = _report("markdown")
    assert "| Predicted satisfaction | 10 | 3 | 1 | 2 | 4 | 70% | 75% | 60% | 66.67% |" in markdown
    assert "| Assumed-resolution rule | 8 | 3 | 2 | 1 | 2 | 62.5% | 60% | 75% | 66.67% |" in markdown
    assert "| AI CSAT[^ai_csat] | 66.67% |" in markdown
    html = _report("html")
    table = html[html.index("How right the AI is: confusion matrices") :]
    assert "Predicted resolution" in table and "57.14%" in table and "66.67%" in table


@pytest.mark.django_db
@pytest.mark.backends
def test_the_staff_api_carries_the_confusion_matrices_and_the_new_metrics(day) -> None:
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    query = {"start_date": str(PERIOD.start), "end_date": str(PERIOD.end)}
    with time_machine.travel(NOW, tick=False):
        insights = client.get("/api/v1/insights/", query)
        listed = client.get("/api/v1/metrics/", query)
    assert insights.status_code == 200, insights.content
    assert insights.json()["prediction_quality"] == EXPECTED_QUALITY
    values = {item["key"]: item["value"] for item in listed.json()["metrics"]}
    assert (values["ai_csat"], values["ai_csat_coverage"], values["recovered_rate"]) == (66.67, 60.0, 50.0)


@pytest.mark.django_db
@pytest.mark.backends
def test_the_analytics_export_carries_each_sessions_predictions(day) -> None:
    query = params.export_query(QueryDict(f"start_date={PERIOD.start}&end_date={PERIOD.end}"),
                                allowed=set(exports.ANALYTICS.allowed))  # fmt: skip
    encoder = exports.Encoder(exports.ANALYTICS.columns)
    with time_machine.travel(NOW, tick=False):
        values = exports.fetch_rows(exports.ANALYTICS, query, after=0, limit=100)
    body = (encoder.header() + encoder.csv(values)).decode()
    rows = list(csv.DictReader(StringIO(body)))
    assert len(rows) == 16
    predicted = sorted(int(row["predicted_satisfaction"]) for row in rows if row["predicted_satisfaction"])
    assert predicted == sorted([5, 4, 5, 4, 3, 2, 1, 2, 3, 1, 5, 4, 2, 5])  # R1-R10, T1-T3, P1
    japanese = [row for row in rows if row["language"] == "ja"]
    assert len(japanese) == 1 and japanese[0]["unscored_messages"] == "2" and japanese[0]["analysis_method"] == ""
    follow = [row for row in rows if row["needs_follow_up"] == "true"]
    assert len(follow) == 2

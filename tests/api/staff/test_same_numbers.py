"""Every number of the staff API equals the dashboard's, the weekly report's and the exports' on the
same data: the hand-computed week (tests/analytics/conftest.py) and the human-support week
(tests/analytics/human_fixture.py), unfiltered and filtered."""

from __future__ import annotations

import csv
import json
from io import StringIO
from typing import Any

import pytest
import time_machine
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import AsyncClient, Client

from analytics import metrics
from api.staff.selectors.numbers import OVERVIEW, USAGE
from tests.analytics.conftest import NOW, PERIOD, build_week, move_to_source
from tests.api.staff.conftest import bearer

pytestmark = [pytest.mark.django_db, pytest.mark.backends]

WEEK = {"start_date": str(PERIOD.start), "end_date": str(PERIOD.end)}


def _api(client: Client, path: str, now: Any = NOW, **query: str) -> dict[str, Any]:
    with time_machine.travel(now, tick=False):
        response = client.get(f"/api/v1/{path}", query or WEEK)
    assert response.status_code == 200, response.content
    return response.json()


def _dashboard(client: Client, path: str, now: Any = NOW, **query: str) -> dict[str, Any]:
    with time_machine.travel(now, tick=False):
        response = client.get(f"/admin/chat-analytics/{path}", query or WEEK)
    assert response.status_code == 200, response.content
    return response.json()


def _report(now: Any = NOW, end: str = str(PERIOD.end), *args: str) -> dict[str, Any]:
    out = StringIO()
    with time_machine.travel(now, tick=False):
        call_command("generate_chat_weekly_report", "--format", "json", "--end-date", end, "--no-progress", *args,
                     stdout=out, stderr=StringIO())  # fmt: skip
    return json.loads(out.getvalue())


def _metric_values(body: dict[str, Any]) -> dict[str, Any]:
    return {item["key"]: item["value"] for item in body["metrics"] if not item["live"]}


@pytest.mark.parametrize("query", [{}, {"user_type": "client"}, {"provider": "openai"}, {"source": "api"}])
def test_metrics_equal_the_dashboard_and_the_report_for_every_metric(api: Client, staff: Client, week, query) -> None:
    move_to_source(week.sessions["S2"], "api")
    api_body = _api(api, "metrics/", **WEEK, **query)
    dashboard = _dashboard(staff, "api/summary/", **WEEK, **query)
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in query.items()]
    report = _report(NOW, str(PERIOD.end), *flags)
    values = _metric_values(api_body)
    assert values == dashboard["metrics"] == report["metrics"]
    items = {item["key"]: item for item in api_body["metrics"]}
    for key, change in dashboard["changes"].items():  # the headline changes the dashboard shows
        assert (items[key]["previous_value"], items[key]["change"], items[key]["direction"]) == (
            change["previous"],
            change["pct"],
            change["direction"],
        ), key
    live = {item["key"]: item["value"] for item in api_body["metrics"] if item["live"]}
    assert live == {key: value for key, value in _dashboard(staff, "api/")["live"].items() if key in live}


def test_insights_equal_the_dashboard(api: Client, staff: Client, week) -> None:
    body = _api(api, "insights/")
    dashboard = _dashboard(staff, "api/summary/")["metrics"]
    assert body["overview"] == {field: dashboard[key] for field, key in OVERVIEW.items()}
    tables = _dashboard(staff, "api/tables/")
    assert [(item["message_id"], item["rating"], item["comment"]) for item in body["recent_feedback"]] == [
        (row["message_id"], row["rating"], row["comment"]) for row in tables["last_feedback"]
    ]
    assert [(item["id"], item["message_count"]) for item in body["most_active_conversations"]] == [
        (row["session_id"], row["messages"]) for row in tables["most_active"]
    ]
    daily = _dashboard(staff, "api/daily/")["daily"]
    assert [(day["date"], day["positive"], day["negative"]) for day in body["daily_feedback"]] == [
        (day["date"], day["thumbs_up"], day["thumbs_down"]) for day in daily
    ]


@pytest.mark.parametrize("query", [{}, {"provider": "openai"}, {"source": "widget"}])
def test_usage_equals_the_dashboard_and_the_report(api: Client, staff: Client, week, query) -> None:
    usage = _api(api, "usage/", **WEEK, **query)
    dashboard = _dashboard(staff, "api/summary/", **WEEK, **query)
    report = _report(NOW, str(PERIOD.end), *[f"--{name}={value}" for name, value in query.items()])
    assert {field: usage[field] for field in USAGE} == {
        field: dashboard["metrics"][key] for field, key in USAGE.items()
    }
    assert {field: usage[field] for field in USAGE} == {field: report["metrics"][key] for field, key in USAGE.items()}
    cost = _dashboard(staff, "api/cost/", **WEEK, **query)
    trend = _api(api, "usage/cost-trend/", **WEEK, **query)
    assert (trend["daily"], trend["providers"], trend["models"]) == (cost["daily"], cost["providers"], cost["models"])
    features = _dashboard(staff, "api/features/", **WEEK, **query)
    api_features = _api(api, "usage/features/", **WEEK, **query)
    assert (api_features["ai_features"], api_features["actions"]) == (features["ai_features"], features["actions"])
    days = _api(api, "usage/daily/", **WEEK, **query)["daily"]
    dashboard_days = _dashboard(staff, "api/daily/", **WEEK, **query)["daily"]
    assert [{field: day[field] for field in USAGE} for day in days] == [
        {field: day[key] for field, key in USAGE.items()} for day in dashboard_days
    ]


def test_the_human_support_numbers_equal_the_dashboards(api: Client, staff: Client, human_week) -> None:
    from tests.analytics.human_fixture import EXPECTED_HUMAN
    from tests.analytics.human_fixture import NOW as HUMAN_NOW
    from tests.analytics.human_fixture import PERIOD as HUMAN_PERIOD

    query = {"start_date": str(HUMAN_PERIOD.start), "end_date": str(HUMAN_PERIOD.end)}
    values = _metric_values(_api(api, "metrics/", HUMAN_NOW, **query))
    assert values == _dashboard(staff, "api/summary/", HUMAN_NOW, **query)["metrics"]
    assert values == _report(HUMAN_NOW, str(HUMAN_PERIOD.end))["metrics"]
    for key, value in EXPECTED_HUMAN.items():
        assert values[key] == value, key
    live = {item["key"]: item["value"] for item in _api(api, "metrics/", HUMAN_NOW, **query)["metrics"]}
    assert (live["waiting_now"], live["longest_wait_ms"]) == (2, 300_000)


def test_the_listed_sessions_add_up_to_the_metrics(api: Client, week) -> None:
    """The period's sessions listed (by start day, as the metrics count them) and their analytics and costs."""
    items = _api(api, "sessions/", **WEEK, limit="100")["results"]
    values = _metric_values(_api(api, "metrics/"))
    assert len(items) == values["sessions"]
    assert sum(item["message_count"] for item in items) == values["messages"]
    assert sum(item["analytics"]["feedback_up"] for item in items) == values["thumbs_up"]
    assert sum(item["analytics"]["resolved"] for item in items) == 1  # S1 confirmed
    rated = [item["analytics"]["rating"] for item in items if item["analytics"]["rating"] is not None]
    assert round(100 * sum(score >= metrics.CSAT_MIN_SCORE for score in rated) / len(rated), 2) == values["csat"]
    # The week's sessions made every call of the week: their costs add up to the period's cost.
    assert round(sum(item["analytics"]["cost_usd"] for item in items), 6) == values["cost_usd"]
    assert sum(item["analytics"]["price_unknown_calls"] for item in items) == values["price_unknown_calls"]


# --- exports --------------------------------------------------------------------------------------
async def _read(client: AsyncClient, path: str, query: dict[str, str], **options: Any) -> tuple[Any, bytes]:
    response = await client.get(path, query, **options)
    body = b"".join([chunk async for chunk in response.streaming_content])
    return response, body


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["sessions", "messages", "analytics"])
@pytest.mark.parametrize("extra", [{}, {"format": "jsonl"}, {"user_type": "client"}, {"source": "widget"}])
async def test_the_api_exports_are_the_staff_exports_byte_for_byte(settings, make_key, staff_user, name, extra) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    settings.RESOLUTION_IDLE_MINUTES = 30
    await sync_to_async(build_week)()
    key = await sync_to_async(make_key)("export")
    staff = AsyncClient()
    await staff.aforce_login(staff_user)
    query = {**WEEK, **extra}
    api_response, api_body = await _read(AsyncClient(), f"/api/v1/exports/{name}/", query, **bearer(key))
    staff_response, staff_body = await _read(staff, f"/admin/chat-analytics/export/{name}/", query)
    assert api_response.status_code == staff_response.status_code == 200
    assert api_body == staff_body
    assert api_response["Content-Type"] == staff_response["Content-Type"]
    assert api_response["Content-Disposition"] == staff_response["Content-Disposition"]
    if name == "sessions" and not extra:
        rows = list(csv.DictReader(StringIO(api_body.decode())))
        values = _metric_values(await sync_to_async(_api)(Client(**bearer(await sync_to_async(make_key)("read"))),
                                                          "metrics/"))  # fmt: skip
        assert len(rows) == values["sessions"]
        assert sum(int(row["messages"]) for row in rows) == values["messages"]
        assert {row["source"] for row in rows} == {"widget"}


@pytest.mark.django_db(transaction=True)
async def test_an_export_refuses_a_bad_parameter_with_json_naming_it(make_key) -> None:
    key = await sync_to_async(make_key)("export")
    client = AsyncClient()
    for path, query, parameter in [
        ("sessions", {"sender_type": "user"}, "sender_type"),
        ("messages", {"format": "xlsx"}, "format"),
        ("analytics", {"session_id": "nope"}, "session_id"),
        ("analytics", {"source": "Bad Source"}, "source"),
        ("messages", {"limit": "5"}, "limit"),
        ("analytics", {"start_date": ""}, "start_date"),
    ]:
        response = await client.get(f"/api/v1/exports/{path}/", query, **bearer(key))
        assert response.status_code == 400
        assert response.json() == {**response.json(), "code": "invalid_parameter", "parameter": parameter}


@pytest.mark.parametrize("query", [{}, {"source": "api"}])
def test_insights_prediction_quality_equals_the_dashboard_and_the_report(
    api: Client, staff: Client, week, query
) -> None:
    """The week's checks of the assumed rule (S1: rated resolved, and the rule says resolved → tp;
    no analysis, so no satisfaction or resolution check) read the same through every surface."""
    move_to_source(week.sessions["S1"], "api")
    insights = _api(api, "insights/", **WEEK, **query)["prediction_quality"]
    dashboard = _dashboard(staff, "api/summary/", **WEEK, **query)["prediction_quality"]
    flags = [f"--{name}={value}" for name, value in query.items()]
    report = _report(NOW, str(PERIOD.end), *flags)["prediction_quality"]
    assert insights == dashboard == report
    rule = {row["predictor"]: row for row in insights}["assumed_rule"]
    assert (rule["tp"], rule["fp"], rule["fn"], rule["tn"], rule["n"]) == (1, 0, 0, 0, 1)
    assert (rule["accuracy"], rule["precision"], rule["recall"], rule["f1"]) == (100.0, 100.0, 100.0, 100.0)
    assert {row["predictor"]: row["n"] for row in insights} == {"satisfaction": 0, "resolution": 0, "assumed_rule": 1}

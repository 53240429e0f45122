"""/metrics/, /insights/ and /usage/… on the hand-computed week (tests/analytics/conftest.py:
Europe/Paris, 2026-03-02 to 2026-03-08, "now" 2026-03-10 12:00 UTC). Expected values are worked out
by hand from that fixture's docstring; filters, and bad parameters."""

from __future__ import annotations

from typing import Any

import pytest
import time_machine
from django.test import Client

from analytics import metrics
from assistant.models import ChatSession
from tests.analytics.conftest import EXPECTED, EXPECTED_PREVIOUS, NOW, move_to_source

pytestmark = [pytest.mark.django_db, pytest.mark.backends]

WEEK = {"start_date": "2026-03-02", "end_date": "2026-03-08"}


def _get(client: Client, path: str, **query: Any) -> dict[str, Any]:
    with time_machine.travel(NOW, tick=False):
        response = client.get(f"/api/v1/{path}", {**WEEK, **query})
    assert response.status_code == 200, response.content
    return response.json()


# --- /metrics/ ------------------------------------------------------------------------------------
def test_metrics_list_every_registry_metric_once_with_its_definition(api: Client, week) -> None:
    items = _get(api, "metrics/")["metrics"]
    assert [item["key"] for item in items] == list(metrics.METRICS)
    for item in items:
        metric = metrics.METRICS[item["key"]]
        assert (item["label"], item["unit"], item["definition"]) == (metric.label, metric.unit, metric.definition)
        assert item["live"] == (metric.formula is None)
    keys = {item["key"] for item in items}
    for key in ("csat", "resolution_rate", "fcr_rate", "avg_agent_response_ms", "avg_sentiment", "cost_usd"):
        assert key in keys


def test_metrics_values_previous_values_and_changes_are_the_hand_computed_ones(api: Client, week) -> None:
    body = _get(api, "metrics/")
    assert body["period"] == {"start": "2026-03-02", "end": "2026-03-08", "days": 7}
    assert body["previous_period"] == {"start": "2026-02-23", "end": "2026-03-01", "days": 7}
    items = {item["key"]: item for item in body["metrics"]}
    for key, value in EXPECTED.items():
        assert items[key]["value"] == value, key
    for key, value in EXPECTED_PREVIOUS.items():
        assert items[key]["previous_value"] == value, key
    assert (items["sessions"]["change"], items["sessions"]["direction"]) == (200.0, "up")  # 3 vs 1
    assert (items["resolution_rate"]["change"], items["resolution_rate"]["direction"]) == (-66.7, "down")
    assert (items["csat"]["previous_value"], items["csat"]["change"], items["csat"]["direction"]) == (None, None, None)
    # The live ones: now, whatever the period.
    assert items["live_sessions"] == {**items["live_sessions"], "value": 0, "previous_value": None, "change": None}
    # The three new registry metrics the API reads, by hand: S1 and S2 of 3 sessions had feedback;
    # 2 replies rated; 6 calls of which 3 failed; every call took 1000 ms.
    assert items["feedback_session_rate"]["value"] == 66.67
    assert items["rated_replies"]["value"] == 2
    assert (items["provider_calls"]["value"], items["failed_provider_calls"]["value"]) == (6, 3)
    assert items["avg_provider_latency_ms"]["value"] == 1000.0


def test_metrics_filters_narrow_them(api: Client, week) -> None:
    move_to_source(week.sessions["S2"], "api")

    def sessions(**query: str) -> int:
        values = {item["key"]: item["value"] for item in _get(api, "metrics/", **query)["metrics"]}
        return values["sessions"]

    assert sessions(user_type="client") == 1  # S2
    assert sessions(provider="openai") == 2  # S1, S2 (S3's replies failed: no main provider)
    assert sessions(source="api") == 1
    assert sessions(source="widget") == 2
    assert sessions(source="import:csv") == 0
    body = _get(api, "metrics/", source="api", user_type="client")
    assert body["filters"] == {"user_type": "client", "provider": None, "source": "api", "external_user_id": None}


# --- /insights/ -----------------------------------------------------------------------------------
def test_insights_by_hand(api: Client, week) -> None:
    body = _get(api, "insights/")
    assert body["overview"] == {
        "total_ai_messages": 4,
        "feedback_rate": 50.0,  # 2 rated of 4 replies
        "satisfaction_rate": 50.0,  # 1 up of 2
        "engagement_rate": 66.67,  # S1 and S2 had feedback, of 3 conversations
        "avg_messages_per_conversation": 2.67,
        "total_conversations": 3,
        "ai_messages_with_feedback": 2,
    }
    # Started in the last 24 hours before 03-10 12:00: none; the 24 before: S4 (03-08 23:30 UTC), 1 reply.
    assert body["trend_24h"] == {
        "metric": "assistant_messages", "start": "2026-03-09T12:00:00Z", "end": "2026-03-10T12:00:00Z",
        "current": 0, "previous": 1, "change_percent": -100.0, "direction": "down",
    }  # fmt: skip
    daily = {day["date"]: (day["positive"], day["negative"]) for day in body["daily_feedback"]}
    assert list(daily) == [f"2026-03-0{n}" for n in range(2, 9)]
    assert daily == {**dict.fromkeys(daily, (0, 0)), "2026-03-02": (1, 0), "2026-03-04": (0, 1)}
    s1, s2, s3 = (str(week.sessions[name].public_id) for name in ("S1", "S2", "S3"))
    assert [(item["conversation_id"], item["rating"], item["comment"]) for item in body["recent_feedback"]] == [
        (s2, "down", "not helpful"), (s1, "up", ""),
    ]  # fmt: skip
    assert [(item["id"], item["message_count"]) for item in body["most_active_conversations"]] == [
        (s2, 4), (s3, 2), (s1, 2),
    ]  # fmt: skip


def test_insights_take_days(api: Client, week) -> None:
    with time_machine.travel(NOW, tick=False):
        body = api.get("/api/v1/insights/", {"days": "30"}).json()
    assert body["period"] == {"start": "2026-02-09", "end": "2026-03-10", "days": 30}
    assert body["overview"]["total_conversations"] == 5  # every session of the fixture


# --- /usage/ --------------------------------------------------------------------------------------
def test_usage_by_hand(api: Client, week) -> None:
    body = _get(api, "usage/")
    numbers = {key: value for key, value in body.items() if key not in {"period", "filters", "feature_breakdown"}}
    assert numbers == {
        "total_requests": 6,  # S1 1, S2 3, S3 2 calls in the period (S4's is on 03-09 in Paris)
        "cached_requests": 0,
        "failed_requests": 3,  # anthropic in S2, both in S3
        "cache_hit_rate": 0.0,
        "success_rate": 50.0,
        "total_cost": 0.0041,
        "avg_execution_time": 1000.0,
        "total_tokens": 5650,
        "price_unknown_calls": 1,
    }
    assert body["feature_breakdown"] == [
        {"feature": "chat_reply", "count": 6, "percentage": 100.0, "total_cost": 0.0041, "avg_execution_time": 1000.0,
         "price_unknown_calls": 1},
    ]  # fmt: skip


def test_the_feature_breakdown_shares_calls_between_features(api: Client, week) -> None:
    from datetime import UTC, datetime

    from analytics import services
    from assistant.models import ProviderCall

    ProviderCall.objects.create(
        session=week.sessions["S1"], feature="title", provider="openai", model="gpt-4.1-mini", attempt=1,
        started_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC), latency_ms=200, input_tokens=100, output_tokens=10,
        outcome="ok",
    )  # fmt: skip
    with time_machine.travel(NOW, tick=False):
        services.rollups_rebuild()
    # 6 chat replies' calls and 1 title call: 6/7 and 1/7; the title's 100 x 0.40 + 10 x 1.60 per million.
    assert _get(api, "usage/")["feature_breakdown"] == [
        {"feature": "chat_reply", "count": 6, "percentage": 85.71, "total_cost": 0.0041, "avg_execution_time": 1000.0,
         "price_unknown_calls": 1},
        {"feature": "title", "count": 1, "percentage": 14.29, "total_cost": 0.000056, "avg_execution_time": 200.0,
         "price_unknown_calls": 0},
    ]  # fmt: skip
    assert _get(api, "usage/")["total_requests"] == 7


def test_usage_of_one_identified_visitor(api: Client, week) -> None:
    ChatSession.objects.filter(pk=week.sessions["S2"].pk).update(external_user_id="crm-42")
    body = _get(api, "usage/", user_id="crm-42")
    assert body["filters"]["external_user_id"] == "crm-42"
    # S2: openai (2000 + 100 tokens), anthropic failed, openai (1000 + 1000): 960 + 2000 per million.
    assert (body["total_requests"], body["failed_requests"], body["total_tokens"], body["total_cost"]) == (
        3, 1, 4100, 0.00296,
    )  # fmt: skip
    assert _get(api, "usage/", user_id="nobody")["total_requests"] == 0


def test_usage_daily_adds_up_to_the_period(api: Client, week) -> None:
    total = _get(api, "usage/")
    days = _get(api, "usage/daily/")["daily"]
    assert len(days) == 7
    for field in ("total_requests", "failed_requests", "total_tokens", "price_unknown_calls"):
        assert sum(day[field] for day in days) == total[field], field
    assert round(sum(day["total_cost"] for day in days), 6) == total["total_cost"]


def test_usage_cost_trend_and_features(api: Client, week) -> None:
    trend = _get(api, "usage/cost-trend/")
    assert round(sum(day["cost_usd"] for day in trend["daily"]), 6) == 0.0041
    assert {row["provider"] for row in trend["providers"]} == {"openai", "anthropic", "gemini"}
    features = _get(api, "usage/features/")
    assert features["ai_features"][0]["calls"] == 6
    assert features["feature_breakdown"][0]["feature"] == "chat_reply"


# --- bad parameters -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "query", "parameter"),
    [
        ("metrics/", {"days": "0"}, "days"),
        ("metrics/", {"days": "367"}, "days"),
        ("metrics/", {"days": "seven"}, "days"),
        ("metrics/", {"days": "7", "start_date": "2026-03-01"}, "days"),
        ("metrics/", {"start_date": "2026-02-30"}, "start_date"),
        ("metrics/", {"start_date": "2024-01-01", "end_date": "2026-01-01"}, "start_date"),
        ("metrics/", {"user_type": "bot"}, "user_type"),
        ("metrics/", {"provider": "x"}, "provider"),
        ("metrics/", {"source": "UPPER"}, "source"),
        ("metrics/", {"range": "7d"}, "range"),  # the dashboard's, not the API's
        ("insights/", {"user_type": "client"}, "user_type"),
        ("insights/", {"foo": "1"}, "foo"),
        ("usage/", {"user_id": "x" * 256}, "user_id"),
        ("usage/", {"user_id": "a\x01b"}, "user_id"),
        ("usage/daily/", {"end_date": "3000-01-01"}, "end_date"),
        ("usage/cost-trend/", {"user_type": "client"}, "user_type"),
        ("usage/features/", {"days": "1.5"}, "days"),
        ("metrics/", {"start_date": ""}, "start_date"),
    ],
)
def test_a_bad_parameter_gets_a_400_naming_it(api: Client, path: str, query: dict[str, str], parameter: str) -> None:
    response = api.get(f"/api/v1/{path}", query)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameter"
    assert response.json()["parameter"] == parameter

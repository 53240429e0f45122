"""The staff pages and JSON API: who may see them, how bad queries are refused, what they answer."""

from __future__ import annotations

import json

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client

from analytics import selectors
from tests.analytics.conftest import EXPECTED, NOW, PERIOD

API = [
    "/admin/chat-analytics/api/",
    "/admin/chat-analytics/api/summary/",
    "/admin/chat-analytics/api/daily/",
    "/admin/chat-analytics/api/cost/",
    "/admin/chat-analytics/api/features/",
    "/admin/chat-analytics/api/tables/",
    "/admin/chat-analytics/api/definitions/",
]
WEEK = f"start_date={PERIOD.start}&end_date={PERIOD.end}"


@pytest.fixture
def staff(db) -> Client:
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def visitor(db) -> Client:
    user = get_user_model().objects.create_user("someone", password="pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("url", API)
def test_api_is_staff_only(url: str, staff: Client, visitor: Client) -> None:
    anonymous = Client().get(url)
    assert anonymous.status_code == 401 and "staff" in anonymous.json()["error"]
    assert visitor.get(url).status_code == 403
    assert staff.get(url).status_code == 200


@pytest.mark.django_db
def test_pages_send_anonymous_users_to_login_and_refuse_non_staff(staff: Client, visitor: Client) -> None:
    url = "/admin/chat-analytics/"
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"] == "/admin/login/?next=/admin/chat-analytics/"
    assert visitor.get(url).status_code == 403
    transcript = "/admin/chat-analytics/sessions/5b0d5f3c-9f0e-4b8e-9a57-3f2b1c0d9e8a/"
    assert Client().get(transcript).status_code == 302
    assert visitor.get(transcript).status_code == 403
    assert staff.get(transcript).status_code == 404  # staff, but no such session


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "parameter", "words"),
    [
        ("start_date=2026-13-01", "start_date", "a date like"),
        ("end_date=yesterday", "end_date", "a date like"),
        ("start_date=2026-03-09&end_date=2026-03-02", "start_date", "after"),
        ("start_date=2024-01-01&end_date=2026-01-01", "start_date", "the most is 366"),
        ("range=2w", "range", "one of 24h, 7d, 30d, 90d"),
        ("range=7d&start_date=2026-03-01", "range", "not both"),
        ("user_type=robot", "user_type", "one of anonymous, client, provider"),
        ("provider=mistral", "provider", "one of openai"),
        ("end_dat=2026-03-01", "end_dat", "Unknown parameter"),
        ("range=7d&range=30d", "range", "given 2 times"),
    ],
)
def test_bad_query_is_a_400_naming_the_parameter(staff: Client, query: str, parameter: str, words: str) -> None:
    for url in API[:6]:
        response = staff.get(f"{url}?{query}")
        assert response.status_code == 400, url
        body = response.json()
        assert body["parameter"] == parameter and words in body["error"], (url, body)


@pytest.mark.django_db
def test_summary_api_prints_the_selectors_and_the_reports_numbers(week, staff: Client) -> None:
    with time_machine.travel(NOW, tick=False):
        body = staff.get(f"/admin/chat-analytics/api/summary/?{WEEK}").json()
    assert body["metrics"] == selectors.summary(PERIOD)["metrics"]
    for key, value in EXPECTED.items():
        assert body["metrics"][key] == value, key
    assert body["changes"]["sessions"] == {"previous": 1, "pct": 200.0, "direction": "up"}
    assert body["top_topics"][0] == {"topic": "Billing › Refunds", "sessions": 1}
    assert body["query"]["period"] == {"start": "2026-03-02", "end": "2026-03-08", "days": 7}


@pytest.mark.django_db
def test_snapshot_has_the_live_count_and_the_headline_numbers(week, staff: Client) -> None:
    with time_machine.travel(NOW, tick=False):
        body = staff.get(f"/admin/chat-analytics/api/?{WEEK}").json()
    assert body["active_sessions"] == 0  # every fixture session is days old
    assert body["avg_response_time"] == 2000.0 and body["avg_satisfaction"] == 3.5
    assert body["satisfaction_rate"] == 50.0 and body["timestamp"].startswith("2026-03-10T12:00:00")


@pytest.mark.django_db
def test_daily_cost_features_and_tables_of_the_week(week, staff: Client) -> None:
    with time_machine.travel(NOW, tick=False):
        daily = staff.get(f"/admin/chat-analytics/api/daily/?{WEEK}").json()["daily"]
        cost = staff.get(f"/admin/chat-analytics/api/cost/?{WEEK}").json()
        features = staff.get(f"/admin/chat-analytics/api/features/?{WEEK}").json()
        tables = staff.get(f"/admin/chat-analytics/api/tables/?{WEEK}").json()
    assert [day["sessions"] for day in daily] == [1, 0, 1, 0, 1, 0, 0]
    assert sum(day["cost_usd"] for day in cost["daily"]) == pytest.approx(0.0041)
    assert {m["model"]: m["price_unknown"] for m in cost["models"]}["llama3.1:8b"] is True
    assert features["ai_features"] == [
        {"feature": "chat_reply", "calls": 6, "input_tokens": 4050, "output_tokens": 1600, "cost_usd": 0.0041,
         "price_unknown_calls": 1},
    ]  # fmt: skip
    assert [row["session_id"] for row in tables["recent_sessions"]] == [
        str(week.sessions[name].public_id) for name in ("S3", "S2", "S1")
    ]
    assert tables["most_active"][0]["session_id"] == str(week.sessions["S2"].public_id)
    assert {row["session_id"] for row in tables["attention"]} == {
        str(week.sessions["S2"].public_id),
        str(week.sessions["S3"].public_id),
    }
    assert [item["comment"] for item in tables["last_feedback"]] == ["not helpful", ""]


@pytest.mark.django_db
def test_transcript_api_shows_messages_calls_feedback_and_analytics(week, staff: Client) -> None:
    session = week.sessions["S2"]
    body = staff.get(f"/admin/chat-analytics/api/sessions/{session.public_id}/").json()
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant"]
    last = body["messages"][-1]
    assert last["feedback"] == {"rating": "down", "reason": "", "comment": "not helpful"}
    assert [(c["provider"], c["outcome"]) for c in last["calls"]] == [("anthropic", "error"), ("openai", "ok")]
    assert body["analytics"]["resolution"] == "unresolved" and body["rating"]["score"] == 2
    assert json.dumps(body)  # JSON-ready all the way down

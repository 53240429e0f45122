"""The `source` filter (where sessions came from: widget, api, import:<format>) and the one-visitor
filter (`external_user_id`) across analytics: selectors, the dashboard's API, the weekly report and
the exports. On the hand-computed week (tests/analytics/conftest.py) with S2 (client; 4 messages;
calls openai 2000+100 tokens, anthropic error, openai 1000+1000 tokens) moved to source `api`."""

from __future__ import annotations

import csv
import json
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import AsyncClient, Client

from analytics import selectors
from analytics.selectors import Filters, Period
from tests.analytics.conftest import NOW, PERIOD, move_to_source

pytestmark = pytest.mark.backends

WEEK = f"start_date={PERIOD.start}&end_date={PERIOD.end}"
ADDITIVE = ["sessions", "messages", "user_messages", "assistant_messages", "thumbs_up", "thumbs_down", "tokens",
            "provider_calls", "failed_provider_calls", "price_unknown_calls"]  # fmt: skip


@pytest.fixture
def split(week):
    move_to_source(week.sessions["S2"], "api", external_user_id="crm-2")
    return week


def _metrics(filters: Filters, period: Period = PERIOD) -> dict:
    with time_machine.travel(NOW, tick=False):
        return selectors.summary(period, filters)["metrics"]


@pytest.mark.django_db
def test_the_source_filter_narrows_sessions_and_their_calls(split) -> None:
    api = _metrics(Filters(source="api"))
    # S2 alone, by hand: 1 session, 4 messages, 3 calls (1 failed), 4100 tokens, 960 + 2000 per million.
    assert (api["sessions"], api["messages"], api["provider_calls"], api["failed_provider_calls"]) == (1, 4, 3, 1)
    assert (api["tokens"], api["cost_usd"], api["thumbs_down"], api["escalation_rate"]) == (4100, 0.00296, 1, 100.0)
    widget, everything = _metrics(Filters(source="widget")), _metrics(Filters())
    assert widget["sessions"] == 2
    for key in ADDITIVE:  # the two sources add up to the whole
        assert api[key] + widget[key] == everything[key], key
    assert _metrics(Filters(source="import:csv"))["sessions"] == 0
    assert _metrics(Filters(source="api", user_type="anonymous"))["sessions"] == 0


@pytest.mark.django_db
def test_the_rollups_are_kept_per_source(split) -> None:
    from analytics.models import DailyProviderRollup, DailySessionRollup

    api_day = DailySessionRollup.objects.get(source="api")
    assert (str(api_day.day), api_day.user_type, api_day.sessions, api_day.total_messages) == ("2026-03-04", "client",
                                                                                               1, 4)  # fmt: skip
    calls = DailyProviderRollup.objects.filter(source="api")
    assert sum(row.calls for row in calls) == 3
    assert set(DailySessionRollup.objects.values_list("source", flat=True)) == {"api", "widget"}


@pytest.mark.django_db
def test_the_visitor_filter_narrows_to_one_identified_visitor(split) -> None:
    assert _metrics(Filters(external_user_id="crm-2")) == _metrics(Filters(source="api"))
    assert _metrics(Filters(external_user_id="someone-else"))["sessions"] == 0


@pytest.mark.django_db
def test_a_window_period_takes_the_source_filter_too(split) -> None:
    window = Period.between(*[moment for moment in (NOW.replace(day=4, hour=0), NOW.replace(day=5, hour=0))])
    assert _metrics(Filters(source="api"), window)["sessions"] == 1
    assert _metrics(Filters(source="widget"), window)["sessions"] == 0


@pytest.mark.django_db
def test_breakdowns_tables_and_daily_series_take_it(split) -> None:
    with time_machine.travel(NOW, tick=False):
        tables = selectors.tables(PERIOD, Filters(source="api"))
        daily = selectors.daily_series(PERIOD, Filters(source="api"))
        breakdowns = selectors.breakdowns(PERIOD, Filters(source="api"))
    assert [row["session_id"] for row in tables["recent_sessions"]] == [str(split.sessions["S2"].public_id)]
    assert [row["rating"] for row in tables["last_feedback"]] == ["down"]
    assert sum(day["sessions"] for day in daily) == 1
    assert {row["provider"] for row in breakdowns["providers"]} == {"openai", "anthropic"}


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("staff", password="pw", is_staff=True))
    return client


@pytest.mark.django_db
def test_the_dashboard_api_takes_source_and_refuses_a_bad_one(split, staff: Client) -> None:
    with time_machine.travel(NOW, tick=False):
        body = staff.get(f"/admin/chat-analytics/api/summary/?{WEEK}&source=api").json()
        bad = staff.get(f"/admin/chat-analytics/api/summary/?{WEEK}&source=Not%20One")
    assert body["metrics"]["sessions"] == 1
    assert body["filters"]["source"] == "api"
    assert bad.status_code == 400
    assert bad.json()["parameter"] == "source"


@pytest.mark.django_db
def test_the_weekly_report_takes_source(split) -> None:
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("generate_chat_weekly_report", "--format", "json", "--end-date", str(PERIOD.end),
                     "--no-progress", "--source", "api", stdout=out, stderr=StringIO())  # fmt: skip
        text = StringIO()
        call_command("generate_chat_weekly_report", "--end-date", str(PERIOD.end), "--no-progress", "--source", "api",
                     stdout=text, stderr=StringIO())  # fmt: skip
    data = json.loads(out.getvalue())
    assert data["metrics"]["sessions"] == 1
    assert data["filters"]["source"] == "api"
    assert "Filters: source api" in text.getvalue()
    with pytest.raises(CommandError, match="--source"):
        call_command("generate_chat_weekly_report", "--source", "NOT A SOURCE", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
async def test_the_exports_take_source_and_the_sessions_export_shows_it(settings) -> None:
    from asgiref.sync import sync_to_async

    from tests.analytics.conftest import build_week

    settings.TIME_ZONE = "Europe/Paris"
    settings.RESOLUTION_IDLE_MINUTES = 30
    week = await sync_to_async(build_week)()
    await sync_to_async(move_to_source)(week.sessions["S2"], "api")
    user = await get_user_model().objects.acreate_user("staff", password="pw", is_staff=True)
    client = AsyncClient()
    await client.aforce_login(user)

    async def rows(name: str, source: str) -> list[dict[str, str]]:
        response = await client.get(f"/admin/chat-analytics/export/{name}/?{WEEK}&source={source}")
        assert response.status_code == 200
        body = b"".join([chunk async for chunk in response.streaming_content]).decode()
        return list(csv.DictReader(StringIO(body)))

    sessions = await rows("sessions", "api")
    assert [(row["session_id"], row["source"]) for row in sessions] == [(str(week.sessions["S2"].public_id), "api")]
    assert len(await rows("messages", "api")) == 4
    assert len(await rows("analytics", "widget")) == 2
    bad = await client.get(f"/admin/chat-analytics/export/sessions/?source={'x' * 40}")
    assert bad.status_code == 400 and bad.json()["parameter"] == "source"


@pytest.mark.django_db
def test_the_sources_breakdown_puts_each_source_beside_the_others(split) -> None:
    """Each column equals the dashboard filtered to that source, the largest source first."""
    with time_machine.travel(NOW, tick=False):
        rows = selectors.breakdowns(PERIOD)["sources"]
    assert [row["source"] for row in rows] == ["widget", "api"]  # 2 sessions, then 1
    for row in rows:
        filtered = _metrics(Filters(source=row["source"]))
        assert row["metrics"] == {key: filtered[key] for key in row["metrics"]}, row["source"]
    api = rows[1]
    assert (api["metrics"]["sessions"], api["metrics"]["messages"]) == (1, 4)
    with time_machine.travel(NOW, tick=False):
        only_api = selectors.breakdowns(PERIOD, Filters(source="api"))["sources"]
        window = Period.between(NOW.replace(day=4, hour=0), NOW.replace(day=5, hour=0))
        in_window = selectors.breakdowns(window)["sources"]
    assert [row["source"] for row in only_api] == ["api"]
    assert [row["source"] for row in in_window] == ["api"]  # the window path counts sessions itself
    assert in_window[0]["metrics"]["sessions"] == 1


@pytest.mark.django_db
def test_the_dashboard_json_carries_the_sources_breakdown(split, admin_client) -> None:
    with time_machine.travel(NOW, tick=False):
        data = admin_client.get(f"/admin/chat-analytics/api/summary/?{WEEK}").json()
    assert [row["source"] for row in data["sources"]] == ["widget", "api"]
    assert data["sources"][1]["metrics"]["sessions"] == 1

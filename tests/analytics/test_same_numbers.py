"""Every surface prints the same numbers: selectors, the weekly report and the dashboard's API,
on the hand-computed week of tests/analytics/conftest.py; and every surface lists the metrics of
the registry (`analytics.metrics.METRICS`), so a metric added there alone reaches all of them.

The dashboard's own rendering of the cards (order and labels from the definitions it is given)
is checked in a browser by tests/static/test_dashboard_browser.py."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from analytics import metrics, reports, selectors, services
from analytics.metrics import Metric, Totals
from analytics.models import DailyProviderRollup, DailySessionRollup
from tests.analytics.conftest import EXPECTED, NOW, PERIOD

pytestmark = pytest.mark.backends


WEEK = f"start_date={PERIOD.start}&end_date={PERIOD.end}"


def _report(fmt: str, *args: str) -> str:
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("generate_chat_weekly_report", "--format", fmt, "--end-date", PERIOD.end.isoformat(),
                     "--no-progress", *args, stdout=out, stderr=StringIO())  # fmt: skip
    return out.getvalue()


def _report_json(*args: str) -> dict:
    return json.loads(_report("json", *args))


def _text_section(text: str, title: str) -> dict[str, list[str]]:
    """The rows of one metric section of the text report, by label: [value, previous, change]."""
    lines = text.splitlines()
    start = lines.index(title.upper()) + 3  # the heading, the column titles, the rule
    rows = {}
    for line in lines[start:]:
        if not line.strip():
            break
        name, *cells = re.split(r"\s{2,}", line.strip())
        rows[name] = cells
    return rows


@pytest.fixture
def staff(db) -> Client:
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


def _get(client: Client, path: str) -> dict:
    with time_machine.travel(NOW, tick=False):
        return client.get(f"/admin/chat-analytics/{path}?{WEEK}").json()


def _page_definitions(client: Client) -> dict:
    """The definitions the dashboard page hands its script (json_script), as the script reads them."""
    with time_machine.travel(NOW, tick=False):
        html = client.get("/admin/chat-analytics/").content.decode()
    found = re.search(r'<script id="ca-definitions" type="application/json">(.*?)</script>', html, re.S)
    assert found, "the dashboard page carries no definitions"
    return json.loads(found.group(1))


@pytest.mark.django_db
def test_report_json_equals_the_selectors_for_every_metric_and_breakdown(week) -> None:
    report = _report_json()
    summary = selectors.summary(PERIOD)
    assert report["metrics"] == summary["metrics"]
    assert report["changes"] == summary["changes"]
    breakdowns = selectors.breakdowns(PERIOD)
    for key in ["top_topics", "common_issues", "user_types", "peak_hours", "providers", "models",
                "prediction_quality", "sentiment", "languages"]:  # fmt: skip
        assert report[key] == breakdowns[key], key
    for key, value in EXPECTED.items():
        assert report["metrics"][key] == value, key


@pytest.mark.django_db
def test_filtered_report_equals_the_filtered_selectors(week) -> None:
    report = _report_json("--user-type", "client")
    assert report["metrics"] == selectors.summary(PERIOD, selectors.Filters(user_type="client"))["metrics"]
    assert report["metrics"]["sessions"] == 1


@pytest.mark.django_db
def test_incremental_refresh_gives_the_rollups_a_full_rebuild_gives(week) -> None:
    def snapshot() -> tuple[list, list]:
        skip = {"id", "computed_at"}
        sessions = sorted(
            (tuple((k, str(v)) for k, v in sorted(row.items()) if k not in skip))
            for row in DailySessionRollup.objects.values()
        )
        calls = sorted(
            (tuple((k, str(v)) for k, v in sorted(row.items()) if k not in skip))
            for row in DailyProviderRollup.objects.values()
        )
        return sessions, calls

    rebuilt = snapshot()
    DailySessionRollup.objects.all().delete()
    DailyProviderRollup.objects.all().delete()
    services.RollupState.objects.all().delete()  # a fresh install: the refresh must find every day
    with time_machine.travel(NOW, tick=False):
        services.rollups_refresh()
    assert snapshot() == rebuilt


# --- The registry reaches every surface ---------------------------------------------------------
@pytest.mark.django_db
def test_api_report_and_dashboard_print_the_same_number_for_every_metric(week, staff: Client) -> None:
    report = _report_json()
    api = _get(staff, "api/summary/")
    snapshot = _get(staff, "api/")
    assert api["metrics"] == report["metrics"] == snapshot["metrics"]
    assert api["changes"] == report["changes"] == snapshot["changes"]
    daily = _get(staff, "api/daily/")["daily"]
    assert daily == report["daily"]
    text = _report("text")
    for title, keys in metrics.report_sections():
        rows = _text_section(text, title)
        assert list(rows) == [metrics.METRICS[key].label for key in keys], title
        for key in keys:
            value = rows[metrics.METRICS[key].label][0]
            assert value.startswith(reports.format_value(key, api["metrics"][key])), key


@pytest.mark.django_db
def test_every_registry_metric_is_in_the_report_the_api_and_the_dashboard_definitions(week, staff: Client) -> None:
    registry = set(metrics.METRICS)
    computed = {key for key, metric in metrics.METRICS.items() if metric.formula is not None}
    report = _report_json()
    assert set(report["metrics"]) == computed
    assert set(report["definitions"]) == registry
    assert set(report["changes"]) == set(metrics.headline())
    definitions = _get(staff, "api/definitions/")["metrics"]
    assert definitions == _page_definitions(staff) == metrics.definitions()
    assert set(definitions) == registry
    for key, metric in metrics.METRICS.items():
        shown = definitions[key]
        assert (shown["label"], shown["unit"], shown["definition"]) == (metric.label, metric.unit, metric.definition)
        assert (shown["section"], shown["card"]) == (metric.section, metric.card)
    # Every card has its number in the snapshot the dashboard reads (the live ones under `live`).
    snapshot = _get(staff, "api/")
    for key in metrics.cards():
        assert key in snapshot["metrics"] or (key in metrics.LIVE and snapshot["live"][key] == 0), key
    # Every metric of a report section is printed in that section.
    text = _report("text")
    for title, keys in metrics.report_sections():
        assert list(_text_section(text, title)) == [metrics.METRICS[key].label for key in keys], title


#: Visitor messages per session, hand-computed on the fixture: 4 / 3 this week (1.33), 1 / 1 the
#: week before (S0), so +33.3 %.
EXTRA = Metric(
    "zz_user_messages_per_session",
    "Visitor messages per session",
    "ratio",
    "Visitor messages divided by sessions.",
    True,
    True,
    formula=lambda t: metrics.ratio(t.user_messages, t.sessions),
    section="Messages",
    card=0,
)


@pytest.fixture
def extra_metric(monkeypatch: pytest.MonkeyPatch) -> Metric:
    """`EXTRA`, added to the registry and nowhere else."""
    monkeypatch.setitem(metrics.METRICS, EXTRA.key, EXTRA)
    return EXTRA


@pytest.mark.django_db
def test_a_metric_added_to_the_registry_alone_reaches_every_surface(week, staff: Client, extra_metric) -> None:
    key = extra_metric.key
    assert metrics.summarize(Totals(sessions=3, user_messages=4))[key] == pytest.approx(4 / 3)
    # The API, the dashboard's snapshot and the report's JSON: the value and its change.
    for data in (_get(staff, "api/summary/"), _get(staff, "api/"), _report_json()):
        assert data["metrics"][key] == 1.33
        assert data["changes"][key] == {"previous": 1.0, "pct": 33.3, "direction": "up"}
    assert [day[key] for day in _get(staff, "api/daily/")["daily"]] == [1.0, None, 2.0, None, 1.0, None, None]
    # The dashboard: its definition, and the first card (card 0).
    definitions = _get(staff, "api/definitions/")["metrics"]
    assert definitions[key]["card"] == 0 and definitions[key]["label"] == "Visitor messages per session"
    assert _page_definitions(staff)[key] == definitions[key]
    assert metrics.cards()[0] == key
    # The report: a row of its section with its change, and its definition, in every format.
    text = _report("text")
    assert _text_section(text, "Messages")["Visitor messages per session"] == ["1.33", "1", "▲ +33.3%"]
    assert "  Visitor messages per session: Visitor messages divided by sessions." in text
    markdown = _report("markdown")
    assert f"| Visitor messages per session[^{key}] | 1.33 | 1 | ▲ +33.3% |" in markdown
    assert f"[^{key}]: **Visitor messages per session**: Visitor messages divided by sessions." in markdown
    html = _report("html")
    messages = html[html.index(">Messages</h2>") : html.index(">Performance</h2>")]
    assert "Visitor messages per session</span>" in messages and "<strong>1.33</strong>" in messages


# --- Human support: the same numbers on every surface ------------------------------------------
@pytest.mark.django_db
def test_human_support_numbers_and_agents_are_the_same_on_every_surface(human_week, staff: Client) -> None:
    """The hand-computed human-support week (tests/analytics/human_fixture.py): selectors, API,
    dashboard snapshot, weekly report (JSON and text) and the dashboard's agents table agree."""
    from tests.analytics.human_fixture import EXPECTED_AGENTS, EXPECTED_HUMAN, EXPECTED_LIVE
    from tests.analytics.human_fixture import NOW as HUMAN_NOW
    from tests.analytics.human_fixture import PERIOD as HUMAN_PERIOD

    query = f"start_date={HUMAN_PERIOD.start}&end_date={HUMAN_PERIOD.end}"
    with time_machine.travel(HUMAN_NOW, tick=False):
        api = staff.get(f"/admin/chat-analytics/api/summary/?{query}").json()
        snapshot = staff.get(f"/admin/chat-analytics/api/?{query}").json()
        tables = staff.get(f"/admin/chat-analytics/api/tables/?{query}").json()
        out = StringIO()
        for fmt in ("json", "text"):
            call_command("generate_chat_weekly_report", "--format", fmt, "--end-date", HUMAN_PERIOD.end.isoformat(),
                         "--no-progress", stdout=out, stderr=StringIO())  # fmt: skip
            if fmt == "json":
                report = json.loads(out.getvalue())
                out = StringIO()
        text = out.getvalue()
    summary = selectors.summary(HUMAN_PERIOD)["metrics"]
    assert api["metrics"] == snapshot["metrics"] == report["metrics"] == summary
    for key, value in EXPECTED_HUMAN.items():
        assert summary[key] == value, key
    agents = [{key: value for key, value in row.items() if key != "agent_id"} for row in report["agents"]]
    assert agents == EXPECTED_AGENTS
    assert tables["agents"] == report["agents"] == selectors.agent_table(HUMAN_PERIOD)
    assert {key: snapshot["live"][key] for key in EXPECTED_LIVE} == EXPECTED_LIVE
    rows = _text_section(text, "Human support")
    keys = dict(metrics.report_sections())["Human support"]
    assert list(rows) == [metrics.METRICS[key].label for key in keys]
    for key in keys:
        assert rows[metrics.METRICS[key].label][0] == reports.format_value(key, summary[key]), key


# --- Conversation intelligence: the same numbers on every surface -------------------------------
@pytest.mark.django_db
def test_intelligence_numbers_are_the_same_on_the_dashboard_api_exports_and_report(staff: Client, settings) -> None:
    """The hand-computed day of tests/analytics/intelligence_fixture.py: the new metrics and the
    confusion matrices agree on the dashboard's API, its snapshot, the weekly report (JSON, and the
    text report's rows of the two new sections) and the staff API."""
    from tests.analytics.intelligence_fixture import DAY, EXPECTED, EXPECTED_QUALITY, build_intelligence_day
    from tests.analytics.intelligence_fixture import NOW as DAY_NOW
    from tests.analytics.intelligence_fixture import PERIOD as DAY_PERIOD

    settings.TIME_ZONE = "UTC"
    settings.RESOLUTION_IDLE_MINUTES = 30
    build_intelligence_day()
    query = {"start_date": str(DAY_PERIOD.start), "end_date": str(DAY_PERIOD.end)}
    with time_machine.travel(DAY_NOW, tick=False):
        dashboard = staff.get("/admin/chat-analytics/api/summary/", query).json()
        snapshot = staff.get("/admin/chat-analytics/api/", query).json()
        insights = staff.get("/api/v1/insights/", query).json()
        listed = {item["key"]: item["value"] for item in staff.get("/api/v1/metrics/", query).json()["metrics"]}
        outputs = {}
        for fmt in ("json", "text"):
            out = StringIO()
            call_command("generate_chat_weekly_report", "--format", fmt, "--end-date", DAY.isoformat(),
                         "--no-progress", stdout=out, stderr=StringIO())  # fmt: skip
            outputs[fmt] = out.getvalue()
    report = json.loads(outputs["json"])
    for key, value in EXPECTED.items():
        assert dashboard["metrics"][key] == snapshot["metrics"][key] == report["metrics"][key] == listed[key] == value
    assert dashboard["prediction_quality"] == insights["prediction_quality"] == report["prediction_quality"]
    assert report["prediction_quality"] == EXPECTED_QUALITY
    for title in ("Conversation intelligence", "How right the AI is"):
        rows = _text_section(outputs["text"], title)
        for key in dict(metrics.report_sections())[title]:
            assert rows[metrics.METRICS[key].label][0] == reports.format_value(key, report["metrics"][key]), key

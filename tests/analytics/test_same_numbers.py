"""Every surface prints the same numbers: selectors, the weekly report (and later the dashboard
API and exports), on the hand-computed week of tests/analytics/conftest.py."""

from __future__ import annotations

import json
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from analytics import selectors, services
from analytics.models import DailyProviderRollup, DailySessionRollup
from tests.analytics.conftest import EXPECTED, NOW, PERIOD

pytestmark = pytest.mark.backends


def _report_json(*args: str) -> dict:
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("generate_chat_weekly_report", "--format", "json", "--end-date", PERIOD.end.isoformat(),
                     "--no-progress", *args, stdout=out, stderr=StringIO())  # fmt: skip
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_report_json_equals_the_selectors_for_every_metric_and_breakdown(week) -> None:
    report = _report_json()
    summary = selectors.summary(PERIOD)
    assert report["metrics"] == summary["metrics"]
    assert report["changes"] == summary["changes"]
    breakdowns = selectors.breakdowns(PERIOD)
    for key in ["top_topics", "common_issues", "user_types", "peak_hours", "providers", "models"]:
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

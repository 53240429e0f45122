"""The dashboard's alert banner in a real browser (chromium + Playwright against `manage.py serve`).

A rule fires on hand-built data (a visitor waiting 12 minutes for a person); a staff user signs
in through the admin form and sees the banner on the dashboard, with the value against the
threshold and a link to the rule's history, under the staff pages' Content-Security-Policy
(a violation would be a console error). Once the alert resolves, the banner is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from alerts import services
from alerts.models import AlertEvent
from tests.alerts.data import claim, rule, waiting_visitor
from tests.static import test_dashboard_browser as dashboard
from tests.static import test_widget_browser as widget
from tests.support.live import daphne

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True)]

browser = widget.browser
page = dashboard.page
ADMIN = ("root", "correct-horse-admin-1")


@pytest.fixture(scope="module")
def server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """The site with no sweeps of its own: the test evaluates the rules."""
    env = {"ALERTS_INTERVAL_S": "0", "ANALYTICS_RECOVERY_INTERVAL_S": "0"}
    with django_db_blocker.unblock(), daphne(env) as base:
        yield base.replace("ws://", "http://")


def test_a_firing_alert_shows_as_a_banner_linking_to_its_history(page: Any, server: str) -> None:
    get_user_model().objects.create_superuser(ADMIN[0], "root@example.com", ADMIN[1])
    waiting = rule(name="Visitor waiting over 10 minutes", kind="waiting", threshold=10)
    visitor = waiting_visitor(timezone.now() - timedelta(minutes=12))
    assert services.alerts_evaluate(now=timezone.now()).fired == 1

    dashboard.sign_in(page, server, ADMIN)
    banner = page.locator("#ca-alerts")
    banner.wait_for(state="visible", timeout=15_000)
    assert banner.locator("h2").text_content() == "1 alert firing"
    item = banner.locator(f"[data-testid=alert-{waiting.pk}]")
    text = item.text_content() or ""
    assert text.startswith("Visitor waiting over 10 minutes: Longest wait for a person 12 min")
    assert "(alerting above 10 min 00 s), firing since" in text
    history = item.get_by_role("link", name="history")
    assert history.get_attribute("href") == f"/admin/alerts/alertevent/?rule__id__exact={waiting.pk}"
    widget.shot(page, "dashboard-alert-banner")

    history.click()
    page.wait_for_url("**/admin/alerts/alertevent/?rule__id__exact=*")
    assert "Visitor waiting over 10 minutes" in (page.locator("#result_list").text_content() or "")
    assert page.locator("#result_list tbody tr").count() == 1

    claim(visitor, timezone.now())
    assert services.alerts_evaluate(now=timezone.now()).resolved == 1
    assert AlertEvent.objects.get().state == "resolved"
    page.goto(f"{server}{dashboard.DASHBOARD}")
    page.locator("#ca-alerts[data-loaded]").wait_for(state="attached", timeout=15_000)
    assert banner.is_hidden()
    page.wait_for_timeout(300)
    assert page.errors == []  # type: ignore[attr-defined]

"""The dashboard banner's JSON (`/admin/chat-analytics/alerts/active/`), the page that shows it,
and the alert history in the admin: who may see them, what they answer."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from alerts.models import AlertRule
from tests.alerts.data import MINUTE, NOW, at, calls, evaluate, rule, waiting_visitor

pytestmark = [pytest.mark.backends, pytest.mark.django_db]

ACTIVE = "/admin/chat-analytics/alerts/active/"


@pytest.fixture
def staff(db) -> Client:
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def visitor(db) -> Client:
    user = get_user_model().objects.create_user("someone", password="pw")
    client = Client()
    client.force_login(user)
    return client


def test_the_banner_is_staff_only(staff: Client, visitor: Client) -> None:
    anonymous = Client().get(ACTIVE)
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Session realm="Parley admin"'
    assert visitor.get(ACTIVE).status_code == 403
    assert visitor.get(ACTIVE).json() == {"error": "Staff only."}
    assert staff.get(ACTIVE).status_code == 200


def test_an_inactive_staff_user_is_refused() -> None:
    user = get_user_model().objects.create_user("gone", password="pw", is_staff=True, is_active=True)
    client = Client()
    client.force_login(user)
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    assert client.get(ACTIVE).status_code in {401, 403}


def test_the_banner_is_empty_while_nothing_fires(staff: Client) -> None:
    assert staff.get(ACTIVE).json() == {"alerts": [], "count": 0, "history_url": "/admin/alerts/alertevent/",
                                        "evaluated_at": None}  # fmt: skip


def test_the_banner_lists_firing_alerts_with_value_threshold_and_since(staff: Client) -> None:
    waiting = rule(name="Waiting", kind="waiting", threshold=10)
    rule(name="Quiet", kind="provider_failures", window_minutes=10, threshold=5)
    waiting_visitor(NOW - 12 * MINUTE)
    calls(NOW - MINUTE, failed=1)
    evaluate(NOW)
    evaluate(NOW + 2 * MINUTE)  # the visitor has now waited 14 minutes
    with at(NOW + 2 * MINUTE):
        data = staff.get(ACTIVE).json()
    assert data["count"] == 1
    assert data["evaluated_at"] == (NOW + 2 * MINUTE).isoformat()
    [alert] = data["alerts"]
    assert alert == {
        "id": alert["id"],
        "rule_id": waiting.pk,
        "name": "Waiting",
        "kind": "waiting",
        "metric": "",
        "label": "Longest wait for a person",
        "unit": "minutes",
        "comparison": ">",
        "threshold": 10.0,
        "threshold_text": "10 min 00 s",
        "value": 14.0,
        "value_text": "14 min 00 s",
        "fired_value": 12.0,
        "fired_at": NOW.isoformat(),
        "message": "Waiting: Longest wait for a person is 12 min 00 s now, above 10 min 00 s (1 visitor waiting).",
        "history_url": f"/admin/alerts/alertevent/?rule__id__exact={waiting.pk}",
    }


def test_the_banner_takes_no_parameters_and_only_get(staff: Client) -> None:
    response = staff.get(ACTIVE + "?range=7d")
    assert response.status_code == 400
    assert response.json()["parameter"] == "range"
    assert staff.post(ACTIVE).status_code == 405


def test_the_dashboard_page_carries_the_banner_and_its_script(staff: Client) -> None:
    page = staff.get("/admin/chat-analytics/").content.decode()
    assert f'<section id="ca-alerts" class="ca-alerts" data-api="{ACTIVE}"' in page
    assert "/static/alerts/banner.js" in page
    assert "<script>" not in page and "style=" not in page  # CSP: no inline script or style


def test_the_history_lists_and_filters_alerts_in_the_admin(staff: Client) -> None:
    failures = rule(name="Failures", kind="provider_failures", window_minutes=10, threshold=0)
    calls(NOW - MINUTE, failed=1)
    evaluate(NOW)
    evaluate(NOW + 11 * MINUTE)
    calls(NOW + 12 * MINUTE, failed=1)
    evaluate(NOW + 13 * MINUTE)
    everything = staff.get("/admin/alerts/alertevent/").content.decode()
    assert everything.count("Failures") >= 2
    firing = staff.get("/admin/alerts/alertevent/?state__exact=firing").content.decode()
    assert "1 alert event" in firing
    by_rule = staff.get(f"/admin/alerts/alertevent/?rule__id__exact={failures.pk}")
    assert by_rule.status_code == 200 and "2 alert events" in by_rule.content.decode()


def test_the_rule_admin_shows_the_state_and_refuses_a_metric_outside_the_registry(staff: Client) -> None:
    waiting = rule(name="Waiting", kind="waiting", threshold=10)
    waiting_visitor(NOW - 12 * MINUTE)
    evaluate(NOW)
    listing = staff.get("/admin/alerts/alertrule/").content.decode()
    assert "Firing" in listing and "12 min 00 s" in listing
    assert staff.get(f"/admin/alerts/alertrule/{waiting.pk}/change/").status_code == 200
    form = {
        "name": "Typo", "kind": "metric", "metric": "csat_rate", "window_minutes": "60", "comparison": "<",
        "threshold": "80", "min_sample": "0", "consecutive": "1", "cooldown_minutes": "30",
    }  # fmt: skip
    refused = staff.post("/admin/alerts/alertrule/add/", form)
    assert refused.status_code == 200
    assert "Select a valid choice. csat_rate is not one of the available choices." in refused.content.decode()
    assert staff.post("/admin/alerts/alertrule/add/", {**form, "metric": "csat"}).status_code == 302
    assert AlertRule.objects.filter(name="Typo", metric="csat").exists()


def test_the_suggested_rules_ship_switched_off_and_valid() -> None:
    suggested = AlertRule.objects.filter(name__in=[
        "Daily AI cost over budget", "Provider success rate below 95 %", "Response time p95 over 10 s",
        "Negative feedback over 30 %", "Visitor waiting for a person over 10 minutes",
        "Provider failures in the last 10 minutes",
    ])  # fmt: skip
    assert suggested.count() == 6
    assert not suggested.filter(active=True).exists()
    for item in suggested:
        item.full_clean()  # raises if the sweep could not evaluate it
    assert {item.metric for item in suggested if item.kind == "metric"} == {
        "cost_usd", "provider_success_rate", "p95_response_time_ms", "satisfaction_rate"
    }  # fmt: skip

"""The admin: configuring an endpoint (generated secret, private targets refused), the delivery log, redelivery."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.webhooks.receiver import Receiver
from webhooks import routes, services, signing
from webhooks.dispatcher import Dispatcher
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin(db: Any) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


def add(admin: Client, **fields: Any) -> Any:
    form = {"url": "https://93.184.215.14/in", "description": "CRM", "active": "on", "secret": "", "owner_email": ""}
    form.update(fields)
    return admin.post(reverse("admin:webhooks_webhookendpoint_add"), form)


def test_adding_an_endpoint_generates_its_secret_and_applies_at_once(settings: Any, admin: Client) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    assert not routes.wanted("rating.created")
    response = add(admin, event_types=["rating.created", "feedback.created"])
    assert response.status_code == 302, response.content.decode()[:2000]

    endpoint = WebhookEndpoint.objects.get()
    signing.check_secret(endpoint.secret)
    assert endpoint.event_types == ["rating.created", "feedback.created"]
    assert routes.wanted("rating.created") and not routes.wanted("message.created")  # no wait for the TTL
    page = admin.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]))
    assert endpoint.secret in page.content.decode()  # shown to staff, who give it to the receiver


def test_a_private_target_is_refused_by_the_form_unless_allowed(settings: Any, admin: Client) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = add(admin, url="http://169.254.169.254/latest/")
    assert response.status_code == 200
    assert "169.254.169.254 is a link-local address" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()

    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert add(admin, url="http://127.0.0.1:9/in").status_code == 302


def test_a_bad_secret_is_refused_and_a_given_one_kept(admin: Client) -> None:
    response = add(admin, secret="not-a-secret")
    assert response.status_code == 200 and "must start with whsec_" in response.content.decode()
    secret = signing.generate_secret()
    assert add(admin, secret=secret).status_code == 302
    assert WebhookEndpoint.objects.get().secret == secret


def test_switching_a_disabled_endpoint_back_on_clears_its_failures(admin: Client) -> None:
    endpoint = WebhookEndpoint.objects.create(
        url="https://93.184.215.14/in",
        secret=signing.generate_secret(),
        active=False,
        consecutive_failures=12,
        disabled_reason="Disabled after 12 failed attempts in a row",
    )
    url = reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk])
    form = {"url": endpoint.url, "secret": endpoint.secret, "active": "on", "description": "", "owner_email": ""}
    assert admin.post(url, form).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.consecutive_failures == 0 and endpoint.disabled_reason == ""


@pytest.mark.backends
async def test_the_delivery_log_shows_every_attempt_and_redeliver_sends_the_same_event_again(
    receiver: Receiver, make_endpoint: Any
) -> None:
    await database_sync_to_async(make_endpoint)(script=[500])
    dispatcher = Dispatcher()
    await database_sync_to_async(services.emit)("alert.fired", {"rule": "cost"})
    await dispatcher.step()
    await dispatcher.drain()
    await database_sync_to_async(_due_now)()
    await dispatcher.step()
    await dispatcher.drain()
    assert [item.status for item in receiver.received] == [500, 200]

    @database_sync_to_async
    def log_page_and_redeliver() -> tuple[str, str, Any]:
        client = Client()
        client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
        delivery = WebhookDelivery.objects.get()
        page = client.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])).content.decode()
        listing = client.get(reverse("admin:webhooks_webhookdelivery_changelist")).content.decode()
        response = client.post(
            reverse("admin:webhooks_webhookdelivery_changelist"),
            {"action": "redeliver", "_selected_action": [delivery.pk]},
        )
        return page, listing, response

    page, listing, response = await log_page_and_redeliver()
    assert "HTTP 500" in page and "receiver says no" in page and "&quot;rule&quot;: &quot;cost&quot;" in page
    assert "alert.fired" in listing and "Delivered" in listing
    assert response.status_code == 302
    row = await database_sync_to_async(WebhookDelivery.objects.get)()
    assert (row.state, row.attempts) == ("pending", 0)

    await dispatcher.step()
    await dispatcher.drain()
    assert [item.status for item in receiver.received] == [500, 200, 200]
    assert len({item.id for item in receiver.received}) == 1  # redelivered under the same webhook-id
    assert await database_sync_to_async(WebhookAttempt.objects.count)() == 3


def _due_now() -> None:
    """The retry comes due now (instead of after its backoff)."""
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())


def test_redeliver_needs_the_change_permission(admin: Client) -> None:
    endpoint = WebhookEndpoint.objects.create(url="https://93.184.215.14/in", secret=signing.generate_secret())
    services.emit("alert.fired", {})
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    WebhookDelivery.objects.update(state="delivered")
    viewer = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_webhookdelivery"))
    client = Client()
    client.force_login(viewer)
    url = reverse("admin:webhooks_webhookdelivery_changelist")
    assert client.get(url).status_code == 200
    client.post(url, {"action": "redeliver", "_selected_action": [delivery.pk]})
    assert WebhookDelivery.objects.get().state == "delivered"  # not queued again

"""Delivery of alerts: email (the locmem outbox), a Slack-compatible receiver on loopback, webhooks.

The receiver is a real HTTP server on 127.0.0.1: loopback is a private target, so the rule's
URL is refused unless WEBHOOK_ALLOW_PRIVATE is on, as for webhooks.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core import mail

from alerts import notifiers
from alerts.models import AlertEvent
from tests.alerts.data import MINUTE, NOW, calls, evaluate, rule
from tests.support.live import free_port
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = [pytest.mark.backends, pytest.mark.django_db]


@dataclass
class Receiver:
    """What the loopback receiver got, and how it answers."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A Slack-compatible incoming webhook on 127.0.0.1: records each POST, answers `status`."""
    port = free_port()
    box = Receiver(url=f"http://127.0.0.1:{port}/services/T000/B000/s3cr3t")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            box.requests.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body or b"null")})
            time.sleep(box.delay_s)
            self.send_response(box.status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if box.status < 300 else b"no_service")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()


def firing_rule(**fields: Any) -> None:
    rule(name="Failures", kind="provider_failures", window_minutes=10, threshold=0, hysteresis=0,
         description="Check the provider keys.", **fields)  # fmt: skip
    calls(NOW - MINUTE, failed=2)


def test_email_goes_to_each_address_with_the_value_and_a_link_to_the_history() -> None:
    firing_rule(emails="a@example.com, b@example.com\na@example.com")
    evaluate(NOW)
    assert [message.to for message in mail.outbox] == [["a@example.com"], ["b@example.com"]]
    message = mail.outbox[0]
    event = AlertEvent.objects.get()
    assert message.subject == "[Parley] Alert: Failures"
    assert message.from_email == "alerts@example.com"
    assert event.message in message.body
    assert "Check the provider keys." in message.body
    assert f"https://support.example.com/admin/alerts/alertevent/?rule__id__exact={event.rule_id}" in message.body
    assert [(item["event"], item["channel"], item["ok"]) for item in event.deliveries] == [("fired", "email", True)]


def test_email_is_sent_again_on_resolving() -> None:
    firing_rule(emails="a@example.com")
    evaluate(NOW)
    evaluate(NOW + 11 * MINUTE)
    assert [message.subject for message in mail.outbox] == ["[Parley] Alert: Failures", "[Parley] Resolved: Failures"]
    assert "It had been firing for 11 min 00 s." in mail.outbox[1].body


def test_a_mail_server_that_refuses_is_recorded_and_the_alert_still_stands(settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    firing_rule(emails="a@example.com")
    assert evaluate(NOW).fired == 1
    email = next(item for item in AlertEvent.objects.get().deliveries if item["channel"] == "email")
    assert email["ok"] is False
    assert "ConnectionRefusedError" in email["detail"]


def test_slack_compatible_receiver_gets_the_text_as_json(settings, receiver: Receiver) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    firing_rule(slack_urls=receiver.url)
    evaluate(NOW)
    event = AlertEvent.objects.get()
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request["path"] == "/services/T000/B000/s3cr3t"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Host"] == receiver.url.split("/")[2]
    assert request["json"] == {
        "text": f":rotating_light: {event.message} "
        f"<https://support.example.com/admin/alerts/alertevent/?rule__id__exact={event.rule_id}|History>"
    }
    slack = next(item for item in event.deliveries if item["channel"] == "slack")
    assert (slack["ok"], slack["detail"]) == (True, "HTTP 200")
    assert "s3cr3t" not in json.dumps(event.deliveries)  # the URL's secret path is never stored
    evaluate(NOW + 11 * MINUTE)
    assert receiver.requests[1]["json"]["text"].startswith(":white_check_mark: Failures resolved:")


def test_slack_to_a_private_address_is_refused_without_webhook_allow_private(receiver: Receiver) -> None:
    firing_rule(slack_urls=receiver.url)
    assert evaluate(NOW).fired == 1
    assert receiver.requests == []
    slack = next(item for item in AlertEvent.objects.get().deliveries if item["channel"] == "slack")
    assert slack["ok"] is False
    assert slack["detail"].startswith("refused: 127.0.0.1 is a loopback address")


def test_a_receiver_that_fails_or_hangs_is_recorded_and_bounded(settings, receiver: Receiver) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.ALERT_SLACK_TIMEOUT_S = 0.5
    receiver.status = 500
    firing_rule(slack_urls=receiver.url)
    evaluate(NOW)
    slack = next(item for item in AlertEvent.objects.get().deliveries if item["channel"] == "slack")
    assert (slack["ok"], slack["detail"]) == (False, "HTTP 500: no_service")
    receiver.status, receiver.delay_s = 200, 3.0
    started = time.monotonic()
    evaluate(NOW + 11 * MINUTE)  # resolves: its Slack message times out after 0.5 s
    assert time.monotonic() - started < 2.5
    resolved = [item for item in AlertEvent.objects.get().deliveries if item["event"] == "resolved"]
    assert [(item["channel"], item["ok"]) for item in resolved] == [("slack", False)]
    assert resolved[0]["detail"] == "ReadTimeout: timed out"


def test_firing_and_resolving_queue_alert_webhooks_in_the_outbox() -> None:
    wants = WebhookEndpoint.objects.create(
        url="https://hooks.example.com/a", event_types=["alert.fired", "alert.resolved"]
    )
    WebhookEndpoint.objects.create(url="https://hooks.example.com/b", event_types=["message.created"])
    firing_rule()
    evaluate(NOW)
    [fired] = WebhookDelivery.objects.all()
    event = AlertEvent.objects.get()
    assert (fired.event_type, fired.endpoint_id, fired.conversation_id) == ("alert.fired", wants.pk, "")
    body = json.loads(fired.body)
    assert body["type"] == "alert.fired"
    assert body["data"] == {
        "alert_id": event.pk, "rule_id": event.rule_id, "rule": "Failures", "state": "firing",
        "kind": "provider_failures", "metric": None, "label": "Failed provider calls", "unit": "count",
        "comparison": ">", "threshold": 0.0, "window_minutes": 10,
        "filters": {"user_type": None, "provider": None}, "value": 2.0, "sample": 2,
        "fired_at": NOW.isoformat(), "resolved_at": None, "resolved_value": None, "message": event.message,
        "history_url": f"https://support.example.com/admin/alerts/alertevent/?rule__id__exact={event.rule_id}",
    }  # fmt: skip
    evaluate(NOW + 11 * MINUTE)
    resolved = WebhookDelivery.objects.get(event_type="alert.resolved")
    data = json.loads(resolved.body)["data"]
    assert (data["alert_id"], data["state"], data["resolved_value"]) == (event.pk, "resolved", 0.0)
    assert data["resolved_at"] == (NOW + 11 * MINUTE).isoformat()
    deliveries = AlertEvent.objects.get().deliveries
    assert [(item["event"], item["channel"], item["ok"], item["detail"]) for item in deliveries] == [
        ("fired", "webhook", True, "queued for 1 endpoint(s)"),
        ("resolved", "webhook", True, "queued for 1 endpoint(s)"),
    ]  # fmt: skip


def test_a_rule_without_webhook_queues_none() -> None:
    WebhookEndpoint.objects.create(url="https://hooks.example.com/a", event_types=[])
    firing_rule(webhook=False)
    assert evaluate(NOW).fired == 1
    assert not WebhookDelivery.objects.exists()


def test_the_request_goes_to_the_checked_address_with_the_name_in_host_and_tls(settings) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    address, headers, extensions = notifiers.pinned("https://localhost:8443/services/x?y=1")
    assert address in {"https://127.0.0.1:8443/services/x?y=1", "https://[::1]:8443/services/x?y=1"}
    assert (headers, extensions) == ({"Host": "localhost:8443"}, {"sni_hostname": "localhost"})
    assert notifiers.pinned("http://localhost/a")[1:] == ({"Host": "localhost"}, {})
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(ValueError, match="loopback"):
        notifiers.pinned("https://localhost/a")
    with pytest.raises(ValueError, match="link-local"):
        notifiers.pinned("http://169.254.169.254/latest/meta-data/")
    with pytest.raises(ValueError, match="private"):
        notifiers.pinned("http://10.1.2.3/hook")


def test_a_receiver_named_by_host_name_gets_that_name_in_its_host_header(settings, receiver: Receiver) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    named = receiver.url.replace("127.0.0.1", "localhost")
    if not notifiers.pinned(named)[0].startswith("http://127.0.0.1:"):
        pytest.skip("localhost resolves to ::1 first here; the receiver listens on 127.0.0.1")
    firing_rule(slack_urls=named)
    evaluate(NOW)
    assert receiver.requests[0]["headers"]["Host"] == named.split("/")[2]

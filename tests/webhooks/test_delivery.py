"""Delivery against a real receiver: retries with backoff, order per conversation, giving up,
disabling a failing endpoint, leases between processes, and what one attempt may cost.

The retry schedule is shortened by its setting (WEBHOOK_RETRY_SCHEDULE_S = 0.2, 0.3, 0.4 s here)
and the dispatcher polls every 0.1 s; everything else is what production runs.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.utils import timezone

from tests.webhooks.receiver import Receiver
from webhooks import outbox, services
from webhooks.dispatcher import Dispatcher
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

pytestmark = [pytest.mark.django_db(transaction=True)]


@database_sync_to_async
def emit(kind: str, data: dict[str, Any], conversation_id: str | None = None) -> None:
    services.emit(kind, data, conversation_id=conversation_id)


@database_sync_to_async
def delivery(**filters: Any) -> WebhookDelivery:
    return WebhookDelivery.objects.get(**filters)


@database_sync_to_async
def attempts_of(pk: int) -> list[tuple[int | None, str, str]]:
    return list(
        WebhookAttempt.objects.filter(delivery_id=pk)
        .order_by("attempted_at", "pk")
        .values_list("status_code", "error", "response_excerpt")
    )


@pytest.mark.backends
async def test_a_failing_receiver_gets_the_retries_with_one_webhook_id_and_valid_signatures(
    settings: Any, receiver: Receiver, make_endpoint: Any, running_dispatcher: Dispatcher
) -> None:
    await database_sync_to_async(make_endpoint)(script=[500, 500, 503])
    await emit("alert.fired", {"rule": "cost"})

    assert await receiver.until(lambda r: len(r.accepted()) == 1)
    requests = receiver.received
    assert [item.status for item in requests] == [500, 500, 503, 200]
    assert len({item.id for item in requests}) == 1  # the same webhook-id on every attempt
    assert all(item.verified for item in requests)  # each attempt signed with its own timestamp
    assert len({item.body for item in requests}) == 1  # the same bytes
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]
    for gap, scheduled in zip(gaps, settings.WEBHOOK_RETRY_SCHEDULE_S, strict=True):
        assert gap >= scheduled * 0.8 - 0.02  # the backoff, with its jitter (never early)

    await running_dispatcher.drain()
    stored = await delivery()
    assert (stored.state, stored.attempts, stored.last_status, stored.last_error) == ("delivered", 4, 200, "")
    log = await attempts_of(stored.pk)
    assert [(code, error) for code, error, _ in log] == [
        (500, "HTTP 500"),
        (500, "HTTP 500"),
        (503, "HTTP 503"),
        (200, ""),
    ]
    assert log[0][2] == "receiver says no" and log[-1][2] == '{"ok": true}'


@pytest.mark.backends
async def test_a_later_event_of_a_conversation_waits_for_the_earlier_one_and_others_do_not(
    receiver: Receiver, make_endpoint: Any, running_dispatcher: Dispatcher
) -> None:
    await database_sync_to_async(make_endpoint)()
    failures = iter([500, 500])
    receiver.decide = lambda path, body: next(failures, None) if b'"n":1' in body else None
    await emit("alert.fired", {"n": 1}, conversation_id="c-1")
    await emit("alert.fired", {"n": 2}, conversation_id="c-1")
    await emit("alert.fired", {"n": 3}, conversation_id="c-2")
    await emit("alert.fired", {"n": 4})

    assert await receiver.until(lambda r: len(r.accepted()) == 4)
    order = [(item.payload["data"]["n"], item.status) for item in receiver.received]
    first_ok = order.index((1, 200))
    assert all(n != 2 for n, _ in order[:first_ok])  # n=2 was never tried while n=1 was failing
    assert order.index((2, 200)) > first_ok
    assert order.index((3, 200)) < first_ok and order.index((4, 200)) < first_ok  # not held back


@pytest.mark.backends
async def test_a_delivery_is_given_up_after_the_schedule_and_then_stops_holding_the_conversation(
    receiver: Receiver, make_endpoint: Any, running_dispatcher: Dispatcher
) -> None:
    await database_sync_to_async(make_endpoint)(script=[500] * 4)  # every attempt of the first event
    await emit("alert.fired", {"n": 1}, conversation_id="c-1")
    await emit("alert.fired", {"n": 2}, conversation_id="c-1")

    assert await receiver.until(lambda r: len(r.accepted()) == 1)
    assert [(item.payload["data"]["n"], item.status) for item in receiver.received] == [
        (1, 500),
        (1, 500),
        (1, 500),
        (1, 500),  # 1 + 3 retries: the schedule is spent
        (2, 200),
    ]
    await running_dispatcher.drain()
    first = await delivery(body__contains='"n":1')
    assert (first.state, first.attempts) == ("failed", 4)


@pytest.mark.backends
async def test_an_endpoint_failing_long_enough_is_disabled_and_its_owner_emailed_once(
    settings: Any, receiver: Receiver, make_endpoint: Any, running_dispatcher: Dispatcher
) -> None:
    settings.WEBHOOK_DISABLE_AFTER_H = 0
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    owner = await database_sync_to_async(get_user_model().objects.create_user)("owner", email="owner@example.com")
    failing = await database_sync_to_async(make_endpoint)("/down", script=[500] * 50, owner=owner)
    healthy = await database_sync_to_async(make_endpoint)("/flaky", script=[500, 500])  # then 200
    for n in range(3):
        await emit("alert.fired", {"n": n})

    assert await receiver.until(lambda r: len(r.accepted("/flaky")) == 3)
    for _ in range(50):
        await running_dispatcher.drain()
        if not (await database_sync_to_async(WebhookEndpoint.objects.get)(pk=failing.pk)).active:
            break
        await asyncio.sleep(0.05)
    failing = await database_sync_to_async(WebhookEndpoint.objects.get)(pk=failing.pk)
    healthy = await database_sync_to_async(WebhookEndpoint.objects.get)(pk=healthy.pk)
    assert not failing.active and failing.disabled_reason.startswith("Disabled after 3 failed attempts in a row")
    assert healthy.active and healthy.consecutive_failures == 0 and healthy.failing_since is None
    assert [message.to for message in mail.outbox] == [["owner@example.com"]]
    assert "/down" in mail.outbox[0].body and "switch the endpoint back on" in mail.outbox[0].body

    tried = len([item for item in receiver.received if item.path == "/down"])
    await asyncio.sleep(0.5)  # retries come due, but the endpoint is off: nothing more is sent
    assert len([item for item in receiver.received if item.path == "/down"]) == tried
    await emit("alert.resolved", {"n": 9})
    rows = await database_sync_to_async(lambda: list(WebhookDelivery.objects.filter(event_type="alert.resolved")))()
    assert [row.endpoint_id for row in rows] == [healthy.pk]  # a disabled endpoint gets no new rows


@pytest.mark.backends
def test_concurrent_claims_take_disjoint_deliveries() -> None:
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.com/", secret="whsec_" + "A" * 32)
    for n in range(60):
        services.emit("alert.fired", {"n": n})
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 60
    barrier = threading.Barrier(4)
    claimed: dict[int, list[int]] = {}

    def claim(index: int) -> None:
        barrier.wait()
        try:
            taken: list[int] = []
            while batch := outbox.claim(limit=5, owner=f"p{index}"):
                taken += [item.pk for item in batch]
            claimed[index] = taken
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    everything = [pk for taken in claimed.values() for pk in taken]
    assert len(claimed) == 4 and sorted(everything) == sorted(set(everything))  # nobody got a row twice
    assert len(everything) == 60
    assert outbox.claim(limit=10, owner="late") == []  # all leased


@pytest.mark.backends
def test_an_expired_lease_is_claimed_again_and_the_late_result_does_not_overwrite_it() -> None:
    WebhookEndpoint.objects.create(url="https://hooks.example.com/", secret="whsec_" + "A" * 32)
    services.emit("alert.fired", {})
    now = timezone.now()
    [first] = outbox.claim(limit=5, owner="dead", now=now)
    assert outbox.claim(limit=5, owner="other", now=now + timedelta(seconds=5)) == []
    [again] = outbox.claim(limit=5, owner="other", now=now + timedelta(seconds=outbox.lease_s() + 1))
    assert again.pk == first.pk and again.event_id == first.event_id

    late = outbox.Result(
        pk=first.pk, endpoint_id=first.endpoint_id, attempts=0, attempted_at=now, duration_ms=5, error="x"
    )
    outbox.finish(results=[late], owner="dead")
    row = WebhookDelivery.objects.get()
    assert (row.state, row.lease_owner, row.attempts) == ("pending", "other", 0)  # the new holder's
    assert WebhookAttempt.objects.filter(delivery=row).count() == 1  # still logged: it happened
    ok = outbox.Result(
        pk=first.pk, endpoint_id=first.endpoint_id, attempts=0, attempted_at=now, duration_ms=5, status_code=204
    )
    outbox.finish(results=[ok], owner="other")
    assert WebhookDelivery.objects.get().state == "delivered"


@pytest.mark.backends
def test_leases_of_a_dead_process_are_released_and_prune_keeps_the_recent_log(settings: Any) -> None:
    WebhookEndpoint.objects.create(url="https://hooks.example.com/", secret="whsec_" + "A" * 32)
    for n in range(3):
        services.emit("alert.fired", {"n": n})
    outbox.claim(limit=2, owner="gone:1")
    assert outbox.release(prefix="gone:") == 2
    assert len(outbox.claim(limit=5, owner="me:1")) == 3

    old = timezone.now() - timedelta(days=settings.WEBHOOK_RETENTION_DAYS + 1)
    WebhookDelivery.objects.filter(pk__in=WebhookDelivery.objects.order_by("pk").values("pk")[:2]).update(
        state="delivered", created_at=old
    )
    assert outbox.prune() == 2
    assert WebhookDelivery.objects.count() == 1


class _Odd(BaseHTTPRequestHandler):
    """A receiver that redirects, stalls, or answers a huge body, by path."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/redirect":
            self.send_response(307)
            self.send_header("location", "http://127.0.0.1:1/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()
        elif self.path == "/slow":
            time.sleep(1.5)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()
        else:
            body = b"x" * 200_000
            self.send_response(500)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.mark.backends
async def test_redirects_are_not_followed_slow_receivers_time_out_and_big_answers_are_cut(settings: Any) -> None:
    settings.WEBHOOK_TIMEOUT_S = 0.5
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        for path in ("/redirect", "/slow", "/big"):
            await database_sync_to_async(WebhookEndpoint.objects.create)(
                url=f"http://127.0.0.1:{port}{path}", secret="whsec_" + "A" * 32, event_types=["alert.fired"]
            )
        dispatcher = Dispatcher()
        await emit("alert.fired", {})
        await dispatcher.step()
        await dispatcher.drain()
        log = await database_sync_to_async(
            lambda: {
                row.delivery.endpoint.url.rsplit("/", 1)[1]: row
                for row in WebhookAttempt.objects.select_related("delivery__endpoint")
            }
        )()
        assert log["redirect"].status_code == 307 and "redirects are not followed" in log["redirect"].error
        assert log["slow"].status_code is None and log["slow"].error == "timed out after 0.5 s"
        assert log["slow"].duration_ms < 1200
        assert log["big"].status_code == 500 and len(log["big"].response_excerpt) == 1000
    finally:
        server.shutdown()
        server.server_close()

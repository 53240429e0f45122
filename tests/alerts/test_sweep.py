"""The sweep loop: started by the chat, evaluating on its own, delivering from tasks of its own."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from alerts import subscribers, sweep
from alerts.models import AlertEvent
from assistant import events
from project import runtime
from tests.alerts.data import MINUTE, calls, rule

pytestmark = [pytest.mark.backends]


@pytest.mark.django_db(transaction=True)
async def test_a_sweep_pass_fires_and_delivers_from_a_task_of_its_own() -> None:
    await database_sync_to_async(rule)(name="Failures", kind="provider_failures", window_minutes=10, threshold=0,
                              emails="oncall@example.com")  # fmt: skip
    await database_sync_to_async(calls)(timezone.now() - MINUTE, failed=1)
    result = await sweep.sweep_once()
    assert result.fired == 1
    assert await runtime.current().wait(sweep.DELIVERIES, timeout=10)
    assert [message.to for message in mail.outbox] == [["oncall@example.com"]]
    event = await database_sync_to_async(AlertEvent.objects.get)()
    assert [item["channel"] for item in event.deliveries][-1] == "email"


@pytest.mark.django_db(transaction=True)
async def test_the_loop_evaluates_every_interval(settings) -> None:
    settings.ALERTS_INTERVAL_S = 0.2
    await database_sync_to_async(rule)(name="Failures", kind="provider_failures", window_minutes=10, threshold=0)
    await database_sync_to_async(calls)(timezone.now() - MINUTE, failed=1)
    sweep.ensure_running()
    try:
        for _ in range(100):
            if await database_sync_to_async(AlertEvent.objects.exists)():
                break
            await asyncio.sleep(0.05)
        assert await database_sync_to_async(AlertEvent.objects.count)() == 1
    finally:
        await sweep.stop()


async def test_a_chat_connection_starts_the_sweep_and_an_interval_of_0_does_not(settings) -> None:
    opened = events.SessionOpened(session_pk=1, session_id="x", connection="c", created=True,
                                  started_at=timezone.now().isoformat(), user_type="anonymous")  # fmt: skip
    subscribers.start_sweep(opened)
    assert sweep.SERVICE not in runtime.current()._services
    settings.ALERTS_INTERVAL_S = 60
    events.publish(opened)
    task = runtime.current()._services.get(sweep.SERVICE)
    assert task is not None and not task.done()
    await sweep.stop()
    assert sweep.SERVICE not in runtime.current()._services


def test_outside_an_event_loop_the_start_is_a_no_op(settings) -> None:
    settings.ALERTS_INTERVAL_S = 60
    sweep.ensure_running_if_loop()  # no running loop: nothing to start, nothing raised


@pytest.mark.django_db
def test_evaluate_alerts_command_runs_one_pass() -> None:
    rule(name="Failures", kind="provider_failures", window_minutes=10, threshold=0)
    calls(timezone.now() - timedelta(minutes=1), failed=1)
    out = io.StringIO()
    call_command("evaluate_alerts", stdout=out)
    assert out.getvalue().strip() == (
        "1 rule(s) evaluated: 1 fired, 0 resolved, 0 skipped (evaluated just now elsewhere), 0 failed."
    )
    assert AlertEvent.objects.count() == 1


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_served_process_evaluates_from_its_start_without_any_connection() -> None:
    """`manage.py serve` starts the sweep with the server (a startup hook), not with the first chat."""
    import time

    from tests.support.live import daphne

    rule(name="Failures", kind="provider_failures", window_minutes=10, threshold=0)
    calls(timezone.now() - MINUTE, failed=1)
    with daphne({"ALERTS_INTERVAL_S": "1", "ANALYTICS_RECOVERY_INTERVAL_S": "0"}):
        deadline = time.monotonic() + 15
        while not AlertEvent.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    assert AlertEvent.objects.count() == 1

"""HANDOFF_NOTIFY_AFTER_S: one email to the agents about visitors nobody claimed in time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from assistant.handoff import services
from assistant.models import ChatSession, Handoff
from desk import notify
from tests.assistant.test_services import new_session
from tests.desk.test_consumers import agent_desk

pytestmark = pytest.mark.django_db(transaction=True)


def waiting(title: str, *, minutes_ago: float, reason: str = "") -> ChatSession:
    session = new_session()
    ChatSession.objects.filter(pk=session.pk).update(title=title, external_user_name="Kim")
    session.refresh_from_db()
    services.handoff_request(session=session, reason=reason, now=timezone.now() - timedelta(minutes=minutes_ago))
    return session


@pytest.fixture
def people(make_agent) -> None:
    ada = make_agent("ada")
    ada.email = "Ada@Example.com"
    ada.save()
    make_agent("bob", available=False)  # an agent without an address: nobody to write to
    get_user_model().objects.create_superuser("root", "root@example.com", "x")
    get_user_model().objects.create_user("carol", "carol@example.com", "x", is_staff=True)  # not an agent


def test_one_email_per_request_waiting_too_long_to_agents_only(people, settings) -> None:
    settings.HANDOFF_NOTIFY_AFTER_S, settings.DESK_URL = 120, "https://support.example.com/desk/"
    waiting("Refund for order 1234", minutes_ago=5, reason="billing")
    waiting("Just asked", minutes_ago=1)  # not yet
    claimed = waiting("Claimed in time", minutes_ago=10)
    services.claim(session_id=str(claimed.public_id), agent=get_user_model().objects.get(username="ada"))

    assert asyncio.run(notify.check_once()) == 1
    assert [m.to for m in mail.outbox] == [["ada@example.com"], ["root@example.com"]]  # one each
    email = mail.outbox[0]
    assert email.subject == "[Parley] 1 visitor waiting for a person"
    assert "- Kim: Refund for order 1234 — billing (waiting 5 min)" in email.body
    assert "https://support.example.com/desk/" in email.body and "Claimed in time" not in email.body

    assert asyncio.run(notify.check_once()) == 0 and len(mail.outbox) == 2  # told once
    assert Handoff.objects.exclude(notified_at=None).count() == 1


def test_nobody_to_write_to_is_a_warning_not_an_error(make_agent, settings, caplog) -> None:
    make_agent("bob")
    waiting("Help", minutes_ago=5)
    assert asyncio.run(notify.check_once()) == 0
    assert mail.outbox == [] and "no agent has an email address" in caplog.text
    assert Handoff.objects.filter(notified_at=None).count() == 1  # told once someone has an address


async def test_the_loop_runs_once_a_visitor_waits_and_emails_in_time(settings) -> None:
    from channels.db import database_sync_to_async

    from tests.assistant.test_consumers import connected

    settings.HANDOFF_NOTIFY_AFTER_S = 1
    user, desk = await agent_desk()  # available: the visitor queues

    @database_sync_to_async
    def give_address() -> None:
        get_user_model().objects.filter(pk=user.pk).update(email="ada@example.com")

    await give_address()
    visitor = await connected()
    await visitor.hello()
    await visitor.say("I need a person", "m1")
    await visitor.send({"type": "handoff"})
    assert (await visitor.recv_type("handoff.status"))["state"] == "waiting"
    for _ in range(100):
        if mail.outbox:
            break
        await asyncio.sleep(0.05)
    assert [m.to for m in mail.outbox] == [["ada@example.com"]]
    await visitor.close()
    await desk.close()
    from project import runtime

    await runtime.current().stop_service(notify.SERVICE)


def test_off_when_zero(settings) -> None:
    settings.HANDOFF_NOTIFY_AFTER_S = 0

    async def started() -> bool:
        notify.ensure_running()
        from project import runtime

        return runtime.current()._services.get(notify.SERVICE) is not None

    assert asyncio.run(started()) is False

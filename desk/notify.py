"""Email the agents about visitors left waiting (`HANDOFF_NOTIFY_AFTER_S`; docs/desk.md).

The desk page beeps and shows a browser notification the moment a visitor starts waiting, but
only for agents who have it open. A visitor still unclaimed after `HANDOFF_NOTIFY_AFTER_S`
gets one email to every agent with an address, whether or not anyone is at the desk.

Each process that saw a request runs one loop (a `project.runtime` service) checking every few
seconds; a guarded update (`services.unclaimed_to_notify`) marks each request told, so of
several processes exactly one sends it. A request is marked before the email goes: a mail
server that refuses loses that email (logged), never sends it twice. Each agent gets their own
copy (no agent sees the others' addresses); with no agent address at all nothing is marked,
and a warning says so.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.mail import send_mass_mail
from django.utils import timezone

from assistant import events
from assistant.handoff import selectors as handoff_selectors
from assistant.handoff import services
from assistant.models import Handoff
from desk import selectors
from project import runtime

logger = logging.getLogger(__name__)

SERVICE = "desk-notify"
#: The longest pause between two checks (shorter when HANDOFF_NOTIFY_AFTER_S is short).
MAX_CHECK_INTERVAL_S = 15.0

_unclaimed = database_sync_to_async(services.unclaimed_to_notify)
_agent_emails = database_sync_to_async(selectors.agent_emails)
_waiting_too_long = database_sync_to_async(handoff_selectors.waiting_too_long)


def handoff_requested(event: events.HandoffRequested) -> None:
    """A visitor started waiting: make sure this process checks on them."""
    if event.state == "waiting":
        ensure_running()


def ensure_running() -> None:
    """Start this event loop's check loop, once (a no-op when HANDOFF_NOTIFY_AFTER_S is 0).

    Started by a request for a person and by every desk that connects, so that a process
    restarted while visitors wait checks on them as soon as an agent comes back.
    """
    if settings.HANDOFF_NOTIFY_AFTER_S > 0:
        runtime.current().service(SERVICE, _check_forever)


def check_interval() -> float:
    return max(0.5, min(MAX_CHECK_INTERVAL_S, settings.HANDOFF_NOTIFY_AFTER_S / 4))


async def _check_forever() -> None:
    while True:
        await asyncio.sleep(check_interval())
        try:
            await check_once()
        except Exception:
            logger.exception("Could not tell the agents about waiting visitors; retrying")


async def check_once() -> int:
    """Email the agents about every request waiting too long; how many requests were in it."""
    recipients = await _agent_emails()  # first: with nobody to write to, nothing is marked told
    if not recipients:
        if await _waiting_too_long(after_s=settings.HANDOFF_NOTIFY_AFTER_S):
            logger.warning("Visitors wait for a person, and no agent has an email address to tell")
        return 0
    waiting = await _unclaimed(after_s=settings.HANDOFF_NOTIFY_AFTER_S)
    if not waiting:
        return 0
    subject, body = message(waiting)
    # One message per agent: no agent sees the others' addresses. EMAIL_TIMEOUT bounds a mail
    # server that does not answer (this loop waits for it, and it runs in a thread of its own).
    mails = [(subject, body, settings.DEFAULT_FROM_EMAIL, [address]) for address in recipients]
    try:
        await sync_to_async(send_mass_mail, thread_sensitive=False)(mails, fail_silently=False)
    except Exception:
        logger.exception("Could not email the agents about %d waiting visitor(s)", len(waiting))
    return len(waiting)


def message(waiting: list[Handoff]) -> tuple[str, str]:
    """The email: subject and plain-text body (no visitor text beyond the conversation's title)."""
    now = timezone.now()
    count = len(waiting)
    subject = f"[Parley] {count} visitor{'s' if count != 1 else ''} waiting for a person"
    lines = [f"{subject[9:]}, unclaimed for more than {settings.HANDOFF_NOTIFY_AFTER_S} s:", ""]
    for handoff in waiting:
        session = handoff.session
        who = session.external_user_name or session.external_user_email or "A visitor"
        minutes = max(0, int((now - handoff.requested_at).total_seconds() // 60))
        title = session.title or "(no title)"
        reason = f" — {handoff.reason}" if handoff.reason else ""
        lines.append(f"- {who}: {title}{reason} (waiting {minutes} min)")
    lines += ["", f"Answer them at the agent desk: {settings.DESK_URL or '/desk/ on your Parley server'}"]
    return subject, "\n".join(lines) + "\n"

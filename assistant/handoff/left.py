"""A visitor who closed every tab while waiting for a person leaves the queue (`HANDOFF_ABANDON_AFTER_S`).

Agents should not claim a conversation nobody reads, and a queue of ghosts hides the visitors
still there. Each process counts its own visitor connections per session from the event seam
(`SessionOpened` +1, `ConnectionClosed` −1). When a session's last local connection closes,
it is remembered with the time; a per-process loop (a `project.runtime` service) looks again
after `HANDOFF_ABANDON_AFTER_S`: if the session is still waiting, no connection came back
here, and no `hello` anywhere stamped `last_seen_at` after the close (a tab reconnecting to
another process does; a hello within `services.CLOCK_SKEW_S` of the close, which another
server's clock may have stamped, is looked at once more a grace later), the
request ends `abandoned` with a guarded update (`services.abandon_left`), every remaining tab
is told `ended`, and `HandoffChanged` tells the desks and analytics.

Known limit: a visitor with a second tab open, idle, on another server process is not seen
from here; that tab is told `ended` and may ask again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from assistant import events
from assistant.delivery import publish, relay
from assistant.groups import session_group
from assistant.handoff import selectors, services
from assistant.handoff.visitor import abandoned_event
from assistant.protocol import frames
from project import runtime

logger = logging.getLogger(__name__)

SERVICE = "handoff-left"
_abandon_left = database_sync_to_async(services.abandon_left)
_waiting_among = database_sync_to_async(selectors.waiting_among)


@dataclass(frozen=True, slots=True)
class Gone:
    """A session whose last local tab closed: when, when to look, and what was seen last time."""

    session_id: str
    left_at: datetime
    due_at: datetime
    seen_before: datetime | None = None


class Tabs:
    """This event loop's visitor connections per session, and the sessions whose last one closed."""

    def __init__(self) -> None:
        self.open: Counter[int] = Counter()
        self.left: dict[int, Gone] = {}


def _tabs() -> Tabs:
    return runtime.current().state("handoff-tabs", Tabs)


def connect() -> None:
    """Subscribe (once per process, from `AssistantConfig.ready`)."""
    events.subscribe(events.SessionOpened, session_opened)
    events.subscribe(events.ConnectionClosed, connection_closed)


def session_opened(event: events.SessionOpened) -> None:
    tabs = _tabs()
    tabs.open[event.session_pk] += 1
    tabs.left.pop(event.session_pk, None)


def connection_closed(event: events.ConnectionClosed) -> None:
    tabs = _tabs()
    tabs.open[event.session_pk] -= 1
    if tabs.open[event.session_pk] > 0:
        return
    del tabs.open[event.session_pk]
    if settings.HANDOFF_ABANDON_AFTER_S > 0:
        now = timezone.now()
        due = now + timedelta(seconds=settings.HANDOFF_ABANDON_AFTER_S)
        tabs.left[event.session_pk] = Gone(event.session_id, now, due)
        runtime.current().service(SERVICE, _check_forever)


async def _check_forever() -> None:
    while True:
        await asyncio.sleep(max(0.2, min(10.0, settings.HANDOFF_ABANDON_AFTER_S / 4)))
        try:
            await check_once()
        except Exception:
            logger.exception("Could not end the requests of visitors who left; retrying")


async def check_once(now: datetime | None = None) -> int:
    """End the waiting requests of sessions left longer than HANDOFF_ABANDON_AFTER_S ago; how many."""
    now = now or timezone.now()
    tabs = _tabs()
    due = [(pk, gone) for pk, gone in list(tabs.left.items()) if gone.due_at <= now]
    for pk, _ in due:
        tabs.left.pop(pk, None)
    if not due:
        return 0
    try:
        waiting = await _waiting_among(session_pks=[pk for pk, _ in due])  # most were never waiting
    except Exception:
        for pk, gone in due:  # looked at again at the next check
            tabs.left.setdefault(pk, gone)
        raise
    ended = 0
    for pk, gone in due:
        if pk not in waiting:
            continue
        try:
            found = await _abandon_left(session_pk=pk, left_at=gone.left_at, seen_before=gone.seen_before, now=now)
        except Exception:
            tabs.left.setdefault(pk, gone)
            raise
        if found.unsure_seen is not None:  # a hello too close to the close to tell: look again later
            later = now + timedelta(seconds=settings.HANDOFF_ABANDON_AFTER_S)
            tabs.left.setdefault(pk, Gone(gone.session_id, gone.left_at, later, found.unsure_seen))
            continue
        if found.session is None:
            continue  # not waiting any more, or the visitor came back (to another process)
        ended += 1
        await publish(session_group(gone.session_id), [frames.handoff_status(state="ended")])
        await relay(abandoned_event(found.session))
    return ended

"""The alert sweep: one loop per server process evaluates every rule each ALERTS_INTERVAL_S.

Started like the analytics sweep (`analytics.recovery`), by what a server process does first:
`manage.py serve` starts it as soon as its event loop runs (a `project.runtime` startup hook),
and the first chat connection, request for a person or dashboard banner read starts it in a
process that was not started that way (another ASGI server, the tests). 0 turns it off; then
`manage.py evaluate_alerts` from cron does the same pass.

Each pass runs in a database thread (`services.alerts_evaluate`) and is safe to run in several
processes at once: a guarded update fires a rule once. The emails and Slack messages of a pass
are sent by tasks of their own (kind ``alerts``, in threads), so a mail server that takes its
whole EMAIL_TIMEOUT never delays the next pass; shutdown waits for them.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings

from alerts import notifiers, services
from project import runtime

logger = logging.getLogger(__name__)

SERVICE = "alerts-sweep"
#: The runtime kind of the delivery tasks (drained after the known kinds at shutdown).
DELIVERIES = "alerts"


def ensure_running() -> None:
    """Start this event loop's sweep loop, once (a no-op when ALERTS_INTERVAL_S is 0)."""
    if settings.ALERTS_INTERVAL_S <= 0:
        return
    runtime.current().service(SERVICE, _sweep_forever)


def ensure_running_if_loop() -> None:
    """`ensure_running` from code that may run outside an event loop (then it does nothing)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    ensure_running()


async def stop() -> None:
    """Stop this event loop's sweep loop (tests and shutdown)."""
    await runtime.current().stop_service(SERVICE)


async def sweep_once() -> services.Pass:
    """One pass: evaluate every rule, then hand each firing and resolution to a delivery task."""
    result: services.Pass = await database_sync_to_async(services.alerts_evaluate)(deliver=False)
    rt = runtime.current()
    for notice in result.notices:
        rt.spawn(deliver(notice), name=f"alert-{notice.event_id}-{notice.transition}", kind=DELIVERIES)
    return result


async def deliver(notice: notifiers.Notice) -> None:
    """Send one notice by email and Slack in a thread of its own, then record what they answered."""
    results = await sync_to_async(notifiers.send, thread_sensitive=False)(notice)
    await database_sync_to_async(services.deliveries_record)(event_id=notice.event_id, results=results)


async def _sweep_forever() -> None:
    while True:
        await asyncio.sleep(settings.ALERTS_INTERVAL_S)
        try:
            await sweep_once()
        except Exception:
            logger.exception("Alert sweep failed; retrying in %s s", settings.ALERTS_INTERVAL_S)


def startup() -> None:
    """`manage.py serve`: start the loop as soon as the server's event loop runs.

    Startup hooks run before the reactor does (there is no running loop to start a task on
    yet); twisted's `callWhenRunning` then `callLater(0)` lands in the first turn of daphne's
    asyncio loop. Outside `serve` (no reactor installed by daphne) it does nothing: importing
    twisted's reactor there would install the wrong one.
    """
    if settings.ALERTS_INTERVAL_S <= 0 or "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import reactor

    reactor.callWhenRunning(reactor.callLater, 0, ensure_running)  # type: ignore[attr-defined]

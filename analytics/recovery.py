"""The server's periodic analytics sweep: recover sessions whose tracker died, refresh rollups.

Each server process runs one sweep loop (started by the first chat connection) every
`ANALYTICS_RECOVERY_INTERVAL_S` seconds (0 turns it off), and `manage.py serve` runs one pass
at startup. Passes are idempotent, so several processes sweeping at once only repeat work.
`python manage.py recover_chat_analytics` runs the same pass by hand or from cron.

Which replies and sessions have nobody left to finish or write them is decided by process
liveness (`assistant.liveness`): those of dead processes are ended and rebuilt at once, and the
grace window only spares sessions of processes that are alive (or unknown).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings

from analytics import services
from assistant import liveness
from project import runtime

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep did."""

    orphaned_replies: int
    sessions: int
    days: int


def sweep_once(*, grace_s: int | None = None, sole_process: bool = False) -> SweepResult:
    """One pass: interrupt orphaned replies, rebuild stale sessions, refresh changed days.

    `sole_process` (the startup pass of a server on the in-memory layer): every reply and
    tracker found belonged to a dead predecessor, so nothing is left to a grace window.
    """
    grace = settings.ANALYTICS_RECOVERY_GRACE_S if grace_s is None else grace_s
    recovered = services.analytics_recover(
        grace=timedelta(seconds=grace),
        idle=timedelta(minutes=settings.RESOLUTION_IDLE_MINUTES),
        sole_process=sole_process,
    )
    days = services.rollups_refresh()
    return SweepResult(orphaned_replies=recovered.orphaned_replies, sessions=recovered.sessions, days=len(days))


def ensure_running() -> None:
    """Start this event loop's sweep loop, once (a no-op when the interval is 0)."""
    if settings.ANALYTICS_RECOVERY_INTERVAL_S <= 0:
        return
    runtime.current().service("analytics-sweep", _sweep_forever)


async def stop() -> None:
    """Stop this event loop's sweep loop (tests and shutdown)."""
    await runtime.current().stop_service("analytics-sweep")


async def _sweep_forever() -> None:
    sweep = database_sync_to_async(sweep_once)
    while True:
        await asyncio.sleep(settings.ANALYTICS_RECOVERY_INTERVAL_S)
        try:
            await sweep()
        except Exception:
            logger.exception("Analytics sweep failed; retrying in %s s", settings.ANALYTICS_RECOVERY_INTERVAL_S)


def startup() -> None:
    """Rebuild analytics of sessions a previous (crashed) server left behind, before serving.

    Run by `manage.py serve` (a `project.runtime` startup hook). A failure is logged, not
    raised: a broken analytics table must not keep the chat down.
    """
    try:
        result = sweep_once(sole_process=liveness.sole_process())
    except Exception:
        logger.exception("Analytics recovery at startup failed; the periodic sweep will retry")
        return
    if result.sessions or result.orphaned_replies:
        logger.info(
            "Analytics recovery at startup: %d session(s) rebuilt, %d orphaned repl(ies) interrupted",
            result.sessions,
            result.orphaned_replies,
        )

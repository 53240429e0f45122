"""Analyse each live session once it closes (ANALYSIS_ON_CLOSE), in the background.

Two triggers, because no single event covers both ways a conversation ends:
* `SessionEnded` (the visitor ended it, in the process that served it): analysed at once,
  after this process's reply to the session, if any, has finished;
* idle sessions are never "ended": the analytics sweep marks them closed once quiet for
  RESOLUTION_IDLE_MINUTES. A sweep of this module (every ANALYTICS_RECOVERY_INTERVAL_S, started
  with the first session like the analytics sweep) picks up the finished sessions this process
  served in the last day that have no current analysis. Only this process's own
  (`served_by`): processes do not analyse each other's sessions twice.

Never in the chat's way: the work runs as runtime tasks of kind `analysis` (drained at
shutdown and in tests), at most ANALYSIS_CONCURRENCY at once per process, the provider call
with `probe=False`; at most QUEUE_MAX sessions wait, beyond that one is dropped with a log line
(`manage.py analyze_conversations` catches up on anything missed).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from analytics.intelligence import llm, runner, selectors
from assistant import events, liveness
from assistant.replies.runtime import registry
from project import runtime

logger = logging.getLogger(__name__)

KIND = runtime.ANALYSIS
QUEUE_MAX = 200
SWEEP_BATCH = 100
SWEEP_WINDOW = timedelta(days=1)


def connect() -> None:
    """Subscribe the hook to the chat (from `analytics.subscribers.connect`)."""
    events.subscribe(events.SessionEnded, session_ended)
    events.subscribe(events.SessionOpened, session_opened)


def enabled() -> bool:
    """ANALYSIS_ON_CLOSE, with auto = a cloud provider is configured."""
    if settings.ANALYSIS_ON_CLOSE == "auto":
        return bool(llm.cloud_providers())
    return settings.ANALYSIS_ON_CLOSE == "true"


def session_ended(event: events.SessionEnded) -> None:
    """The visitor ended the conversation: analyse it."""
    schedule(event.session_pk)


def session_opened(event: events.SessionOpened) -> None:
    """A session is served here: make sure the idle sweep runs (a no-op when off)."""
    if settings.ANALYTICS_RECOVERY_INTERVAL_S > 0 and enabled():
        runtime.current().service("analysis-sweep", _sweep_forever)


def _in_flight() -> set[int]:
    return runtime.current().state("analysis.in_flight", set)  # type: ignore[no-any-return]


def schedule(session_pk: int) -> bool:
    """Queue the session's analysis in the background; False when off, queued already, or full."""
    if not enabled():
        return False
    waiting = _in_flight()
    if session_pk in waiting:
        return False
    if len(waiting) >= QUEUE_MAX:
        logger.warning("Analysis queue full (%d); session %s left to analyze_conversations", QUEUE_MAX, session_pk)
        return False
    waiting.add(session_pk)
    runtime.current().spawn(_analyse(session_pk), name=f"analysis-{session_pk}", kind=KIND)
    return True


async def drain() -> None:
    """Wait for the analyses in flight (tests and shutdown)."""
    await runtime.current().wait(KIND)


async def _analyse(session_pk: int) -> None:
    limit = runtime.current().state("analysis.limit", lambda: asyncio.Semaphore(settings.ANALYSIS_CONCURRENCY))
    try:
        job = registry.get(session_pk)
        if job is not None and job.task is not None:
            await asyncio.wait({job.task})  # the visitor's reply first; its text is part of the transcript
        async with limit:
            await runner.analyse_session(session_pk, use_llm=bool(llm.cloud_providers()))
    except Exception:
        logger.exception("Analysis of closed session %s failed; analyze_conversations will retry it", session_pk)
    finally:
        _in_flight().discard(session_pk)


def idle_candidates(*, process_id: str, limit: int = SWEEP_BATCH) -> list[int]:
    """Finished sessions this process served in the last day that have no current analysis."""
    recent = selectors.finished_sessions().filter(
        served_by=process_id, analytics__last_activity_at__gte=timezone.now() - SWEEP_WINDOW
    )
    return list(selectors.needing_analysis(recent).order_by("pk").values_list("pk", flat=True)[:limit])


async def sweep_once() -> int:
    """Queue the analysis of this process's finished, unanalysed sessions; how many were queued."""
    if not enabled():
        return 0
    pks = await database_sync_to_async(idle_candidates)(process_id=liveness.PROCESS_ID)
    return sum(schedule(pk) for pk in pks)


async def _sweep_forever() -> None:
    while True:
        await asyncio.sleep(settings.ANALYTICS_RECOVERY_INTERVAL_S)
        try:
            await sweep_once()
        except Exception:
            logger.exception("Analysis sweep failed; retrying in %s s", settings.ANALYTICS_RECOVERY_INTERVAL_S)

"""Analyse conversations concurrently: one unit of work per session, ANALYSIS_CONCURRENCY at once.

A unit reads the session (one `database_sync_to_async`), skips it when its content hash and
ANALYSIS_VERSION match the stored analysis (unless forced), asks the model (or goes offline),
and stores the result with its provider attempts (a second `database_sync_to_async`, one
transaction). Nothing is shared between units but the semaphore, so a failed unit is counted
and the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings

from analytics import taxonomy
from analytics.intelligence import llm, offline, selectors, services
from analytics.intelligence.schema import ANALYSIS_VERSION, Answer
from analytics.intelligence.transcript import capped, content_hash, normalise, render
from assistant import services as chat_services
from assistant.models import ProviderCall

logger = logging.getLogger(__name__)

LLM, OFFLINE, SKIPPED, FAILED = "llm", "offline", "skipped", "failed"


@dataclass(slots=True)
class Summary:
    """What a batch did, by outcome, and the provider attempts it stored."""

    llm: int = 0
    offline: int = 0
    skipped: int = 0
    failed: int = 0
    calls: int = 0

    def add(self, outcome: str, calls: int) -> None:
        """Count one unit."""
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.calls += calls


def from_answer(answer: Answer, provider: str) -> offline.Result:
    """The model's answer as a result: every value's method is `llm:<provider>`."""
    known = {name for name, _ in taxonomy.get().topics}
    method = f"llm:{provider}"
    fields = ("language", "sentiment", "predicted_satisfaction", "predicted_resolved", "topics", "summary")
    return offline.Result(
        language=answer.language,
        sentiment=round(answer.sentiment, 4),
        predicted_satisfaction=answer.satisfaction,
        predicted_resolved=answer.resolved,
        topics=answer.topics,
        new_topics=[topic for topic in answer.topics if topic not in known],
        summary=answer.summary,
        needs_follow_up=answer.needs_follow_up,
        methods={name: method for name in (*fields, "needs_follow_up")},
    )


async def analyse_session(session_pk: int, *, force: bool = False, use_llm: bool = True) -> tuple[str, int]:
    """Analyse one session; (outcome, provider attempts stored)."""
    conversation = await database_sync_to_async(selectors.conversation)(session_pk)
    lines = normalise(conversation.lines)
    digest = content_hash(lines)
    if not force and conversation.stored_hash == digest and conversation.stored_version == ANALYSIS_VERSION:
        await database_sync_to_async(services.analysis_confirm)(session_pk=session_pk)
        return SKIPPED, 0
    outcome = llm.Outcome(error="no cloud provider configured")
    if use_llm and lines:
        topics = [name for name, _ in taxonomy.get().topics]
        outcome = await llm.analyse(capped(render(lines), settings.ANALYSIS_MAX_CHARS), topics=topics)
    elif not lines:
        outcome.error = "no messages"
    calls = [
        chat_services.call_record(attempt, message_id=None, feature=ProviderCall.Feature.ANALYSIS)
        for attempt in outcome.attempts
    ]
    if outcome.answer is not None:
        result, method = from_answer(outcome.answer, outcome.provider), LLM
    else:
        result, method = offline.analyse(lines, locale=conversation.locale), OFFLINE
    await database_sync_to_async(services.analysis_store)(
        session_pk=session_pk,
        content_hash=digest,
        result=result,
        method=method,
        provider=outcome.provider,
        model=outcome.model,
        error="" if method == LLM else outcome.error,
        calls=calls,
    )
    return method, len(calls)


async def analyse_many(
    session_pks: Iterable[int],
    *,
    force: bool = False,
    concurrency: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Summary:
    """Analyse sessions, at most `concurrency` (ANALYSIS_CONCURRENCY) at once."""
    use_llm = bool(llm.cloud_providers())
    limit = asyncio.Semaphore(concurrency or settings.ANALYSIS_CONCURRENCY)
    summary = Summary()

    async def unit(session_pk: int) -> None:
        async with limit:
            try:
                outcome, calls = await analyse_session(session_pk, force=force, use_llm=use_llm)
            except Exception:
                logger.exception("Analysis of session %s failed", session_pk)
                outcome, calls = FAILED, 0
        summary.add(outcome, calls)
        if progress is not None:
            progress(outcome)

    # Bounded fan-out: tasks are created a window at a time, not 10,000 at once.
    pending: set[asyncio.Task[None]] = set()
    window = 8 * (concurrency or settings.ANALYSIS_CONCURRENCY)
    for session_pk in session_pks:
        pending.add(asyncio.ensure_future(unit(session_pk)))
        if len(pending) >= window:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    if pending:
        await asyncio.wait(pending)
    return summary

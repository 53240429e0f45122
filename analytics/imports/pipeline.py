"""An import from start to end: parse, clean, filter by date, write in batches, roll up, record the run.

The command, the upload page and the API all call `import_stream`; they differ only in where
the bytes come from and how progress is shown.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any, BinaryIO

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from analytics.imports import cleaning, parsers, writer
from analytics.imports.records import MAX_MESSAGES, Conversation, Problem
from analytics.imports.summary import Summary
from analytics.models import ChatAnalytics, ImportedConversation, ImportRun
from analytics.services import rollup_day, visitor_returns_refresh
from assistant import services
from assistant.models import ChatMessage, ChatSession

logger = logging.getLogger(__name__)

#: Threads (and connections) rebuilding the rollups after a background import.
ROLLUP_THREADS = 2
#: Worker processes computing the analytics rows of a background import (sentiment and language
#: detection: two thirds of an import's CPU) while this process parses and the writer writes.
ANALYSIS_PROCESSES = 1
#: Conversations written from which the planner's statistics are refreshed before the reads that
#: follow (Postgres): after a bulk load they describe a much smaller table.
ANALYZE_AFTER = 5_000


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How to import: the format, the dates kept, and the switches of the command."""

    format: str
    filename: str = ""
    via: str = "command"  # command, upload or api
    start_date: date | None = None
    end_date: date | None = None
    force: bool = False
    dry_run: bool = False
    strict: bool = False
    started_by: Any = None  # the user, for the upload page
    #: Commit batches on a second thread and connection while the next is prepared (Postgres, not
    #: strict, not a dry run). The command asks for it; requests keep to their own connection.
    background: bool = False


class ImportAborted(Exception):
    """`--strict` met a bad record: nothing was written."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.where}: {problem.reason}: {problem.detail}")
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The run's id and its summary."""

    run_id: int
    summary: Summary


def import_stream(
    stream: BinaryIO, options: ImportOptions, *, progress: Callable[[int], None] | None = None
) -> ImportResult:
    """Import a file (a binary stream); `progress(bytes)` as it is read.

    Each batch is its own transaction, so a failure keeps what was written before it (a re-run
    finds those unchanged); with `strict` the whole import is one transaction, rolled back at
    the first bad record (`ImportAborted`). A dry run reads and compares everything and writes
    only its `ImportRun` row (dry_run set), so its summary is the real one.
    """
    run = ImportRun.objects.create(
        format=options.format,
        filename=options.filename[:255],
        via=options.via,
        started_by=options.started_by,
        dry_run=options.dry_run,
    )
    summary = Summary(format=options.format, dry_run=options.dry_run)
    reader = parsers.CountingReader(stream, progress)
    try:
        if options.strict and not options.dry_run:
            with transaction.atomic():
                _run(reader, options, summary)
        else:
            _run(reader, options, summary)
    except ImportAborted as aborted:
        summary.bytes_read = reader.count
        _finish(run, summary, ImportRun.Status.FAILED, error=str(aborted))
        raise
    except Exception as error:
        summary.bytes_read = reader.count
        _finish(run, summary, ImportRun.Status.FAILED, error=f"{type(error).__name__}: {str(error)[:300]}")
        raise
    summary.bytes_read = reader.count
    _finish(run, summary, ImportRun.Status.DONE)
    return ImportResult(run.pk, summary)


def _run(reader: parsers.CountingReader, options: ImportOptions, summary: Summary) -> None:
    source = f"import:{options.format}"
    now = timezone.now()
    clock = time.perf_counter()
    autoresponses = cleaning.Autoresponses(settings.IMPORT_AUTORESPONSE_PATTERNS)
    days: set[date] = set()
    batch: list[writer.Ready] = []
    seen_in_batch: set[str] = set()

    background = pool = None
    pending: list[tuple[writer.Plan, Any]] = []  # a plan whose analytics rows a worker computes
    if options.background and services.copying() and not options.strict and not options.dry_run:
        # The worker is forked first, before the writer's thread exists (forking a threaded
        # process is unsafe); it never touches the database.
        pool = multiprocessing.get_context("fork").Pool(ANALYSIS_PROCESSES)
        background = writer.BackgroundWriter(source=source, now=now)

    def hand_over() -> None:
        """The computing plan, once its rows are ready, to the writer."""
        if pending and background is not None:
            plan, rows = pending.pop()
            plan.rows = rows.get()
            background.submit(plan)

    def flush() -> None:
        if background is not None:
            hand_over()
            background.wait_for([item.conversation.external_id for item in batch])
        plan = writer.plan_batch(
            batch, source=source, force=options.force, dry_run=options.dry_run, now=now, rows=pool is None
        )
        summary.created += len(plan.new)
        summary.updated += len(plan.changed)
        summary.unchanged += plan.unchanged
        summary.messages += plan.messages
        if pool is not None:
            pending.append((plan, pool.apply_async(writer.analytics_rows, (plan.sessions, now))))
        elif not options.dry_run:
            days.update(writer.commit_plan(plan, source=source, now=now))
        batch.clear()
        seen_in_batch.clear()

    try:
        for item in parsers.parse(options.format, reader, gap_hours=settings.IMPORT_CONVERSATION_GAP_HOURS):
            if isinstance(item, Problem):
                _problem(item, options, summary)
                continue
            ready = _prepare(item, options, summary, autoresponses)
            if ready is None:
                continue
            if ready.conversation.external_id in seen_in_batch:
                flush()  # the same id twice close together: the second replaces the first, in order
            batch.append(ready)
            seen_in_batch.add(ready.conversation.external_id)
            if len(batch) >= writer.BATCH:
                flush()
        if batch:
            flush()
        hand_over()
    finally:
        if pool is not None:
            pool.terminate() if pending else pool.close()
            pool.join()
        if background is not None:
            days.update(background.close())
    summary.seconds["read_and_write"] = round(time.perf_counter() - clock, 1)
    if options.dry_run:
        return
    clock = time.perf_counter()
    if summary.created + summary.updated >= ANALYZE_AFTER:
        services.tables_analyze([ChatSession, ChatMessage, ChatAnalytics, ImportedConversation])
    # First-contact resolution: the imported sessions change their customers' other sessions too.
    days.update(visitor_returns_refresh(changed=ChatAnalytics.objects.filter(updated_at__gte=now), now=now))
    summary.seconds["first_contact"] = round(time.perf_counter() - clock, 1)
    clock = time.perf_counter()
    _rollup(sorted(days), parallel=background is not None)
    summary.seconds["rollups"] = round(time.perf_counter() - clock, 1)
    summary.days = len(days)


def _rollup(days: list[date], *, parallel: bool) -> None:
    """Rebuild the rollups of `days`; on two threads (two connections) for a background import.

    Each day's rows are read outside any lock; only the replacement of its rollup rows is
    serialised (`analytics.services.rollup_day`), so two threads overlap the reads.
    """
    if not parallel or len(days) < 2:
        for day in days:
            rollup_day(day)
        return

    def work(chunk: list[date]) -> None:
        try:
            for day in chunk:
                rollup_day(day)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=ROLLUP_THREADS, thread_name_prefix="import-rollup") as pool:
        for future in [pool.submit(work, days[index::ROLLUP_THREADS]) for index in range(ROLLUP_THREADS)]:
            future.result()


def _problem(problem: Problem, options: ImportOptions, summary: Summary) -> None:
    summary.skip(problem)
    if options.strict:
        raise ImportAborted(problem)


def _prepare(
    conversation: Conversation, options: ImportOptions, summary: Summary, autoresponses: cleaning.Autoresponses
) -> writer.Ready | None:
    """A conversation cleaned, bounded and inside the dates; None (and counted) otherwise."""
    summary.conversations += 1
    if len(conversation.messages) > MAX_MESSAGES:
        _problem(
            Problem(
                "too_many_messages",
                conversation.where,
                f"{len(conversation.messages)} messages (at most {MAX_MESSAGES} per conversation)",
            ),
            options,
            summary,
        )
        return None
    cleaned = cleaning.clean(conversation, autoresponses)
    summary.autoresponses += cleaned.autoresponses
    summary.duplicates += cleaned.duplicates
    if not cleaned.messages:
        empty = Problem("no_messages", conversation.where, "nothing left after dropping autoresponses")
        _problem(empty, options, summary)
        return None
    day = timezone.localdate(cleaned.messages[0].at)
    if (options.start_date and day < options.start_date) or (options.end_date and day > options.end_date):
        summary.outside_dates += 1
        return None
    return writer.Ready(conversation, cleaned.messages, cleaning.content_hash(conversation, cleaned.messages))


def _finish(run: ImportRun, summary: Summary, status: str, *, error: str = "") -> None:
    data = summary.as_dict()
    if error:
        data["error"] = error
    ImportRun.objects.filter(pk=run.pk).update(status=status, summary=data, finished_at=timezone.now())
    kind = f"{summary.format}{' dry run' if summary.dry_run else ''}"
    logger.info("Import %d (%s) %s: %s", run.pk, kind, status, "; ".join(summary.lines()[:2]))

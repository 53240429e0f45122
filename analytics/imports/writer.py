"""One batch of cleaned conversations into the database, and their analytics computed in memory.

Per batch of `BATCH` conversations: one query finds which are already imported (and their
hash), the new and changed ones are written in one transaction (`assistant.services.
imported_sessions_write`: sessions, messages, ratings), their `ImportedConversation` rows
created or updated, and their `ChatAnalytics` rows computed with `SessionStats` (the code the
live tracker and every rebuild use) from the file's values and upserted in bulk
(`session_analytics_write`), never one rebuild per session.
"""

from __future__ import annotations

import queue
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from analytics import sentiment
from analytics.imports.records import Conversation, Message
from analytics.models import ChatAnalytics, ImportedConversation
from analytics.services import session_analytics_write
from analytics.session_stats import LANGUAGE_SAMPLE_CHARS, SessionStats
from assistant import services
from assistant.models import ChatSession

#: Conversations per batch: one lookup, one transaction.
BATCH = 500


@dataclass(slots=True)
class Ready:
    """A conversation that passed the cleaning, with its kept messages and hash."""

    conversation: Conversation
    messages: list[Message]
    content_hash: str


def existing(source: str, external_ids: list[str]) -> dict[str, tuple[int, str]]:
    """The already imported conversations among `external_ids`: external id → (session pk, hash)."""
    return {
        row[0]: (row[1], row[2])
        for row in ImportedConversation.objects.filter(source=source, external_id__in=external_ids).values_list(
            "external_id", "session_id", "content_hash"
        )
    }


@dataclass(slots=True)
class Plan:
    """A batch decided: what to write (sessions with their analytics rows, in order) and the counts."""

    new: list[Ready]
    changed: list[tuple[Ready, int]]
    unchanged: int
    messages: int
    sessions: list[services.ImportedSession] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def external_ids(self) -> set[str]:
        """The conversations this plan writes."""
        return {item.conversation.external_id for item in self.new} | {
            item.conversation.external_id for item, _ in self.changed
        }


def plan_batch(
    batch: list[Ready], *, source: str, force: bool, dry_run: bool, now: datetime, rows: bool = True
) -> Plan:
    """Find which conversations of `batch` are new, changed or unchanged (one query), and compute
    the analytics rows of those to write (the CPU-heavy part; skipped on a dry run, and left to
    the caller with `rows=False`: `analytics_rows` in another process)."""
    found = existing(source, [item.conversation.external_id for item in batch])
    plan = Plan([], [], 0, 0)
    for item in batch:
        known = found.get(item.conversation.external_id)
        if known is None:
            plan.new.append(item)
        elif force or known[1] != item.content_hash:
            plan.changed.append((item, known[0]))
        else:
            plan.unchanged += 1
    plan.messages = sum(len(item.messages) for item in plan.new) + sum(len(item.messages) for item, _ in plan.changed)
    if dry_run:
        return plan
    plan.sessions = [_session(item, source, None) for item in plan.new]
    plan.sessions += [_session(item, source, pk) for item, pk in plan.changed]
    if rows:
        plan.rows = analytics_rows(plan.sessions, now)
    return plan


def analytics_rows(sessions: list[services.ImportedSession], now: datetime) -> list[dict[str, Any]]:
    """The `ChatAnalytics` fields of each session, in order (pure computation: runs in a worker process)."""
    return [_analytics_row(session, now) for session in sessions]


def commit_plan(plan: Plan, *, source: str, now: datetime) -> set[date]:
    """Write a plan in one transaction; the local days whose rollups it changed (old and new)."""
    if not plan.sessions:
        return set()
    changed = plan.changed
    with transaction.atomic():
        old_days = set(
            ChatAnalytics.objects.filter(session_id__in=[pk for _, pk in changed])
            .values_list("day", flat=True)
            .distinct()
            .order_by()
        )
        pks = services.imported_sessions_write(sessions=plan.sessions, now=now)
        links = [
            {
                "session": pk,
                "source": source,
                "external_id": item.conversation.external_id,
                "content_hash": item.content_hash,
                "metadata": item.conversation.metadata,
                "imported_at": now,
                "updated_at": now,
            }
            for item, pk in zip(plan.new, pks, strict=False)
        ]
        if services.copying():
            services.rows_copy(ImportedConversation, links)
        else:
            ImportedConversation.objects.bulk_create(
                [ImportedConversation(**dict(link, session_id=link.pop("session"))) for link in links], batch_size=1000
            )
        if changed:
            stored = list(
                ImportedConversation.objects.filter(session_id__in=[pk for _, pk in changed]).only("pk", "session_id")
            )
            by_session = {item_pk: item for item, item_pk in changed}
            for link in stored:
                ready = by_session[link.session_id]
                link.content_hash = ready.content_hash
                link.metadata = ready.conversation.metadata
                link.updated_at = now
            ImportedConversation.objects.bulk_update(stored, ["content_hash", "metadata", "updated_at"], batch_size=500)
        rows = dict(zip(pks, plan.rows, strict=True))
        _analytics_write(rows, new_sessions=set(pks[: len(plan.new)]), now=now)
    return old_days | {row["day"] for row in plan.rows}


class BackgroundWriter:
    """Commits plans on its own thread and database connection while the caller plans the next.

    Postgres maintains the indexes of a batch's rows (most of a write's time) on its own core
    while this process computes the next batch's analytics: the driver releases the GIL while
    it waits. At most `QUEUED` plans wait, so memory stays bounded. A plan that would write a
    conversation still in flight waits for the queue to drain (`wait_for`), so the caller's
    lookup always sees it.
    """

    QUEUED = 2

    def __init__(self, *, source: str, now: datetime) -> None:
        self.source, self.now = source, now
        self.days: set[date] = set()
        self.error: BaseException | None = None
        self._queue: queue.Queue[Plan | None] = queue.Queue(maxsize=self.QUEUED)
        self._inflight: dict[str, int] = {}  # external id → how many queued plans write it
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="import-writer", daemon=True)
        self._thread.start()

    def submit(self, plan: Plan) -> None:
        """Queue a plan (blocks while `QUEUED` wait); raises the writer's error, if it failed."""
        self._raise()
        with self._lock:
            for external_id in plan.external_ids:
                self._inflight[external_id] = self._inflight.get(external_id, 0) + 1
        self._queue.put(plan)

    def wait_for(self, external_ids: list[str]) -> None:
        """Drain the queue first if one of `external_ids` is still being written."""
        with self._lock:
            busy = any(external_id in self._inflight for external_id in external_ids)
        if busy:
            self._queue.join()
            self._raise()

    def close(self) -> set[date]:
        """Finish every queued plan; the days written; raises the writer's error, if it failed."""
        self._queue.put(None)
        self._thread.join()
        self._raise()
        return self.days

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _work(self) -> None:
        try:
            while (plan := self._queue.get()) is not None:
                try:
                    if self.error is None:
                        self.days |= commit_plan(plan, source=self.source, now=self.now)
                except BaseException as error:  # handed to the caller's thread
                    self.error = error
                finally:
                    with self._lock:
                        for external_id in plan.external_ids:
                            left = self._inflight.pop(external_id) - 1
                            if left:
                                self._inflight[external_id] = left
                    self._queue.task_done()
            self._queue.task_done()
        finally:
            connection.close()


def _analytics_write(rows: dict[int, dict[str, Any]], *, new_sessions: set[int], now: datetime) -> None:
    """The sessions' `ChatAnalytics` rows: those of sessions created in this transaction by COPY
    on Postgres (they cannot have a row yet; the multi-row upsert's statements cost more in the
    driver's parameter parsing than in the database), the others by `session_analytics_write`."""
    if not services.copying():
        session_analytics_write(rows=rows, now=now)
        return
    fresh = [
        dict(fields, id=uuid.uuid4(), session=pk, created_at=now, updated_at=now, visitor_returned=None)
        for pk, fields in rows.items()
        if pk in new_sessions
    ]
    services.rows_copy(ChatAnalytics, fresh)
    others = {pk: fields for pk, fields in rows.items() if pk not in new_sessions}
    if others:
        session_analytics_write(rows=others, now=now)


def _session(item: Ready, source: str, pk: int | None) -> services.ImportedSession:
    conversation = item.conversation
    return services.ImportedSession(
        source=source,
        external_user_id=conversation.customer_id,
        external_user_name=conversation.customer_name,
        messages=[services.ImportedMessage(m.role, m.text, m.at, m.author) for m in item.messages],
        rating=conversation.rating,
        resolved=conversation.resolved,
        session_pk=pk,
    )


def _analytics_row(session: services.ImportedSession, now: datetime) -> dict[str, Any]:
    """The session's `ChatAnalytics` fields, observed as a rebuild from its rows would observe them."""
    stats = SessionStats(
        session_pk=session.session_pk or 0,  # not part of the row: the pk may not be known yet
        started_at=session.created_at,
        user_type=ChatSession.UserType.CLIENT,
        human_channel=True,
    )
    _settle_language(stats, [m.text for m in session.messages if m.role == "user"])
    for seq, message in enumerate(session.messages, start=1):
        if message.role == "user":
            stats.observe_user_message(seq=seq, text=message.text, at=message.created_at)
        elif message.role == "agent":
            stats.observe_agent_message(seq=seq, at=message.created_at)
        else:
            stats.observe_reply(seq=seq, status="complete", at=message.created_at)
    if session.rating is not None:
        stats.observe_rating(score=session.rating, resolved=session.resolved, at=session.closed_at)
    stats.observe_end(at=session.closed_at)
    return stats.row(now)


def _settle_language(stats: SessionStats, user_texts: list[str]) -> None:
    """Detect the conversation's language once, on the sample the live tracker would settle on.

    Live, `SessionStats` re-detects on its growing sample after every visitor message until the
    sample holds `LANGUAGE_SAMPLE_CHARS`, re-scoring earlier messages when the language changes;
    the end state is every message scored in the language of that final sample. The whole
    conversation is known here, so that sample is built up front and detected once (the detector
    was two thirds of the import's CPU), with the same result.
    """
    sample = ""
    for text in user_texts:
        sample = f"{sample} {text}".strip()[:LANGUAGE_SAMPLE_CHARS]
        if len(sample) >= LANGUAGE_SAMPLE_CHARS:
            break
    if sample:
        stats.language = sentiment.detect(sample, hint=stats.locale or settings.LANGUAGE_CODE)
    stats.language_sample = sample
    stats.pending_texts = None

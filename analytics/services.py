"""Analytics writes: per-session rows (from the tracker or rebuilt from the chat tables), recovery
of sessions whose tracker died, and the daily rollups.

Everything here is idempotent: rebuilding a session or a day twice gives the same rows, so the
server's periodic sweep, `recover_chat_analytics` and `rollup_analytics` may overlap safely.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, Max, OuterRef, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from analytics import rollup, sql
from analytics.models import ChatAnalytics, DailyProviderRollup, DailySessionRollup, RollupState
from analytics.session_stats import SessionStats
from assistant.models import ChatEvent, ChatMessage, ChatSession, Feedback, Handoff, ProviderCall, SessionRating
from assistant.services import processes_dead, replies_interrupt_orphaned

logger = logging.getLogger(__name__)

#: Rows written after a refresh started but committed later are caught by re-reading this much.
ROLLUP_OVERLAP = timedelta(seconds=30)
ROLLUP_CALL_ID_OVERLAP = 10_000
_SESSION_FIELDS = ("pk", "created_at", "user_type", "status", "closed_at", "locale", "source")

Progress = Callable[[int], None]


# --- One session ----------------------------------------------------------------------------
def session_stats_load(*, session_pk: int) -> SessionStats | None:
    """Replay a session's stored rows into a `SessionStats`; None if the session is gone.

    Six indexed reads of one session's rows. Used at recovery and when a tab resumes a session,
    so the tracker continues from what is stored rather than from zero.
    """
    session = ChatSession.objects.filter(pk=session_pk).values(*_SESSION_FIELDS).first()
    if session is None:
        return None
    return _replay(session, *_session_rows([session_pk]).get(session_pk, ([], [], [], None, [], [])))


Rows = list[dict[str, Any]]


def _session_rows(session_pks: list[int]) -> dict[int, tuple[Rows, Rows, Rows, Any, Rows, Rows]]:
    """Messages, calls, feedback, rating, events and handoffs of several sessions, in 6 queries."""
    out: dict[int, Any] = {pk: ([], [], [], None, [], []) for pk in session_pks}
    for message in (
        ChatMessage.objects.filter(session_id__in=session_pks)
        .order_by("session_id", "seq")
        .values(
            "session_id",
            "pk",
            "seq",
            "role",
            "text",
            "status",
            "provider",
            "ttft_ms",
            "duration_ms",
            "cached",
            "knowledge_sections",
            "created_at",
            "finished_at",
        )
    ):
        out[message["session_id"]][0].append(message)
    for call in ProviderCall.objects.filter(session_id__in=session_pks, feature=ProviderCall.Feature.CHAT_REPLY).values(
        "session_id", "message_id", "outcome", "fallback_from"
    ):
        out[call["session_id"]][1].append(call)
    for item in Feedback.objects.filter(session_id__in=session_pks).values(
        "session_id", "message__public_id", "rating", "updated_at"
    ):
        out[item["session_id"]][2].append(item)
    for rating in SessionRating.objects.filter(session_id__in=session_pks).values(
        "session_id", "score", "resolved", "updated_at"
    ):
        pk = rating["session_id"]
        out[pk] = (out[pk][0], out[pk][1], out[pk][2], rating, out[pk][4], out[pk][5])
    for event in (
        ChatEvent.objects.filter(session_id__in=session_pks).order_by("pk").values("session_id", "name", "created_at")
    ):
        out[event["session_id"]][4].append(event)
    for handoff in (
        Handoff.objects.filter(session_id__in=session_pks)
        .order_by("pk")
        .values("session_id", "pk", "requested_at", "assigned_at", "first_response_at", "ended_at", "outcome")
    ):
        out[handoff["session_id"]][5].append(handoff)
    return out


def _replay(
    session: dict[str, Any],
    messages: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    feedback: list[dict[str, Any]],
    rating: dict[str, Any] | None,
    events: list[dict[str, Any]],
    handoffs: list[dict[str, Any]],
) -> SessionStats:
    stats = SessionStats(
        session_pk=session["pk"],
        started_at=session["created_at"],
        user_type=session["user_type"],
        locale=session["locale"],
        human_channel=session["source"].startswith("import:"),
    )
    failovers: dict[int, int] = defaultdict(int)
    errors: dict[int, int] = defaultdict(int)
    for call in calls:
        if call["message_id"] is None:
            continue
        failovers[call["message_id"]] += 1 if call["fallback_from"] else 0
        errors[call["message_id"]] += 1 if call["outcome"] in {"error", "interrupted"} else 0
    for handoff in handoffs:  # before the messages: an agent message may answer an open request
        stats.observe_handoff(
            key=handoff["pk"],
            requested_at=handoff["requested_at"],
            assigned_at=handoff["assigned_at"],
            first_response_at=handoff["first_response_at"],
            ended_at=handoff["ended_at"],
            outcome=handoff["outcome"],
        )
    for message in messages:
        role = message["role"]
        if role == ChatMessage.Role.USER:
            stats.observe_user_message(seq=message["seq"], text=message["text"], at=message["created_at"])
        elif role == ChatMessage.Role.AGENT:
            stats.observe_agent_message(seq=message["seq"], at=message["created_at"])
        elif role == ChatMessage.Role.ASSISTANT:
            if message["status"] == ChatMessage.Status.STREAMING:
                stats.last_seq = max(stats.last_seq, message["seq"])  # counted when it ends
                continue
            stats.observe_reply(
                seq=message["seq"],
                status=message["status"],
                provider=message["provider"],
                ttft_ms=message["ttft_ms"],
                duration_ms=message["duration_ms"],
                cached=message["cached"],
                sources=message["knowledge_sections"],
                failovers=failovers[message["pk"]],
                errors=errors[message["pk"]],
                at=message["finished_at"] or message["created_at"],
            )
    for item in feedback:
        stats.observe_feedback(message_id=str(item["message__public_id"]), rating=item["rating"], at=item["updated_at"])
    if rating is not None:
        stats.observe_rating(score=rating["score"], resolved=rating["resolved"], at=rating["updated_at"])
    for event in events:
        stats.observe_event(name=event["name"], at=event["created_at"])
    if session["status"] == ChatSession.Status.CLOSED:
        stats.observe_end(at=session["closed_at"])
    return stats


def session_analytics_save(*, stats: SessionStats, now: datetime | None = None) -> None:
    """Write a session's `ChatAnalytics` row from its stats."""
    now = now or timezone.now()
    session_analytics_write(rows={stats.session_pk: stats.row(now)}, now=now)


def session_analytics_write(*, rows: dict[int, dict[str, Any]], now: datetime | None = None) -> int:
    """Upsert rows computed elsewhere (trackers compute theirs on their loop, recovery in bulk).

    The one write path of `ChatAnalytics`: hand-written multi-row upserts (`analytics.sql`).
    Rows of sessions with no message yet are not written (not conversations); sessions deleted
    meanwhile (by retention) are skipped. Returns how many rows were written.
    """
    now = now or timezone.now()
    rows = {pk: fields for pk, fields in rows.items() if fields["last_seq"] > 0}
    if not rows:
        return 0
    try:
        with transaction.atomic():
            sql.upsert(rows=rows, now=now)
    except IntegrityError:
        existing = set(ChatSession.objects.filter(pk__in=list(rows)).values_list("pk", flat=True))
        rows = {pk: fields for pk, fields in rows.items() if pk in existing}
        with transaction.atomic():
            sql.upsert(rows=rows, now=now)
    return len(rows)


def session_analytics_rebuild(*, session_pk: int, now: datetime | None = None) -> bool:
    """Recompute one session's row from its stored rows; False if the session is gone."""
    stats = session_stats_load(session_pk=session_pk)
    if stats is None:
        return False
    session_analytics_save(stats=stats, now=now)
    return True


# --- Recovery -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RecoveryResult:
    """What one recovery pass did."""

    orphaned_replies: int
    sessions: int


def stale_sessions(*, now: datetime, grace: timedelta, idle: timedelta, served_by: set[str] | None = None) -> Any:
    """Sessions whose `ChatAnalytics` row is missing or behind their stored rows.

    Behind means: messages past the row's `last_seq`; feedback, a rating, events or a handoff's
    request, claim or end newer than the row; closed after the row was written; or still pending
    resolution (or open) though idle past the idle window. Changes newer than `grace` are left to a live tracker.
    `served_by` limits the search to sessions last served by those processes.
    """
    cutoff = now - grace
    row_time = OuterRef("analytics__updated_at")
    newer_feedback = Feedback.objects.filter(session=OuterRef("pk"), updated_at__gt=row_time, updated_at__lt=cutoff)
    newer_rating = SessionRating.objects.filter(session=OuterRef("pk"), updated_at__gt=row_time, updated_at__lt=cutoff)
    newer_event = ChatEvent.objects.filter(session=OuterRef("pk"), created_at__gt=row_time, created_at__lt=cutoff)
    # A reply that ended after the row while `last_seq` already covered it: completed by a process
    # that died before its checkpoint, or marked interrupted by this very pass (at `now`: hence lte).
    newer_end = ChatMessage.objects.filter(session=OuterRef("pk"), finished_at__gt=row_time, finished_at__lte=cutoff)
    # A request, claim or end of a person's part (the desk may resolve after the visitor left).
    newer_handoff = Handoff.objects.filter(
        Q(requested_at__gt=row_time, requested_at__lt=cutoff)
        | Q(assigned_at__gt=row_time, assigned_at__lt=cutoff)
        | Q(ended_at__gt=row_time, ended_at__lt=cutoff),
        session=OuterRef("pk"),
    )
    sessions = ChatSession.objects.all() if served_by is None else ChatSession.objects.filter(served_by__in=served_by)
    return sessions.filter(
        Q(analytics__isnull=True, last_seq__gt=0, last_seen_at__lt=cutoff)
        | Q(analytics__last_seq__lt=F("last_seq"), last_seen_at__lt=cutoff)
        | Q(closed_at__gt=F("analytics__updated_at"), closed_at__lt=cutoff)
        | Q(analytics__closed=False, analytics__last_activity_at__lt=now - idle)
        | Q(Exists(newer_feedback))
        | Q(Exists(newer_rating))
        | Q(Exists(newer_event))
        | Q(Exists(newer_end))
        | Q(Exists(newer_handoff))
    ).values_list("pk", flat=True)


def analytics_recover(
    *,
    grace: timedelta,
    idle: timedelta,
    all_sessions: bool = False,
    batch: int = 500,
    now: datetime | None = None,
    progress: Progress | None = None,
    total: Callable[[int], None] | None = None,
    sole_process: bool = False,
) -> RecoveryResult:
    """Rebuild the rows of sessions whose tracker died (or every session with `all_sessions`).

    First marks replies of dead processes as interrupted (`assistant.liveness`), so the rebuilt
    numbers see them as ended. `grace` spares recent sessions only while the process that last
    served them is alive (or unknown): a dead process's sessions have no tracker left to write
    them, so they are rebuilt at once. `sole_process`: this process is the only one and is
    starting, so every tracker is gone (no grace at all).
    """
    now = now or timezone.now()
    orphaned = replies_interrupt_orphaned(now=now, everything=sole_process)
    if all_sessions:
        pks = list(ChatSession.objects.order_by("pk").values_list("pk", flat=True))
    elif sole_process:
        pks = sorted(set(stale_sessions(now=now, grace=timedelta(0), idle=idle)))
    else:
        found = set(stale_sessions(now=now, grace=grace, idle=idle))
        # Only processes heard within the grace can have served sessions still inside it.
        heard = grace.total_seconds() + settings.PROCESS_DEAD_AFTER_S + settings.PROCESS_HEARTBEAT_S
        dead = processes_dead(heard_within_s=heard) if grace else set()
        if dead:
            found |= set(stale_sessions(now=now, grace=timedelta(0), idle=idle, served_by=dead))
        pks = sorted(found)
    if total is not None:
        total(len(pks))
    done = 0
    for start in range(0, len(pks), batch):
        chunk = pks[start : start + batch]
        done += _rebuild_many(chunk, now=now)
        if progress is not None:
            progress(len(chunk))
    if orphaned or done:
        logger.info("Analytics recovery: %d orphaned replies interrupted, %d sessions rebuilt", orphaned, done)
    return RecoveryResult(orphaned_replies=orphaned, sessions=done)


def _rebuild_many(session_pks: list[int], *, now: datetime) -> int:
    sessions = ChatSession.objects.filter(pk__in=session_pks).values(*_SESSION_FIELDS)
    rows = _session_rows(session_pks)
    stats = [_replay(session, *rows[session["pk"]]) for session in sessions]
    return session_analytics_write(rows={item.session_pk: item.row(now) for item in stats}, now=now)


# --- First-contact resolution ---------------------------------------------------------------
#: Visitors whose sessions are re-read per query.
RETURNS_BATCH = 500


def visitor_returns_refresh(*, changed: QuerySet[ChatAnalytics], now: datetime) -> set[date]:
    """Set `visitor_returned` on the sessions of the identified visitors of `changed` rows.

    A session of an identified visitor (`external_user_id` and user type) has returned when the
    same visitor started another session within `FCR_WINDOW_DAYS` after it began; anonymous
    sessions keep None (first-contact resolution cannot tell them apart). A new session changes
    its visitor's earlier sessions, which is why this runs in the rollup sweep (off the chat's
    path) over every session of the visitors seen, not in the tracker. Idempotent; rows whose
    flag changes get `updated_at = now`. Returns the local days of those rows, to roll up again.
    """
    window = timedelta(days=settings.FCR_WINDOW_DAYS)
    visitors = set(
        changed.exclude(session__external_user_id="")
        .values_list("session__user_type", "session__external_user_id")
        .distinct()
        .order_by()
    )
    days: set[date] = set()
    ordered = sorted(visitors)
    for start in range(0, len(ordered), RETURNS_BATCH):
        chunk = ordered[start : start + RETURNS_BATCH]
        match = Q()
        for user_type, external_id in chunk:
            match |= Q(session__user_type=user_type, session__external_user_id=external_id)
        per_visitor: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for row in (
            ChatAnalytics.objects.filter(match)
            .order_by("started_at", "session_id")
            .values("pk", "day", "started_at", "visitor_returned", "session__user_type", "session__external_user_id")
        ):
            per_visitor[(row["session__user_type"], row["session__external_user_id"])].append(row)
        flips: dict[bool, list[Any]] = {True: [], False: []}
        for rows in per_visitor.values():
            for row, following in zip(rows, [*rows[1:], None], strict=True):
                returned = following is not None and following["started_at"] - row["started_at"] <= window
                if row["visitor_returned"] is not returned:
                    flips[returned].append(row["pk"])
                    days.add(row["day"])
        for value, pks in flips.items():
            if pks:
                ChatAnalytics.objects.filter(pk__in=pks).update(visitor_returned=value, updated_at=now)
    return days


# --- Rollups --------------------------------------------------------------------------------
def rollup_day(day: date) -> None:
    """Recompute both rollups of one local day from `ChatAnalytics` and `ProviderCall`."""
    start, end = rollup.day_bounds(day)
    session_rows = rollup.session_rows(ChatAnalytics.objects.filter(day=day))
    provider_rows = rollup.provider_rows(ProviderCall.objects.filter(started_at__gte=start, started_at__lt=end), day)
    with transaction.atomic():
        _lock_rollups()
        DailySessionRollup.objects.filter(day=day).delete()
        DailyProviderRollup.objects.filter(day=day).delete()
        DailySessionRollup.objects.bulk_create(session_rows)
        DailyProviderRollup.objects.bulk_create(provider_rows)


def _lock_rollups() -> None:
    """Serialise rollup writers across processes (Postgres); SQLite writers are serial anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [0x50617231])


def rollups_refresh(*, now: datetime | None = None) -> list[date]:
    """Recompute the rollups of the days whose sessions or calls changed since the last refresh.

    Today is always recomputed (it changes all the time); other days only when a session row of
    theirs was rewritten or a provider call of theirs was stored. Returns the days recomputed.
    """
    now = now or timezone.now()
    state = RollupState.objects.order_by("pk").first() or RollupState.objects.create()
    days: set[date] = {timezone.localdate(now)}
    analytics = ChatAnalytics.objects.all()
    if state.analytics_seen_at is not None:
        analytics = analytics.filter(updated_at__gte=state.analytics_seen_at - ROLLUP_OVERLAP)
    days.update(analytics.values_list("day", flat=True).distinct().order_by())
    days.update(visitor_returns_refresh(changed=analytics, now=now))
    calls = ProviderCall.objects.filter(pk__gt=max(0, state.last_call_id - ROLLUP_CALL_ID_OVERLAP))
    last_call_id = calls.aggregate(top=Max("pk"))["top"] or state.last_call_id
    days.update(
        calls.annotate(local_day=TruncDate("started_at", tzinfo=timezone.get_current_timezone()))
        .values_list("local_day", flat=True)
        .distinct()
        .order_by()
    )
    for day in sorted(days):
        rollup_day(day)
    RollupState.objects.filter(pk=state.pk).update(analytics_seen_at=now, last_call_id=last_call_id)
    return sorted(days)


def rollups_rebuild(
    *, start: date | None = None, end: date | None = None, progress: Progress | None = None
) -> list[date]:
    """Recompute every day's rollups (or those from `start` to `end`, inclusive).

    Only a full rebuild moves the incremental refresh's bookmark (to the time it started, so
    rows written while it ran are picked up by the next refresh); a ranged one leaves it alone,
    or changes to days outside the range would be skipped.
    """
    started = timezone.now()
    visitor_returns_refresh(changed=ChatAnalytics.objects.all(), now=started)
    days = set(ChatAnalytics.objects.values_list("day", flat=True).distinct().order_by())
    days.update(
        ProviderCall.objects.annotate(local_day=TruncDate("started_at", tzinfo=timezone.get_current_timezone()))
        .values_list("local_day", flat=True)
        .distinct()
        .order_by()
    )
    if start is not None or end is not None:
        low, high = start or date.min, end or date.max
        days = {day for day in days if low <= day <= high}
        # Days in range with nothing left must lose their old rollup rows too.
        DailySessionRollup.objects.filter(day__gte=low, day__lte=high).exclude(day__in=days).delete()
        DailyProviderRollup.objects.filter(day__gte=low, day__lte=high).exclude(day__in=days).delete()
    else:
        DailySessionRollup.objects.exclude(day__in=days).delete()
        DailyProviderRollup.objects.exclude(day__in=days).delete()
    top = ProviderCall.objects.aggregate(top=Max("pk"))["top"] or 0
    for day in sorted(days):
        rollup_day(day)
        if progress is not None:
            progress(1)
    if start is None and end is None:
        state = RollupState.objects.order_by("pk").first() or RollupState.objects.create()
        RollupState.objects.filter(pk=state.pk).update(analytics_seen_at=started, last_call_id=top)
    return sorted(days)

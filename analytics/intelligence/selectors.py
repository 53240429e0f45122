"""Reads of the analysis: which sessions need one, and a session's transcript."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import F, Max, Q, QuerySet

from analytics.intelligence.schema import ANALYSIS_VERSION
from analytics.intelligence.transcript import SPEAKERS, Line
from analytics.models import ConversationAnalysis
from assistant.models import ChatMessage, ChatSession


@dataclass(frozen=True, slots=True)
class Conversation:
    """What one analysis reads: the messages, the locale hint, and the stored analysis's key."""

    session_pk: int
    lines: list[Line]
    locale: str
    stored_hash: str
    stored_version: str


def finished_sessions(
    *, since: datetime | None = None, until: datetime | None = None, source: str = ""
) -> QuerySet[ChatSession]:
    """Sessions that are over (ended, closed, or idle past the window), started in [since, until)."""
    sessions = ChatSession.objects.filter(Q(status=ChatSession.Status.CLOSED) | Q(analytics__closed=True))
    if since is not None:
        sessions = sessions.filter(created_at__gte=since)
    if until is not None:
        sessions = sessions.filter(created_at__lt=until)
    if source:
        sessions = sessions.filter(source=source)
    return sessions


def needing_analysis(sessions: QuerySet[ChatSession], *, force: bool = False) -> QuerySet[ChatSession]:
    """Those with no analysis, one of another version, or messages written since it was stored.

    A session kept here may still turn out unchanged (same content hash): the runner checks.
    """
    if force:
        return sessions
    return sessions.annotate(last_write=Max("messages__updated_at")).filter(
        Q(analysis__isnull=True) | ~Q(analysis__version=ANALYSIS_VERSION) | Q(last_write__gt=F("analysis__updated_at"))
    )


def conversation(session_pk: int) -> Conversation:
    """The session's messages in order, with its locale and the stored analysis's cache key."""
    session = ChatSession.objects.values("locale").get(pk=session_pk)
    rows = (
        ChatMessage.objects.filter(session_id=session_pk, role__in=list(SPEAKERS))
        .order_by("seq")
        .values_list("role", "text")
    )
    stored = ConversationAnalysis.objects.filter(session_id=session_pk).values("content_hash", "version").first()
    return Conversation(
        session_pk=session_pk,
        lines=[Line(role, text) for role, text in rows],
        locale=session["locale"] or "",
        stored_hash=stored["content_hash"] if stored else "",
        stored_version=stored["version"] if stored else "",
    )

"""Writes of the analysis: one `ConversationAnalysis` per session, with its provider calls."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from analytics.intelligence.offline import Result
from analytics.intelligence.schema import ANALYSIS_VERSION
from analytics.models import ChatAnalytics, ConversationAnalysis
from assistant import services as chat_services


def analysis_store(
    *,
    session_pk: int,
    content_hash: str,
    result: Result,
    method: str,
    provider: str = "",
    model: str = "",
    error: str = "",
    calls: Sequence[chat_services.ProviderCallRecord] = (),
) -> ConversationAnalysis:
    """Store the analysis and its provider attempts in one transaction, and mark the session's
    analytics row changed so the rollup sweep re-rolls its day.

    `update_or_create` on the one-to-one session: however often a session is analysed, it has
    one row; the attempts are inserted once, with it, or not at all.
    """
    now = timezone.now()
    with transaction.atomic():
        chat_services.provider_calls_record(session_pk=session_pk, calls=calls)
        analysis, _ = ConversationAnalysis.objects.update_or_create(
            session_id=session_pk,
            defaults={
                "content_hash": content_hash,
                "version": ANALYSIS_VERSION,
                "method": method,
                "provider": provider,
                "model": model[:128],
                "methods": result.methods,
                "language": result.language,
                "sentiment": result.sentiment,
                "sentiment_label": result.sentiment_label,
                "predicted_satisfaction": result.predicted_satisfaction,
                "predicted_resolved": result.predicted_resolved,
                "topics": result.topics,
                "new_topics": result.new_topics,
                "summary": result.summary,
                "needs_follow_up": result.needs_follow_up,
                "error": error[:500],
                "analyzed_at": now,
            },
        )
        ChatAnalytics.objects.filter(session_id=session_pk).update(updated_at=now)
    return analysis


def analysis_confirm(*, session_pk: int) -> None:
    """The stored analysis still holds (same content hash): mark it current, so that messages
    rewritten with the same text (a forced re-import) stop making the session a candidate."""
    ConversationAnalysis.objects.filter(session_id=session_pk).update(updated_at=timezone.now())

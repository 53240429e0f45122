"""Hand-built sessions for the listing's tests: each with the analytics row and calls a test names.

Rows are written directly (no chat turn, no tracker) so that each test states the exact values
it filters on; the listing only reads them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from analytics.models import ChatAnalytics
from assistant.models import ChatMessage, ChatSession, ProviderCall

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def make_session(
    name: str,
    *,
    at: datetime = T0,
    messages: tuple[str, ...] = ("hello",),
    analytics: dict[str, Any] | None = None,
    no_analytics: bool = False,
    calls: tuple[dict[str, Any], ...] = (),
    **fields: Any,
) -> ChatSession:
    """A session titled `name` that started `at`, with visitor `messages`, an analytics row and `calls`."""
    session = ChatSession.objects.create(token_hash=uuid.uuid4().hex * 2, title=name, **fields)
    ChatSession.objects.filter(pk=session.pk).update(created_at=at, last_seen_at=at, last_seq=len(messages))
    for seq, text in enumerate(messages, start=1):
        message = ChatMessage.objects.create(session=session, seq=seq, role="user", text=text)
        ChatMessage.objects.filter(pk=message.pk).update(created_at=at + timedelta(seconds=seq))
    if messages and not no_analytics:
        row = {
            "day": timezone.localdate(at),
            "started_at": at,
            "last_activity_at": at + timedelta(minutes=5),
            "user_type": session.user_type,
            "total_messages": len(messages),
            "user_messages": len(messages),
            **(analytics or {}),
        }
        ChatAnalytics.objects.create(session=session, **row)
    for call in calls:
        ProviderCall.objects.create(session=session, attempt=1, started_at=at, **{"outcome": "ok", **call})
    session.refresh_from_db()
    return session

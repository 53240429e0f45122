"""Writes of the visitor API that the chat's services do not already do as the API needs them.

Thin: a conversation is written at once (the websocket keeps a new one pending until its first
message) with `source="api"`; feedback and ratings are the chat's upserts, plus whether they
created or replaced (the API answers 201 or 200). One transaction each.
"""

from __future__ import annotations

from django.db import transaction

from assistant import services
from assistant.models import ChatSession, Feedback, SessionRating

API_SOURCE = "api"


def conversation_create(*, identity: services.Identity | None, page: services.PageContext) -> tuple[ChatSession, str]:
    """Write a new conversation now (source `api`); the row and its token."""
    opened = services.session_open(session_id=None, token=None, last_seq=0, identity=identity, page=page)
    assert opened.token is not None  # a new session always has one
    pending = opened.session
    pending.source = API_SOURCE
    row, _ = services.session_materialize(session=pending)
    return row, opened.token


def feedback_give(
    *, session: ChatSession, message_id: str, rating: str, reason: str, comment: str
) -> tuple[Feedback, bool]:
    """`services.feedback_upsert`, and whether it created the feedback (else it replaced one)."""
    with transaction.atomic():
        existed = Feedback.objects.filter(session=session, message__public_id=message_id).exists()
        feedback = services.feedback_upsert(
            session=session, message_id=message_id, rating=rating, reason=reason, comment=comment
        )
    return feedback, not existed


def rating_give(*, session: ChatSession, score: int, resolved: bool | None, comment: str) -> tuple[SessionRating, bool]:
    """`services.session_rate`, and whether it created the rating (else it replaced the earlier one)."""
    with transaction.atomic():
        existed = SessionRating.objects.filter(session=session).exists()
        rating = services.session_rate(session=session, score=score, resolved=resolved, comment=comment)
    return rating, not existed

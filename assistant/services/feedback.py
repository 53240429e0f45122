"""The visitor's verdicts and actions: thumbs on a reply, the end-of-chat survey, widget events."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction

from assistant import events, protocol
from assistant.models import ChatEvent, ChatMessage, ChatSession, Feedback, SessionRating
from assistant.protocol import ClientError


def feedback_upsert(*, session: ChatSession, message_id: str, rating: str, reason: str, comment: str) -> Feedback:
    """Record (or replace) the visitor's thumbs up/down on one assistant reply of this session."""
    not_found = ClientError(protocol.NOT_FOUND, "No assistant reply with that message_id in this session.")
    try:
        public_id = uuid.UUID(message_id)
    except ValueError:
        raise not_found from None
    with transaction.atomic():
        message = ChatMessage.objects.filter(
            session=session, public_id=public_id, role=ChatMessage.Role.ASSISTANT
        ).first()
        if message is None:
            raise not_found
        feedback, created = Feedback.objects.update_or_create(
            message=message,
            defaults={"session": session, "rating": rating, "reason": reason, "comment": comment},
        )
        if events.recording(events.FeedbackSaved):
            events.record(
                events.FeedbackSaved(
                    session_id=str(session.public_id),
                    occurred_at=feedback.updated_at,
                    message_id=str(message.public_id),
                    rating=feedback.rating,
                    reason=feedback.reason,
                    comment=feedback.comment,
                    created=created,
                )
            )
    return feedback


def session_rate(*, session: ChatSession, score: int, resolved: bool | None, comment: str) -> SessionRating:
    """Record (or replace) the end-of-chat survey."""
    with transaction.atomic():
        rating, created = SessionRating.objects.update_or_create(
            session=session, defaults={"score": score, "resolved": resolved, "comment": comment}
        )
        if events.recording(events.RatingSaved):
            events.record(
                events.RatingSaved(
                    session_id=str(session.public_id),
                    occurred_at=rating.updated_at,
                    score=rating.score,
                    resolved=rating.resolved,
                    comment=rating.comment,
                    created=created,
                )
            )
    return rating


def event_record(*, session: ChatSession, name: str, data: dict[str, object]) -> ChatEvent:
    """Store one visitor action reported by the widget, up to CHAT_EVENTS_PER_SESSION of them.

    The cap bounds what one session can write (events carry up to 4 KB of data each); the
    count is read in the same transaction as the insert, so two tabs overshoot it by one at most.
    """
    limit = settings.CHAT_EVENTS_PER_SESSION
    with transaction.atomic():
        if ChatEvent.objects.filter(session=session).count() >= limit:
            raise ClientError(
                protocol.LIMIT_REACHED, f"This conversation already has {limit} events; no more are recorded."
            )
        return ChatEvent.objects.create(session=session, name=name, data=data)

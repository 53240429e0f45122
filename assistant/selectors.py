"""Reads for the chat path. Synchronous: async callers wrap one call per unit of work."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import Q

from assistant import sql
from assistant.models import ChatMessage, ChatSession
from assistant.protocol import FeedbackState, HistoryMessage


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, the protocol's time format."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def session_history(*, session: ChatSession, after_seq: int, limit: int) -> tuple[list[HistoryMessage], bool]:
    """Messages with seq > after_seq, oldest first, at most `limit` (the newest); and whether cut.

    A reply still streaming is included even at or below `after_seq`: a client that counted its
    `reply.start` must still learn how it ends.
    """
    rows = list(
        ChatMessage.objects.filter(session=session)
        .filter(Q(seq__gt=after_seq) | Q(status=ChatMessage.Status.STREAMING))
        .select_related("feedback", "reply_to", "retry_of")
        .order_by("-seq")[: limit + 1]
    )
    truncated = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    return [history_message(row) for row in rows], truncated


def history_message(message: ChatMessage) -> HistoryMessage:
    """One message as it appears in `welcome.history` and in live `message` frames."""
    item: HistoryMessage = {
        "seq": message.seq,
        "message_id": str(message.public_id),
        "role": message.role,
        "text": message.text,
        "status": message.status,  # type: ignore[typeddict-item]
        "created_at": iso(message.created_at),
    }
    if message.client_id and message.role == ChatMessage.Role.USER:
        item["client_id"] = message.client_id  # an agent's desk key is not the visitor's business
    if message.role == ChatMessage.Role.AGENT:
        item["author"] = {"name": message.author_name}
    if message.reply_to_id is not None and message.reply_to is not None:
        item["reply_to"] = message.reply_to.seq
    if message.retry_of_id is not None and message.retry_of is not None:
        item["retry_of"] = message.retry_of.seq
    feedback = getattr(message, "feedback", None) if message.role == ChatMessage.Role.ASSISTANT else None
    if feedback is not None:
        state: FeedbackState = {"rating": feedback.rating, "reason": feedback.reason, "comment": feedback.comment}
        item["feedback"] = state
    return item


def prompt_history(*, session_id: int, before_seq: int, limit: int) -> list[tuple[str, str]]:
    """The last `limit` finished visitor/assistant turns before `before_seq`, oldest first.

    Empty texts (a reply interrupted before its first word) are left out: vendor APIs refuse
    empty messages. Plain SQL (`assistant.sql`): it runs on every turn.
    """
    return list(reversed(sql.prompt_turns(session_pk=session_id, before_seq=before_seq, limit=limit)))


def user_message_by_client_id(*, session: ChatSession, client_id: str) -> ChatMessage | None:
    """The visitor message stored under an idempotency key, if any."""
    return ChatMessage.objects.filter(session=session, client_id=client_id, role=ChatMessage.Role.USER).first()


def session_by_public_id(*, public_id: uuid.UUID) -> ChatSession | None:
    """The stored session with this public id, if it has been written."""
    return ChatSession.objects.filter(public_id=public_id).first()

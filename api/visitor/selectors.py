"""Reads of the visitor API: a conversation its token opens, its messages, a turn's outcome.

Synchronous, one unit of work each (the views wrap each call once). A conversation is found by
its public id and the token's hash, compared in constant time whether or not the row exists, and
"no such conversation" and "not this token's conversation" are the same None: one 403 that says
nothing about conversations the caller may not see.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from assistant import services
from assistant.handoff.selectors import handoff_view
from assistant.models import ChatMessage, ChatSession
from assistant.protocol import HistoryMessage, frames
from assistant.selectors import history_message, iso

_RELATED = ("feedback", "reply_to", "retry_of")
#: The columns `history_message` reads: a quarter of what the three joins would load, and half the
#: time to build and run the query (these reads serve every poll and every retried turn).
_HISTORY_COLUMNS = ("seq", "public_id", "role", "text", "status", "created_at", "client_id", "author_name",
                    "reply_to", "reply_to__seq", "retry_of", "retry_of__seq", "feedback__rating", "feedback__reason",
                    "feedback__comment")  # fmt: skip


def _history_rows() -> Any:
    """Messages with just what `history_message` needs."""
    return ChatMessage.objects.select_related(*_RELATED).only(*_HISTORY_COLUMNS)


#: Compared against when no row exists, so a missing conversation costs what a wrong token does.
_NO_HASH = "0" * 64


def _opens(session: ChatSession | None, token: str) -> bool:
    expected = session.token_hash if session is not None else _NO_HASH
    return hmac.compare_digest(expected, services.hash_token(token)) and session is not None


def conversation_for(*, public_id: uuid.UUID, token: str) -> ChatSession | None:
    """The conversation `public_id` if `token` opens it (and it has a row), else None."""
    session = ChatSession.objects.filter(public_id=public_id).first()
    return session if _opens(session, token) else None


def conversation_of_message(*, message_id: uuid.UUID, token: str) -> ChatSession | None:
    """The conversation of message `message_id` if `token` opens it, else None."""
    message = ChatMessage.objects.filter(public_id=message_id).select_related("session").first()
    session = message.session if message is not None else None
    return session if _opens(session, token) else None


def conversation_view(*, session: ChatSession) -> dict[str, Any]:
    """The conversation as `GET /conversations/{id}/` shows it (its handoff read now)."""
    view = handoff_view(session=session)
    return {
        "id": str(session.public_id),
        "title": session.title,
        "status": session.status,
        "source": session.source,
        "user_type": session.user_type,
        "created_at": iso(session.created_at),
        "closed_at": iso(session.closed_at) if session.closed_at is not None else None,
        "last_seq": session.last_seq,
        "handoff": {
            "state": session.handoff_state,
            "position": view.position if view is not None else None,
            "agent_name": view.agent_name if view is not None else None,
        },
    }


def conversation_read(*, public_id: uuid.UUID, token: str) -> dict[str, Any] | None:
    """`conversation_view` of the conversation `token` opens, or None."""
    session = conversation_for(public_id=public_id, token=token)
    return None if session is None else conversation_view(session=session)


def messages_read(*, public_id: uuid.UUID, token: str, since: int, limit: int) -> dict[str, Any] | None:
    """Up to `limit` messages with seq > `since`, oldest first, of the conversation `token` opens.

    `next_since` is what to send as `since` next. It never passes a reply still streaming: polling
    with it returns that reply again until it is final (the websocket's history, likewise, always
    includes a reply still streaming).
    """
    session = conversation_for(public_id=public_id, token=token)
    if session is None:
        return None
    rows = list(
        ChatMessage.objects.filter(session=session, seq__gt=since)
        .select_related(*_RELATED)
        .order_by("seq")[: limit + 1]
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    streaming = next((row.seq for row in rows if row.status == ChatMessage.Status.STREAMING), None)
    last = rows[-1].seq if rows else since
    next_since = streaming - 1 if streaming is not None else last
    return {"results": [history_message(row) for row in rows], "next_since": next_since, "has_more": has_more}


def reply_info(message: ChatMessage) -> dict[str, Any]:
    """How a reply ended, as the websocket's `reply.end` frame says it (without `type`)."""
    frame = frames.reply_end(
        seq=message.seq,
        message_id=str(message.public_id),
        status=message.status,
        provider=message.provider,
        model=message.model,
        ttft_ms=message.ttft_ms,
        duration_ms=message.duration_ms,
        input_tokens=message.input_tokens,
        output_tokens=message.output_tokens,
        cached=message.cached,
        sources=message.knowledge_sections,
        error=message.error_code,
    )
    frame.pop("type")
    return frame


@dataclass(frozen=True, slots=True)
class TurnResult:
    """A turn as stored: the visitor message and the reply (its last part, after a failover)."""

    user_message: HistoryMessage
    ai_message: HistoryMessage | None
    reply: dict[str, Any] | None
    #: The reply is still being generated (`reply` is None until it ends).
    streaming: bool


def turn_result(*, user_message_pk: int) -> TurnResult:
    """The stored turn of visitor message `user_message_pk`."""
    user = _history_rows().get(pk=user_message_pk)
    reply = (
        ChatMessage.objects.filter(reply_to_id=user.pk, role=ChatMessage.Role.ASSISTANT)
        .select_related(*_RELATED)
        .order_by("-seq")
        .first()
    )
    if reply is None:
        return TurnResult(user_message=history_message(user), ai_message=None, reply=None, streaming=False)
    streaming = reply.status == ChatMessage.Status.STREAMING
    return TurnResult(
        user_message=history_message(user),
        ai_message=history_message(reply),
        reply=None if streaming else reply_info(reply),
        streaming=streaming,
    )


def handoff_status(*, session: ChatSession) -> dict[str, Any] | None:
    """Who answers the visitor now, as the websocket's `handoff.status` says it (None: the assistant)."""
    view = handoff_view(session=session)
    if view is None:
        return None
    return {"state": view.state, "position": view.position, "agent_name": view.agent_name}

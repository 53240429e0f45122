"""The webhook payload of each chat record: stable, documented shapes (docs/api.md, "Webhooks").

Every body is `{"type", "timestamp", "data"}`; `data.conversation_id` (the conversation's public
id, as in the REST API) is in every conversation event, and a message is the REST API's and the
websocket history's message object. Fields are only ever added, never renamed or removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from assistant import events


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event to write to the outbox: its type, data, conversation (for ordering) and time."""

    type: str
    data: dict[str, Any]
    conversation_id: str
    occurred_at: datetime


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, milliseconds (as the REST API writes times)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _started(record: events.ConversationStarted) -> list[Outgoing]:
    data = {
        "conversation_id": record.session_id,
        "source": record.source,
        "visitor": {
            "type": record.user_type,
            "id": record.user_id,
            "name": record.user_name,
            "email": record.user_email,
        },
        "locale": record.locale,
        "page_url": record.page_url,
        "created_at": iso(record.occurred_at),
    }
    return [Outgoing("conversation.started", data, record.session_id, record.occurred_at)]


def message(record: events.MessageCreated) -> dict[str, Any]:
    """The message object (the websocket history's fields)."""
    item: dict[str, Any] = {
        "id": record.message_id,
        "seq": record.seq,
        "role": record.role,
        "text": record.text,
        "status": record.status,
        "created_at": iso(record.created_at),
    }
    if record.client_id:
        item["client_id"] = record.client_id
    if record.author_name:
        item["author"] = {"name": record.author_name}
    if record.reply_to is not None:
        item["reply_to"] = record.reply_to
    if record.retry_of is not None:
        item["retry_of"] = record.retry_of
    return item


def _message(record: events.MessageCreated) -> list[Outgoing]:
    data = {"conversation_id": record.session_id, "message": message(record)}
    return [Outgoing("message.created", data, record.session_id, record.occurred_at)]


def _reply(record: events.ReplyFinished) -> list[Outgoing]:
    completed = record.status in ("complete", "stopped")
    data = {
        "conversation_id": record.session_id,
        "message_id": record.message_id,
        "seq": record.seq,
        "reply_to": record.reply_to,
        "status": record.status,
        "error": record.error,
        "provider": record.provider,
        "model": record.model,
        "cached": record.cached,
        "tokens": {"input": record.input_tokens, "output": record.output_tokens},
        "latency_ms": {"first_token": record.ttft_ms, "total": record.duration_ms},
        "calls": [
            {
                "provider": call.provider,
                "model": call.model,
                "outcome": call.outcome,
                "latency_ms": call.latency_ms,
                "tokens": {"input": call.input_tokens, "output": call.output_tokens},
                "error_kind": call.error_kind,
                "fallback_from": call.fallback_from,
            }
            for call in record.calls
        ],
    }
    kind = "reply.completed" if completed else "reply.failed"
    return [Outgoing(kind, data, record.session_id, record.occurred_at)]


def _feedback(record: events.FeedbackSaved) -> list[Outgoing]:
    data = {
        "conversation_id": record.session_id,
        "message_id": record.message_id,
        "rating": record.rating,
        "reason": record.reason,
        "comment": record.comment,
    }
    kind = "feedback.created" if record.created else "feedback.updated"
    return [Outgoing(kind, data, record.session_id, record.occurred_at)]


def _rating(record: events.RatingSaved) -> list[Outgoing]:
    data = {
        "conversation_id": record.session_id,
        "score": record.score,
        "resolved": record.resolved,
        "comment": record.comment,
        "replaces_earlier": not record.created,
    }
    return [Outgoing("rating.created", data, record.session_id, record.occurred_at)]


def _handoff_requested(record: events.HandoffRequestSaved) -> list[Outgoing]:
    data = {
        "conversation_id": record.session_id,
        "state": record.state,
        "reason": record.reason,
        "requested_at": iso(record.requested_at),
    }
    return [Outgoing("handoff.requested", data, record.session_id, record.occurred_at)]


def _handoff_assigned(record: events.HandoffAssigned) -> list[Outgoing]:
    data = {
        "conversation_id": record.session_id,
        "kind": record.kind,
        "agent": {"id": record.agent_id, "name": record.agent_name},
        "by": {"id": record.actor_id, "name": record.actor_name},
        "previous_state": record.previous_state,
        "previous_agent_id": record.previous_agent_id,
    }
    return [Outgoing("handoff.assigned", data, record.session_id, record.occurred_at)]


def _closed(record: events.ConversationClosed) -> list[Outgoing]:
    data = {"conversation_id": record.session_id, "reason": record.reason, "closed_at": iso(record.occurred_at)}
    return [Outgoing("conversation.closed", data, record.session_id, record.occurred_at)]


#: Each chat record, the webhook event types it may become, and how.
BUILDERS: dict[type[events.Record], tuple[tuple[str, ...], Callable[[Any], list[Outgoing]]]] = {
    events.ConversationStarted: (("conversation.started",), _started),
    events.MessageCreated: (("message.created",), _message),
    events.ReplyFinished: (("reply.completed", "reply.failed"), _reply),
    events.FeedbackSaved: (("feedback.created", "feedback.updated"), _feedback),
    events.RatingSaved: (("rating.created",), _rating),
    events.HandoffRequestSaved: (("handoff.requested",), _handoff_requested),
    events.HandoffAssigned: (("handoff.assigned",), _handoff_assigned),
    events.ConversationClosed: (("conversation.closed",), _closed),
}


def outgoing(records: list[events.Record]) -> list[Outgoing]:
    """The webhook events of `records`, in order."""
    made: list[Outgoing] = []
    for record in records:
        made += BUILDERS[type(record)][1](record)
    return made

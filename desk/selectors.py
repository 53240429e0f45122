"""Reads for the desk: the queue, an agent's conversations, one conversation in full."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from assistant.handoff.selectors import display_name
from assistant.handoff.services import public_id
from assistant.models import ChatMessage, ChatSession, Handoff, InternalNote
from assistant.protocol import ClientError
from assistant.selectors import history_message, iso

#: Items of each queue list sent to a desk (the longest waits first); the rest wait their turn.
QUEUE_LIMIT = 200
#: Messages of a conversation sent when the desk opens it (the most recent ones).
TRANSCRIPT_LIMIT = 500
EARLIER_SESSIONS = 10

State = ChatSession.Handoff


def agent_info(user: AbstractBaseUser, *, available: bool) -> dict[str, Any]:
    return {"id": user.pk, "name": display_name(user), "available": available}


def queue(*, agent: AbstractBaseUser) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(waiting conversations, longest wait first; conversations assigned to `agent`, latest first)."""
    now = timezone.now()
    waiting = (
        Handoff.objects.filter(outcome=Handoff.Outcome.OPEN, session__handoff_state=State.WAITING)
        .select_related("session")
        .order_by("requested_at", "pk")[:QUEUE_LIMIT]
    )
    mine = (
        Handoff.objects.filter(
            outcome=Handoff.Outcome.OPEN, session__handoff_state=State.ASSIGNED, session__assigned_agent=agent
        )
        .select_related("session")
        .order_by("-session__updated_at")[:QUEUE_LIMIT]
    )
    items = [_item(h.session, h.requested_at, now) for h in waiting]
    return items, [_item(h.session, h.requested_at, now) for h in mine]


def _item(session: ChatSession, requested_at: Any, now: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "session_id": str(session.public_id),
        "state": session.handoff_state,
        "title": session.title,
        "visitor": _visitor(session),
        "updated_at": iso(session.updated_at),
    }
    if requested_at is not None:
        item["requested_at"] = iso(requested_at)
        item["wait_s"] = max(0, int((now - requested_at).total_seconds()))
    return item


def _visitor(session: ChatSession) -> dict[str, Any]:
    return {
        "name": session.external_user_name,
        "email": session.external_user_email,
        "user_type": session.user_type,
        "identified": bool(session.external_user_id),
        "locale": session.locale,
        "page_url": session.page_url,
        "page_title": session.page_title,
    }


def conversation(*, session_id: str) -> dict[str, Any]:
    """The whole conversation for the desk: transcript (AI part included), visitor, notes, history."""
    session = ChatSession.objects.select_related("assigned_agent").filter(public_id=public_id(session_id)).first()
    if session is None:
        raise ClientError("not_found", "No such conversation.", field="session_id")
    messages = list(
        ChatMessage.objects.filter(session=session)
        .select_related("reply_to", "retry_of", "feedback")
        .order_by("-seq")[:TRANSCRIPT_LIMIT]
    )
    messages.reverse()
    notes = InternalNote.objects.filter(session=session).order_by("created_at", "id")[:TRANSCRIPT_LIMIT]
    earlier = []
    if session.external_user_id:
        earlier = [
            {"session_id": str(s.public_id), "title": s.title, "created_at": iso(s.created_at)}
            for s in ChatSession.objects.filter(external_user_id=session.external_user_id, user_type=session.user_type)
            .exclude(pk=session.pk)
            .order_by("-created_at")[:EARLIER_SESSIONS]
        ]
    agent = session.assigned_agent
    return {
        "session_id": str(session.public_id),
        "state": session.handoff_state,
        "agent": {"id": agent.pk, "name": display_name(agent)} if agent is not None else None,
        "title": session.title,
        "visitor": _visitor(session),
        "messages": [history_message(m) for m in messages],
        "notes": [{"author": {"name": n.author_name}, "text": n.text, "created_at": iso(n.created_at)} for n in notes],
        "earlier_sessions": earlier,
    }

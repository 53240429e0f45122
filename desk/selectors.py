"""Reads for the desk: the queue, an agent's conversations, one conversation in full."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db.models import Q
from django.utils import timezone

from analytics.selectors import session_analytics
from assistant.handoff.selectors import DESK_PERMISSION, display_name
from assistant.handoff.services import public_id
from assistant.models import ChatMessage, ChatSession, Handoff, InternalNote
from assistant.protocol import ClientError
from assistant.selectors import history_message, iso

#: Items of each queue list sent to a desk (the longest waits first); the rest wait their turn.
QUEUE_LIMIT = 200
#: Messages of a conversation sent when the desk opens it (the most recent ones).
TRANSCRIPT_LIMIT = 500
EARLIER_SESSIONS = 10
#: People listed as transfer targets (every agent, in practice).
AGENTS_LIMIT = 500

State = ChatSession.Handoff


def agent_info(user: AbstractBaseUser, *, available: bool) -> dict[str, Any]:
    return {"id": user.pk, "name": display_name(user), "available": available}


def queue(*, agent: AbstractBaseUser) -> dict[str, Any]:
    """The desk's lists: `queue` (waiting, longest wait first), `mine` (assigned to `agent`),
    `open` (assigned to anyone, latest first: what a lead watches) and `agents` (who may answer),
    with `totals` (each list's full length)."""
    return with_mine(shared_lists(), mine(agent=agent))


def shared_lists() -> dict[str, Any]:
    """The lists every desk shows alike (all but `mine`): read once per process per change."""
    now = timezone.now()
    waiting = _open_handoffs(State.WAITING).order_by("requested_at", "pk")
    assigned = _open_handoffs(State.ASSIGNED).select_related("session__assigned_agent").order_by("-session__updated_at")
    return {
        "totals": {"queue": waiting.count(), "open": assigned.count()},
        "queue": [_item(h.session, h.requested_at, now) for h in waiting[:QUEUE_LIMIT]],
        "open": [_item(h.session, h.requested_at, now, with_agent=True) for h in assigned[:QUEUE_LIMIT]],
        "agents": agents(now=now),
    }


def mine(*, agent: AbstractBaseUser) -> dict[str, Any]:
    """The conversations assigned to `agent` (latest first) and how many there are in all."""
    now = timezone.now()
    rows = _open_handoffs(State.ASSIGNED).filter(session__assigned_agent=agent).order_by("-session__updated_at")
    items = [_item(h.session, h.requested_at, now) for h in rows[: QUEUE_LIMIT + 1]]
    total = len(items) if len(items) <= QUEUE_LIMIT else rows.count()
    return {"mine": items[:QUEUE_LIMIT], "total": total}


def with_mine(shared: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """One desk's lists: the shared ones and its agent's own."""
    return {**shared, "mine": own["mine"], "totals": {**shared["totals"], "mine": own["total"]}}


def _open_handoffs(state: str) -> Any:
    return Handoff.objects.filter(outcome=Handoff.Outcome.OPEN, session__handoff_state=state).select_related("session")


def agents(*, now: Any = None) -> list[dict[str, Any]]:
    """Everyone who may answer visitors (the `use_desk` permission, directly, by group or as
    superuser), active, by name, with whether they take new conversations now."""
    now = now or timezone.now()
    fresh = now - timedelta(seconds=settings.DESK_PRESENCE_TTL_S)
    listed = []
    for user in _agent_users().select_related("desk_presence").order_by("first_name", "username")[:AGENTS_LIMIT]:
        presence = getattr(user, "desk_presence", None)
        available = presence is not None and presence.available and presence.seen_at >= fresh
        listed.append(agent_info(user, available=available))
    return sorted(listed, key=lambda a: (a["name"].casefold(), a["id"]))


def agent_emails() -> list[str]:
    """Where to tell every agent that a visitor is waiting: their email addresses, once each."""
    emails = _agent_users().exclude(email="").values_list("email", flat=True)[:AGENTS_LIMIT]
    return sorted({email.strip().lower() for email in emails if email.strip()})


def _agent_users() -> Any:
    """Active users with `use_desk`: directly, through a group, or as superusers."""
    app_label, codename = DESK_PERMISSION.split(".")
    grants = Q(permissions__content_type__app_label=app_label, permissions__codename=codename)
    return (
        get_user_model()
        .objects.filter(
            Q(is_superuser=True)
            | Q(groups__in=Group.objects.filter(grants))
            | Q(user_permissions__content_type__app_label=app_label, user_permissions__codename=codename),
            is_active=True,
        )
        .distinct()
    )


def _item(session: ChatSession, requested_at: Any, now: Any, *, with_agent: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "session_id": str(session.public_id),
        "state": session.handoff_state,
        "title": session.title,
        "visitor": _visitor(session),
        "updated_at": iso(session.updated_at),
    }
    if with_agent:
        agent = session.assigned_agent
        item["agent"] = {"id": agent.pk, "name": display_name(agent)} if agent is not None else None
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
    messages, truncated = _messages(session.pk, before_seq=None)
    notes = list(InternalNote.objects.filter(session=session).order_by("-created_at", "-id")[:TRANSCRIPT_LIMIT])
    notes.reverse()  # the newest TRANSCRIPT_LIMIT, oldest first
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
        "messages": messages,
        "truncated": truncated,
        "notes": [{"author": {"name": n.author_name}, "text": n.text, "created_at": iso(n.created_at)} for n in notes],
        "earlier_sessions": earlier,
        "analytics": _analytics(session.pk),
    }


def history(*, session_id: str, before_seq: int) -> tuple[list[dict[str, Any]], bool]:
    """Messages of the conversation before `before_seq` (the newest TRANSCRIPT_LIMIT), and whether
    there are earlier ones still."""
    session = ChatSession.objects.filter(public_id=public_id(session_id)).only("pk").first()
    if session is None:
        raise ClientError("not_found", "No such conversation.", field="session_id")
    return _messages(session.pk, before_seq=before_seq)


def _messages(session_pk: int, *, before_seq: int | None) -> tuple[list[dict[str, Any]], bool]:
    rows = ChatMessage.objects.filter(session_id=session_pk)
    if before_seq is not None:
        rows = rows.filter(seq__lt=before_seq)
    page = list(rows.select_related("reply_to", "retry_of", "feedback").order_by("-seq")[: TRANSCRIPT_LIMIT + 1])
    truncated = len(page) > TRANSCRIPT_LIMIT
    page = page[:TRANSCRIPT_LIMIT]
    page.reverse()
    return [history_message(m) for m in page], truncated


def _analytics(session_pk: int) -> dict[str, Any] | None:
    """What analytics knows of the conversation so far (None before its first analysis)."""
    row = session_analytics(session_pk)
    if row is None:
        return None
    return {
        "topics": list(row.topics_discussed or []),
        "sentiment": row.avg_sentiment,
        "resolution": row.resolution,
        "escalated": row.escalated_to_human,
        "satisfaction": row.satisfaction_rating,
        "feedback": {"up": row.feedback_up, "down": row.feedback_down},
        "messages": row.total_messages,
    }

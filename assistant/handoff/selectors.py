"""Reads for human handoff: who may answer, the queue, a session's handoff as the visitor sees it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q
from django.utils import timezone

from assistant.models import AgentPresence, ChatSession, Handoff
from project import hours

DESK_PERMISSION = "assistant.use_desk"


@dataclass(frozen=True, slots=True)
class HandoffView:
    """A session's handoff as the visitor's `handoff.status` frame tells it."""

    state: str  # waiting | assigned | unavailable | ended
    position: int | None = None
    agent_name: str | None = None


def can_use_desk(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """Whether `user` may answer visitors (the `use_desk` permission; superusers have every one)."""
    return bool(user is not None and user.is_authenticated and user.is_active and user.has_perm(DESK_PERMISSION))


def display_name(user: AbstractBaseUser) -> str:
    """The name a visitor sees for an agent: first name, else full name, else the username."""
    first = (getattr(user, "first_name", "") or "").strip()
    if first:
        return first[:150]
    full = user.get_full_name().strip() if hasattr(user, "get_full_name") else ""
    return (full or user.get_username())[:150]


def within_business_hours(*, now: datetime | None = None) -> bool:
    """Whether people answer now (`BUSINESS_HOURS` in `BUSINESS_HOURS_TZ`; always without hours)."""
    return hours.is_open(settings.BUSINESS_HOURS, now or timezone.now(), ZoneInfo(settings.BUSINESS_HOURS_TZ))


def agents_available(*, now: datetime | None = None) -> int:
    """How many people at the desk take new conversations now (switched on and heard recently)."""
    now = now or timezone.now()
    fresh = now - timedelta(seconds=settings.DESK_PRESENCE_TTL_S)
    return sum(
        1
        for presence in AgentPresence.objects.filter(available=True, seen_at__gte=fresh, user__is_active=True)
        .select_related("user")
        .only("user")
        if can_use_desk(presence.user)
    )


def queue_position(*, session_pk: int) -> int | None:
    """1 for the longest-waiting session, … ; None when the session is not waiting."""
    handoff = Handoff.objects.filter(session_id=session_pk, outcome=Handoff.Outcome.OPEN).only("requested_at").first()
    if (
        handoff is None
        or not ChatSession.objects.filter(pk=session_pk, handoff_state=ChatSession.Handoff.WAITING).exists()
    ):
        return None
    ahead = Handoff.objects.filter(
        Q(requested_at__lt=handoff.requested_at) | Q(requested_at=handoff.requested_at, pk__lt=handoff.pk),
        outcome=Handoff.Outcome.OPEN,
        session__handoff_state=ChatSession.Handoff.WAITING,
    ).count()
    return ahead + 1


def handoff_view(*, session: ChatSession) -> HandoffView | None:
    """What the visitor's widget should show about a person, or None while the AI answers."""
    state = session.handoff_state
    if state == ChatSession.Handoff.WAITING:
        return HandoffView(state="waiting", position=queue_position(session_pk=session.pk))
    if state == ChatSession.Handoff.ASSIGNED:
        agent = get_user_model().objects.filter(pk=session.assigned_agent_id).first()
        return HandoffView(state="assigned", agent_name=display_name(agent) if agent is not None else "")
    return None


def desk_user(*, user_id: int) -> AbstractBaseUser | None:
    """The active user `user_id` if they may use the desk (a transfer's target), else None."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    return user if user is not None and can_use_desk(user) else None


def waiting_among(*, session_pks: list[int]) -> set[int]:
    """Which of these sessions wait for a person (one query for many closed connections)."""
    return set(
        ChatSession.objects.filter(pk__in=session_pks, handoff_state=ChatSession.Handoff.WAITING).values_list(
            "pk", flat=True
        )
    )


def waiting_too_long(*, after_s: float, now: datetime | None = None) -> bool:
    """Whether a visitor has waited for a person longer than `after_s` with nobody claiming them."""
    now = now or timezone.now()
    return Handoff.objects.filter(
        outcome=Handoff.Outcome.OPEN,
        requested_at__lte=now - timedelta(seconds=after_s),
        session__handoff_state=ChatSession.Handoff.WAITING,
    ).exists()

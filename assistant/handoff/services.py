"""Writes for human handoff, one transaction each (one unit of work for async callers).

Every state change locks the session row first (`SELECT … FOR UPDATE` on Postgres; SQLite's
IMMEDIATE transactions lock the database), then checks, then writes: two agents claiming at
once get exactly one success (the second sees what the first wrote), and a visitor turn
running at the same time is ordered by the same lock. Every action checks that its agent may
use the desk: these functions are the boundary, whatever adapter calls them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from assistant import events, protocol, sql
from assistant.handoff.selectors import (
    HandoffView,
    agents_available,
    can_use_desk,
    desk_user,
    display_name,
    handoff_view,
    queue_position,
    within_business_hours,
)
from assistant.models import AgentPresence, ChatMessage, ChatSession, ContactRequest, Handoff, InternalNote
from assistant.protocol import ClientError
from assistant.services import DESK_CLIENT_PREFIX, records

State = ChatSession.Handoff
#: States in which the AI answers the visitor; a claim from these is a takeover.
AI_STATES = (State.AI, State.WAITING, State.RESOLVED)
#: Room for the desk's prefix in `ChatMessage.client_id` (64 characters).
MAX_DESK_CLIENT_ID = 40
#: An agent writes longer answers than a visitor asks questions, but not books.
MAX_AGENT_TEXT = 8000
MAX_NOTE_TEXT = 4000
#: Requests for a person one conversation may make (each is a row, even when nobody is there).
MAX_HANDOFFS_PER_SESSION = 20
#: How far two servers' clocks may differ when one's close is compared with another's hello.
CLOCK_SKEW_S = 2.0


@dataclass(frozen=True, slots=True)
class Requested:
    """Result of `handoff_request`."""

    view: HandoffView
    handoff: Handoff | None
    created: bool  # False when the visitor had already asked (or nobody was available)


@dataclass(frozen=True, slots=True)
class Changed:
    """Result of a desk action on a session: the session after it, and its handoff row."""

    session: ChatSession
    handoff: Handoff | None
    previous_state: str


def handoff_request(*, session: ChatSession, reason: str, now: datetime | None = None) -> Requested:
    """The visitor asks for a person: `waiting` (queued), or `unavailable` when nobody can answer
    (outside `BUSINESS_HOURS`, or no agent available).

    Asking again while waiting or assigned changes nothing and says where things stand. An
    `unavailable` request is kept as a `Handoff` with that outcome: the handoff rate counts it.
    """
    now = now or timezone.now()
    # Read before taking the lock: on SQLite the lock is the whole database's.
    answerable = within_business_hours(now=now) and agents_available(now=now) > 0
    with transaction.atomic():
        row = ChatSession.objects.select_for_update().get(pk=session.pk)
        if row.handoff_state in (State.WAITING, State.ASSIGNED):
            open_handoff = Handoff.objects.filter(session=row, outcome=Handoff.Outcome.OPEN).first()
            _copy_state(session, row)
            return Requested(view=_view(row), handoff=open_handoff, created=False)
        if Handoff.objects.filter(session=row).count() >= MAX_HANDOFFS_PER_SESSION:
            raise ClientError(protocol.LIMIT_REACHED, "This conversation has asked for a person too many times.")
        if not answerable:
            handoff = Handoff.objects.create(
                session=row,
                reason=reason,
                requested_at=now,
                requested_after_seq=row.last_seq,
                ended_at=now,
                outcome=Handoff.Outcome.UNAVAILABLE,
            )
            _record_request(row, handoff, "unavailable")
            return Requested(view=HandoffView(state="unavailable"), handoff=handoff, created=False)
        handoff = Handoff.objects.create(session=row, reason=reason, requested_at=now, requested_after_seq=row.last_seq)
        ChatSession.objects.filter(pk=row.pk).update(handoff_state=State.WAITING, assigned_agent=None, updated_at=now)
        _record_request(row, handoff, State.WAITING)
    session.handoff_state, session.assigned_agent_id = State.WAITING, None
    return Requested(
        view=HandoffView(state="waiting", position=queue_position(session_pk=session.pk)), handoff=handoff, created=True
    )


def contact_store(*, session: ChatSession, email: str, name: str, message: str) -> ContactRequest:
    """File the visitor's contact details for a person to answer later."""
    try:
        validate_email(email)
    except ValidationError:
        raise ClientError(protocol.INVALID_FIELD, "'email' is not a valid email address.", field="email") from None
    return ContactRequest.objects.create(session=session, email=email, name=name, message=message)


def presence_set(
    *, user: AbstractBaseUser, available: bool | None = None, now: datetime | None = None
) -> AgentPresence:
    """Record that the desk of `user` is alive (and, when given, whether they take conversations)."""
    now = now or timezone.now()
    defaults: dict[str, object] = {"seen_at": now}
    if available is not None:
        defaults["available"] = available
    presence, _ = AgentPresence.objects.update_or_create(user=user, defaults=defaults)
    return presence


def claim(*, session_id: str, agent: AbstractBaseUser, now: datetime | None = None) -> Changed:
    """Take the conversation: from the queue, or from the AI directly (a takeover).

    Atomic: of two agents claiming at once exactly one wins; the other gets `already_claimed`.
    Claiming one's own conversation again is acknowledged (a desk that lost its `claim.ack`).
    """
    _check_agent(agent)
    now = now or timezone.now()
    uid = public_id(session_id)
    with transaction.atomic():
        row = ChatSession.objects.select_for_update().filter(public_id=uid).first()
        if row is None:
            raise ClientError(protocol.NOT_FOUND, "No such conversation.", field="session_id")
        previous = row.handoff_state
        if previous == State.ASSIGNED:
            if row.assigned_agent_id == agent.pk:
                row.assigned_agent = agent
                return Changed(session=row, handoff=_open_handoff(row), previous_state=previous)
            holder = row.assigned_agent
            if holder is not None and can_use_desk(holder):
                raise ClientError(protocol.ALREADY_CLAIMED, "Another agent has this conversation.", field="session_id")
            # Its agent's account is gone, deactivated or no longer an agent: anyone may take it.
        handoff = _open_handoff(row)
        kind = "claim"
        if handoff is None:  # a takeover: nobody asked, the person stepped in
            kind = "takeover"
            handoff = Handoff.objects.create(
                session=row, reason="taken over at the desk", requested_at=now, requested_after_seq=row.last_seq
            )
        if handoff.assigned_at is None:
            handoff.assigned_at = now
        handoff.agent = agent
        handoff.save(update_fields=["agent", "assigned_at"])
        ChatSession.objects.filter(pk=row.pk).update(handoff_state=State.ASSIGNED, assigned_agent=agent, updated_at=now)
        previous_agent_id = row.assigned_agent_id
        row.handoff_state, row.assigned_agent = State.ASSIGNED, agent
        _record_assigned(row, agent, agent, previous, previous_agent_id, kind, now)
    return Changed(session=row, handoff=handoff, previous_state=previous)


def release(*, session_id: str, agent: AbstractBaseUser, now: datetime | None = None) -> Changed:
    """Put one's conversation back in the queue (it keeps its place by the time it was asked)."""
    return _owned_change(session_id, agent, State.WAITING, outcome=None, now=now)


def handback(*, session_id: str, agent: AbstractBaseUser, now: datetime | None = None) -> Changed:
    """Give the conversation back to the assistant: it answers the visitor's next message."""
    return _owned_change(session_id, agent, State.AI, outcome=Handoff.Outcome.HANDED_BACK, now=now)


def resolve(*, session_id: str, agent: AbstractBaseUser, now: datetime | None = None) -> Changed:
    """Close the person's part as resolved (the assistant answers if the visitor writes again)."""
    return _owned_change(session_id, agent, State.RESOLVED, outcome=Handoff.Outcome.RESOLVED, now=now)


def transfer(*, session_id: str, agent: AbstractBaseUser, to_user_id: int, now: datetime | None = None) -> Changed:
    """Hand one's conversation to another person who may use the desk."""
    _check_agent(agent)
    target = desk_user(user_id=to_user_id)
    if target is None:
        raise ClientError(protocol.INVALID_FIELD, "'agent_id' is not an agent who may use the desk.", field="agent_id")
    now = now or timezone.now()
    with transaction.atomic():
        row = _owned_row(session_id, agent)
        handoff = _open_handoff(row)
        ChatSession.objects.filter(pk=row.pk).update(assigned_agent=target, updated_at=now)
        if handoff is not None:
            handoff.agent = target
            handoff.save(update_fields=["agent"])
        row.assigned_agent = target
        _record_assigned(row, target, agent, State.ASSIGNED, agent.pk, "transfer", now)
    return Changed(session=row, handoff=handoff, previous_state=State.ASSIGNED)


def agent_message(
    *, session_id: str, agent: AbstractBaseUser, text: str, client_id: str, now: datetime | None = None
) -> tuple[ChatMessage, bool]:
    """Store an agent's message before its ack; the same `client_id` again returns the first one.

    Returns (message, duplicate). Only the agent the conversation is assigned to may write.
    """
    _check_agent(agent)
    _check_text(text, MAX_AGENT_TEXT)
    if not client_id or len(client_id) > MAX_DESK_CLIENT_ID:
        raise ClientError(
            protocol.INVALID_FIELD, f"'client_id' must be 1 to {MAX_DESK_CLIENT_ID} characters.", field="client_id"
        )
    key = f"{DESK_CLIENT_PREFIX}{agent.pk}:{client_id}"
    now = now or timezone.now()
    with transaction.atomic():
        # Unordered one-row reads and the hand-written INSERT: an agent's message is as frequent
        # as a visitor's, and the ORM's query building was most of its cost (bench/desk.py).
        locked = ChatSession.objects.select_for_update().filter(public_id=public_id(session_id))
        row = next(iter(locked.only("id", "handoff_state", "assigned_agent_id").order_by()[:1]), None)
        if row is None:
            raise ClientError(protocol.NOT_FOUND, "No such conversation.", field="session_id")
        earlier = next(iter(ChatMessage.objects.filter(session_id=row.pk, client_id=key).order_by()[:1]), None)
        if earlier is not None:
            return earlier, True
        if row.handoff_state != State.ASSIGNED or row.assigned_agent_id != agent.pk:
            raise ClientError(
                protocol.FORBIDDEN, "Claim the conversation before writing to the visitor.", field="session_id"
            )
        # The row lock above orders two connections of this agent sending the same key: the
        # second finds the first's message, so no unique-key error can happen here.
        seq = sql.allocate_seq(session_pk=row.pk, now=now)
        message = sql.insert_message(
            ChatMessage(
                session_id=row.pk,
                seq=seq,
                role=ChatMessage.Role.AGENT,
                text=text,
                client_id=key,
                author=agent,
                author_name=display_name(agent),
            )
        )
        Handoff.objects.filter(session_id=row.pk, outcome=Handoff.Outcome.OPEN, first_response_at=None).update(
            first_response_at=now
        )
        if events.recording(events.MessageCreated):
            events.record(records.message_created(message, session_id=str(public_id(session_id))))
    return message, False


def note_add(*, session_id: str, agent: AbstractBaseUser, text: str) -> InternalNote:
    """An internal note on a conversation, for the other agents only."""
    _check_agent(agent)
    _check_text(text, MAX_NOTE_TEXT)
    row = ChatSession.objects.filter(public_id=public_id(session_id)).first()
    if row is None:
        raise ClientError(protocol.NOT_FOUND, "No such conversation.", field="session_id")
    return InternalNote.objects.create(session=row, author=agent, author_name=display_name(agent), text=text)


def assert_assigned(*, session_id: str, agent: AbstractBaseUser) -> ChatSession:
    """The session, if `agent` is the person answering it; else `not_found` / `forbidden`."""
    row = ChatSession.objects.filter(public_id=public_id(session_id)).first()
    if row is None:
        raise ClientError(protocol.NOT_FOUND, "No such conversation.", field="session_id")
    if row.handoff_state != State.ASSIGNED or row.assigned_agent_id != agent.pk:
        raise ClientError(protocol.FORBIDDEN, "This conversation is not assigned to you.", field="session_id")
    return row


def abandon_waiting(*, session_pk: int, now: datetime | None = None) -> bool:
    """The visitor ended the conversation while waiting: the request ends `abandoned`."""
    now = now or timezone.now()
    with transaction.atomic():
        changed = ChatSession.objects.filter(pk=session_pk, handoff_state=State.WAITING).update(
            handoff_state=State.AI, updated_at=now
        )
        if changed:
            Handoff.objects.filter(session_id=session_pk, outcome=Handoff.Outcome.OPEN).update(
                outcome=Handoff.Outcome.ABANDONED, ended_at=now
            )
    return bool(changed)


@dataclass(frozen=True, slots=True)
class Left:
    """What `abandon_left` found: the session if its request ended, or a `last_seen_at` too close
    to the close to tell (another server's clock may differ) to look at once more later."""

    session: ChatSession | None = None
    unsure_seen: datetime | None = None


def abandon_left(
    *, session_pk: int, left_at: datetime, seen_before: datetime | None = None, now: datetime | None = None
) -> Left:
    """The visitor's last tab closed at `left_at` while waiting: end the request `abandoned`
    unless a `hello` came since (it stamps `last_seen_at`, maybe by another server's clock).

    `last_seen_at` well before the close: abandoned. Well after: the visitor came back. Within
    CLOCK_SKEW_S of it: unsure; the caller looks again later with `seen_before`, and the request
    ends only if no hello stamped `last_seen_at` in between.
    """
    now = now or timezone.now()
    skew = timedelta(seconds=CLOCK_SKEW_S)
    with transaction.atomic():
        seen = (
            ChatSession.objects.filter(pk=session_pk, handoff_state=State.WAITING)
            .values_list("last_seen_at", flat=True)
            .first()
        )
        if seen is None:
            return Left()  # not waiting any more
        if seen_before is not None:
            gone = seen == seen_before
        elif seen > left_at + skew:
            return Left()  # came back
        elif seen > left_at - skew:
            return Left(unsure_seen=seen)
        else:
            gone = True
        if not gone or not ChatSession.objects.filter(
            pk=session_pk, handoff_state=State.WAITING, last_seen_at=seen
        ).update(handoff_state=State.AI, updated_at=now):
            return Left()
        Handoff.objects.filter(session_id=session_pk, outcome=Handoff.Outcome.OPEN).update(
            outcome=Handoff.Outcome.ABANDONED, ended_at=now
        )
        row = ChatSession.objects.get(pk=session_pk)
        if events.recording(events.ConversationClosed):
            events.record(events.ConversationClosed(session_id=str(row.public_id), occurred_at=now, reason="abandoned"))
    return Left(session=row)


def unclaimed_to_notify(*, after_s: float, now: datetime | None = None, limit: int = 50) -> list[Handoff]:
    """Requests waiting longer than `after_s` that nobody claimed and the agents were not told of:
    each is marked told here, by a guarded update, so that of several processes exactly one sends."""
    now = now or timezone.now()
    candidates = list(
        Handoff.objects.filter(
            outcome=Handoff.Outcome.OPEN,
            notified_at=None,
            requested_at__lte=now - timedelta(seconds=after_s),
            session__handoff_state=State.WAITING,
        )
        .select_related("session")
        .order_by("requested_at", "pk")[:limit]
    )
    still = Handoff.objects.filter(
        notified_at=None, outcome=Handoff.Outcome.OPEN, session__handoff_state=State.WAITING
    )  # claimed since the select: not waiting, not told
    return [h for h in candidates if still.filter(pk=h.pk).update(notified_at=now)]


# --- helpers ----------------------------------------------------------------------------------
def _record_request(row: ChatSession, handoff: Handoff, state: str) -> None:
    """Record the visitor's request for a person (inside its transaction), when something subscribes."""
    if events.recording(events.HandoffRequestSaved):
        events.record(
            events.HandoffRequestSaved(
                session_id=str(row.public_id),
                occurred_at=handoff.requested_at,
                state=state,
                reason=handoff.reason,
                requested_at=handoff.requested_at,
            )
        )


def _record_assigned(
    row: ChatSession,
    agent: AbstractBaseUser,
    actor: AbstractBaseUser,
    previous_state: str,
    previous_agent_id: int | None,
    kind: str,
    now: datetime,
) -> None:
    """Record that `agent` now answers the visitor (a claim, takeover or transfer by `actor`)."""
    if events.recording(events.HandoffAssigned):
        events.record(
            events.HandoffAssigned(
                session_id=str(row.public_id),
                occurred_at=now,
                agent_id=agent.pk,
                agent_name=display_name(agent),
                actor_id=actor.pk,
                actor_name=display_name(actor),
                previous_state=previous_state,
                previous_agent_id=previous_agent_id,
                kind=kind,
            )
        )


def _check_agent(agent: AbstractBaseUser) -> None:
    if not can_use_desk(agent):
        raise ClientError(protocol.FORBIDDEN, "You may not answer visitors (the use_desk permission).")


def _check_text(text: str, limit: int) -> None:
    if not text.strip():
        raise ClientError(protocol.INVALID_FIELD, "'text' is empty.", field="text")
    if len(text) > limit:
        raise ClientError(protocol.INVALID_FIELD, f"'text' must be at most {limit} characters.", field="text")


def public_id(session_id: str) -> uuid.UUID:
    """`session_id` as a UUID, or `invalid_field` naming it."""
    try:
        return uuid.UUID(session_id)
    except (ValueError, TypeError, AttributeError):
        raise ClientError(
            protocol.INVALID_FIELD, "'session_id' must be a session id (a UUID).", field="session_id"
        ) from None


def _open_handoff(row: ChatSession) -> Handoff | None:
    return Handoff.objects.filter(session=row, outcome=Handoff.Outcome.OPEN).first()


def _owned_row(session_id: str, agent: AbstractBaseUser) -> ChatSession:
    """The session, locked, if it is assigned to `agent`; else `not_found` or `forbidden`."""
    row = ChatSession.objects.select_for_update().filter(public_id=public_id(session_id)).first()
    if row is None:
        raise ClientError(protocol.NOT_FOUND, "No such conversation.", field="session_id")
    if row.handoff_state != State.ASSIGNED or row.assigned_agent_id != agent.pk:
        raise ClientError(protocol.FORBIDDEN, "This conversation is not assigned to you.", field="session_id")
    return row


def _owned_change(
    session_id: str, agent: AbstractBaseUser, state: str, *, outcome: str | None, now: datetime | None
) -> Changed:
    now = now or timezone.now()
    with transaction.atomic():
        row = _owned_row(session_id, agent)
        handoff = _open_handoff(row)
        assigned = agent if state == State.ASSIGNED else None
        ChatSession.objects.filter(pk=row.pk).update(handoff_state=state, assigned_agent=assigned, updated_at=now)
        if handoff is not None and outcome is not None:
            handoff.outcome, handoff.ended_at = outcome, now
            handoff.save(update_fields=["outcome", "ended_at"])
        row.handoff_state, row.assigned_agent = state, assigned
    return Changed(session=row, handoff=handoff, previous_state=State.ASSIGNED)


def _view(row: ChatSession) -> HandoffView:
    return handoff_view(session=row) or HandoffView(state="ended")


def _copy_state(session: ChatSession, row: ChatSession) -> None:
    session.handoff_state, session.assigned_agent_id = row.handoff_state, row.assigned_agent_id

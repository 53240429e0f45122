"""Desk actions as the visitor's side sees them: the write, then the reply stopped, then every tab told.

The desk's socket (and anything else acting for an agent) calls these, not the services
directly, so that a takeover always stops the AI mid-stream and the visitor's widget always
learns who answers, in whichever process its tabs are.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser

from assistant import events
from assistant.delivery import publish, relay
from assistant.groups import session_group
from assistant.handoff import selectors, services
from assistant.handoff.services import Changed
from assistant.models import ChatMessage
from assistant.protocol import frames
from assistant.replies.runtime import request_stop
from assistant.selectors import history_message

_claim = database_sync_to_async(services.claim)
_release = database_sync_to_async(services.release)
_handback = database_sync_to_async(services.handback)
_resolve = database_sync_to_async(services.resolve)
_transfer = database_sync_to_async(services.transfer)
_queue_position = database_sync_to_async(selectors.queue_position)
_agent_message = database_sync_to_async(services.agent_message)
_assert_assigned = database_sync_to_async(services.assert_assigned)


async def send_message(*, session_id: str, agent: AbstractBaseUser, text: str, client_id: str) -> ChatMessage:
    """Store the agent's message, then show it on every tab of the visitor (a resend shows nothing new).

    The caller acks the desk after this returns: the message is durable by then.
    """
    message, duplicate = await _agent_message(session_id=session_id, agent=agent, text=text, client_id=client_id)
    if not duplicate:
        await publish(session_group(session_id), [frames.message(history_message(message))])
        await relay(
            events.AgentMessageStored(
                session_pk=message.session_id,
                session_id=session_id,
                seq=message.seq,
                message_id=str(message.public_id),
                agent_id=agent.pk,
                agent_name=message.author_name,
                text=message.text,
            )
        )
    return message


async def typing(*, session_id: str, agent: AbstractBaseUser, state: str) -> None:
    """Show the visitor that the person answering is typing (or stopped); only that person may."""
    await _assert_assigned(session_id=session_id, agent=agent)
    await publish(session_group(session_id), [frames.typing(state=state, name=selectors.display_name(agent))])


async def claim(*, session_id: str, agent: AbstractBaseUser) -> Changed:
    """Take the conversation; an AI reply streaming now is stopped (stored `stopped`)."""
    changed = await _claim(session_id=session_id, agent=agent)
    if changed.previous_state != changed.session.Handoff.ASSIGNED:
        await request_stop(changed.session.pk, changed.session.public_id)
    await _announce(changed, frames.handoff_status(state="assigned", agent_name=selectors.display_name(agent)), agent)
    return changed


async def transfer(*, session_id: str, agent: AbstractBaseUser, to_user_id: int) -> Changed:
    """Hand the conversation to another agent; the visitor sees the new name."""
    changed = await _transfer(session_id=session_id, agent=agent, to_user_id=to_user_id)
    target = changed.session.assigned_agent
    name = selectors.display_name(target) if target is not None else ""
    await _announce(changed, frames.handoff_status(state="assigned", agent_name=name), agent)
    return changed


async def release(*, session_id: str, agent: AbstractBaseUser) -> Changed:
    """Back to the queue: the visitor is waiting again, at their place."""
    changed = await _release(session_id=session_id, agent=agent)
    position = await _queue_position(session_pk=changed.session.pk)
    await _announce(changed, frames.handoff_status(state="waiting", position=position), agent)
    return changed


async def handback(*, session_id: str, agent: AbstractBaseUser) -> Changed:
    """The assistant answers again."""
    changed = await _handback(session_id=session_id, agent=agent)
    await _announce(changed, frames.handoff_status(state="ended"), agent)
    return changed


async def resolve(*, session_id: str, agent: AbstractBaseUser) -> Changed:
    """The person's part is done."""
    changed = await _resolve(session_id=session_id, agent=agent)
    await _announce(changed, frames.handoff_status(state="ended"), agent)
    return changed


async def _announce(changed: Changed, status: frames.Frame, actor: AbstractBaseUser) -> None:
    session = changed.session
    await publish(session_group(session.public_id), [status])
    agent = session.assigned_agent
    await relay(
        events.HandoffChanged(
            session_pk=session.pk,
            session_id=str(session.public_id),
            state=session.handoff_state,
            previous_state=changed.previous_state,
            agent_id=agent.pk if agent is not None else None,
            agent_name=selectors.display_name(agent) if agent is not None else "",
            actor_id=actor.pk,
            actor_name=selectors.display_name(actor),
            outcome=changed.handoff.outcome if changed.handoff is not None and changed.handoff.ended_at else "",
        )
    )

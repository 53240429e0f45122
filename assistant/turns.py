"""A visitor's turn once its message is stored: the same events, frames and reply whatever carried it.

The websocket (`ChatConsumer.handle_message`) and the REST API (`api.visitor`) both store the
visitor message with `services.turn_begin`, answer their own client (an `ack`, an HTTP response),
then call `follow`. It publishes `MessageStored` and either starts the assistant's reply (the
`ReplyJob` announces the message to the session's other tabs as it starts) or, while a person
answers the visitor, announces the message itself. One path, so analytics, webhooks, the desk and
the other tabs cannot tell which transport a turn came by.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from assistant import events, services, titles
from assistant.delivery import Frame, publish, relay
from assistant.groups import reply_control_group
from assistant.protocol import frames
from assistant.replies import ReplyJob, registry
from assistant.selectors import history_message

if TYPE_CHECKING:
    from assistant.models import ChatSession


async def follow(
    *,
    session: ChatSession,
    turn: services.TurnStarted,
    group: str,
    origin: str,
    tap: Callable[[list[Frame]], None] | None = None,
) -> ReplyJob | None:
    """Announce a stored (not duplicate) visitor message and start its reply; the reply job, if any.

    `origin` names the sender (a websocket's channel, an API request): frames marked for the
    other tabs skip it. `tap` receives every frame list the reply publishes, in order (the API's
    event stream reads it).
    """
    user = turn.user_message
    stored = events.MessageStored(
        session_pk=session.pk,
        session_id=str(session.public_id),
        seq=user.seq,
        message_id=str(user.public_id),
        role=user.role,
        text=user.text,
    )
    if turn.assistant_message is None:
        # A person answers this visitor now: no reply to announce the message, so it is done here
        # (`stored` travels to the session's other processes too: their trackers see the message).
        await publish(group, [frames.message(history_message(user), others=True)], origin=origin)
        await relay(stored)
        return None
    events.publish(stored)
    job = ReplyJob(
        session_pk=session.pk,
        session_id=str(session.public_id),
        group=group,
        control_group=reply_control_group(session.public_id),
        user_message=user,
        assistant_message=turn.assistant_message,
        history=turn.history,
        locale=session.locale,
        announce=[frames.message(history_message(user), others=True)],
        announce_events=[stored],
        origin=origin,
        tap=tap,
    )
    registry.start(job)
    if user.seq == 1:
        titles.schedule(session_pk=session.pk, message_pk=user.pk, first_message=user.text, current_title=session.title)
    return job

"""The visitor's side of human handoff on `/ws/chat/`: `handoff`, `contact` and `typing` frames.

A mixin of `ChatConsumer` (kept apart so the consumer stays one subject): the handlers call the
handoff services and tell every tab of the session with `handoff.status`. Frames for the agent
desk go to the session's desk group (`groups.desk_session_group`), which desk connections join.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from assistant import events, protocol
from assistant.delivery import publish, relay
from assistant.groups import desk_session_group
from assistant.handoff import selectors, services
from assistant.handoff.selectors import HandoffView
from assistant.protocol import ClientError, frames
from assistant.ratelimit import TokenBucket

if TYPE_CHECKING:
    from assistant.models import ChatSession

_handoff_request = database_sync_to_async(services.handoff_request)
_contact_store = database_sync_to_async(services.contact_store)
_handoff_view = database_sync_to_async(selectors.handoff_view)
_abandon_waiting = database_sync_to_async(services.abandon_waiting)


def abandoned_event(session: ChatSession) -> events.HandoffChanged:
    """The visitor left while waiting: the request ended `abandoned` (nobody at the desk did it)."""
    return events.HandoffChanged(
        session_pk=session.pk,
        session_id=str(session.public_id),
        state=session.Handoff.AI,
        previous_state=session.Handoff.WAITING,
        agent_id=None,
        agent_name="",
        actor_id=None,
        actor_name="",
        outcome="abandoned",
    )


def status_frame(view: HandoffView) -> dict[str, Any]:
    """The `handoff.status` frame for `view`."""
    return frames.handoff_status(state=view.state, position=view.position, agent_name=view.agent_name)


async def to_desk(session_id: str, frame: dict[str, Any]) -> None:
    """Send `frame` to the desk connections watching the session, in any process."""
    layer = get_channel_layer()
    if layer is None:
        return
    await layer.group_send(desk_session_group(session_id), {"type": "desk.frame", "frame": frame})


class VisitorHandoff:
    """`handle_handoff`, `handle_contact`, `handle_typing` for `ChatConsumer`."""

    if TYPE_CHECKING:
        session: ChatSession | None
        group: str | None
        channel_name: str
        event_bucket: TokenBucket

        async def _materialize(self, *, client_id: str | None = None) -> ChatSession: ...
        async def send_frame(self, frame: Any) -> None: ...

    typing_bucket: TokenBucket | None = None

    async def handle_handoff(self, frame: dict[str, Any]) -> None:
        """The visitor asks for a person: every tab learns `waiting` (with its place) or `unavailable`."""
        assert self.session is not None and self.group is not None
        self._take_action_token("requests for a person")
        session = await self._materialize()
        requested = await _handoff_request(session=session, reason=frame.get("reason", ""))
        await publish(self.group, [status_frame(requested.view)])
        if requested.handoff is not None and (requested.created or requested.view.state == "unavailable"):
            await relay(
                events.HandoffRequested(
                    session_pk=session.pk,
                    session_id=str(session.public_id),
                    reason=requested.handoff.reason,
                    state=requested.view.state,
                    requested_at=requested.handoff.requested_at.isoformat(),
                )
            )

    async def handle_contact(self, frame: dict[str, Any]) -> None:
        """Store the visitor's contact details (the offline form), then `contact.ack`."""
        assert self.session is not None
        self._take_action_token("contact forms")
        session = await self._materialize()
        request = await _contact_store(
            session=session, email=frame["email"], name=frame.get("name", ""), message=frame.get("message", "")
        )
        await self.send_frame(frames.contact_ack())
        await relay(
            events.ContactLeft(
                session_pk=session.pk, session_id=str(session.public_id), contact_id=request.pk, email=request.email
            )
        )

    async def handle_typing(self, frame: dict[str, Any]) -> None:
        """Relay the visitor's typing to the desks watching the conversation (never to other tabs)."""
        assert self.session is not None
        if self.typing_bucket is None:
            per_minute = settings.CHAT_TYPING_RATE_LIMIT_PER_MINUTE
            self.typing_bucket = TokenBucket(per_minute=per_minute, burst=max(1, per_minute // 6))
        wait = self.typing_bucket.take()
        if wait is not None:
            raise ClientError(protocol.RATE_LIMITED, "Too many typing frames; slow down.", retry_after=wait)
        if self.session.pk is None:
            return  # no conversation yet: nobody can be watching it
        # Sent whatever this connection believes the state is (a claim made at the desk reaches
        # it later): only desks that opened the conversation are in the group.
        session_id = str(self.session.public_id)
        await to_desk(session_id, frames.visitor_typing(session_id=session_id, state=frame["state"]))

    def _take_action_token(self, what: str) -> None:
        """`handoff` and `contact` each write a row: they share the widget events' per-connection limit."""
        wait = self.event_bucket.take()
        if wait is not None:
            raise ClientError(protocol.RATE_LIMITED, f"Too many {what}; slow down.", retry_after=wait)

    async def abandon_handoff(self, session: ChatSession) -> None:
        """The visitor ended the conversation: a request still waiting for a person ends `abandoned`."""
        if await _abandon_waiting(session_pk=session.pk):
            session.handoff_state = session.Handoff.AI
            assert self.group is not None
            await publish(self.group, [frames.handoff_status(state="ended")])
            await relay(abandoned_event(session))

    async def send_handoff_status(self, session: ChatSession) -> None:
        """On `hello`: a session waiting for (or with) a person says so to the joining tab."""
        if session.pk is None or session.handoff_state not in (
            session.Handoff.WAITING,
            session.Handoff.ASSIGNED,
        ):
            return
        view = await _handoff_view(session=session)
        if view is not None:
            await self.send_frame(status_frame(view))

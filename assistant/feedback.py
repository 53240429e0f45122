"""The visitor's verdicts on `/ws/chat/`: thumbs on a reply, the end-of-chat survey, widget events.

A mixin of `ChatConsumer`, kept apart so that the consumer module holds the connection and the
conversation, and this one what the visitor tells us about it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async

from assistant import events, protocol, services
from assistant.delivery import publish, relay
from assistant.protocol import ClientError, frames

if TYPE_CHECKING:
    from assistant.models import ChatSession
    from assistant.ratelimit import TokenBucket

_feedback_upsert = database_sync_to_async(services.feedback_upsert)
_session_rate = database_sync_to_async(services.session_rate)
_event_record = database_sync_to_async(services.event_record)


class VisitorFeedback:
    """`handle_feedback`, `handle_rating`, `handle_event` for `ChatConsumer`."""

    if TYPE_CHECKING:
        session: ChatSession | None
        group: str | None
        channel_name: str
        event_bucket: TokenBucket

        async def _current(self) -> ChatSession: ...
        async def _materialize(self, *, client_id: str | None = None) -> ChatSession: ...
        async def send_frame(self, frame: Any) -> None: ...

    async def handle_feedback(self, frame: dict[str, Any]) -> None:
        """Upsert thumbs up/down on an assistant reply; every tab sees `feedback.ack`."""
        assert self.session is not None and self.group is not None
        if (await self._current()).pk is None:
            raise ClientError(protocol.NOT_FOUND, "No assistant reply with that message_id in this session.")
        feedback = await _feedback_upsert(
            session=self.session,
            message_id=frame["message_id"],
            rating=frame["rating"],
            reason=frame.get("reason", ""),
            comment=frame.get("comment", ""),
        )
        await self.send_frame(frames.feedback_ack(message_id=frame["message_id"], rating=feedback.rating))
        await publish(
            self.group,
            [frames.feedback_ack(message_id=frame["message_id"], rating=feedback.rating, others=True)],
            origin=self.channel_name,
        )
        await relay(
            events.FeedbackGiven(
                session_pk=self.session.pk,
                session_id=str(self.session.public_id),
                message_id=frame["message_id"],
                rating=feedback.rating,
            )
        )

    async def handle_rating(self, frame: dict[str, Any]) -> None:
        """Store the end-of-chat survey."""
        assert self.session is not None and self.group is not None
        session = await self._materialize()
        await _session_rate(
            session=session,
            score=frame["score"],
            resolved=frame.get("resolved"),
            comment=frame.get("comment", ""),
        )
        await self.send_frame(frames.rating_ack())
        await relay(
            events.SessionRated(
                session_pk=session.pk,
                session_id=str(session.public_id),
                score=frame["score"],
                resolved=frame.get("resolved"),
                comment=frame.get("comment", ""),
            )
        )

    async def handle_event(self, frame: dict[str, Any]) -> None:
        """Record a visitor action (no reply frame: events are fire-and-forget for the widget).

        Bounded twice: CHAT_EVENT_RATE_LIMIT_PER_MINUTE per connection (`rate_limited`) and
        CHAT_EVENTS_PER_SESSION in all (`limit_reached`, from the service).
        """
        assert self.session is not None and self.group is not None
        wait = self.event_bucket.take()
        if wait is not None:
            raise ClientError(protocol.RATE_LIMITED, "Too many events; slow down.", retry_after=wait)
        session = await self._materialize()
        await _event_record(session=session, name=frame["name"], data=frame.get("data") or {})
        await relay(
            events.VisitorEvent(
                session_pk=session.pk,
                session_id=str(session.public_id),
                name=frame["name"],
                data=frame.get("data") or {},
            )
        )

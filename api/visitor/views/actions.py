"""What the visitor tells about a conversation: thumbs on a reply, the survey, a request for a person.

Each does what the widget's frame does (`assistant.feedback`, `assistant.handoff.visitor`): the
same service, the same frames to the conversation's tabs, the same events (analytics, the desk).
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from api.schema_common import COMMON_ERRORS, error_responses
from api.visitor import limits, selectors, services
from api.visitor.base import ERROR_HEADERS, VisitorView
from api.visitor.presence import presences
from api.visitor.serializers import (
    RATINGS,
    FeedbackCreateSerializer,
    FeedbackSerializer,
    HandoffCreateSerializer,
    HandoffStatusSerializer,
    RatingCreateSerializer,
    RatingSerializer,
)
from assistant import events
from assistant.delivery import publish, relay
from assistant.groups import session_group
from assistant.handoff import services as handoff_services
from assistant.handoff.visitor import status_frame
from assistant.protocol import frames

_conversation_for = database_sync_to_async(selectors.conversation_for)
_conversation_of_message = database_sync_to_async(selectors.conversation_of_message)
_feedback_give = database_sync_to_async(services.feedback_give)
_rating_give = database_sync_to_async(services.rating_give)
_handoff_request = database_sync_to_async(handoff_services.handoff_request)

UPSERT_DESCRIPTION = "201 when it is the first, 200 when it replaced the earlier one."


class FeedbackView(VisitorView):
    """Thumbs up or down on an assistant reply of the token's conversation."""

    @extend_schema(
        operation_id="message_feedback_create",
        summary="Rate a reply (thumbs up or down)",
        description="On an assistant message of the token's conversation; giving it again replaces it. "
        + UPSERT_DESCRIPTION,
        request=FeedbackCreateSerializer,
        responses={
            201: OpenApiResponse(FeedbackSerializer, description="The first feedback on this reply."),
            200: OpenApiResponse(FeedbackSerializer, description="It replaced the earlier feedback."),
            **error_responses(400, 404, *COMMON_ERRORS),
        },
        parameters=ERROR_HEADERS,
        tags=["visitor"],
    )
    async def post(self, request: Request, message_id: str) -> Response:
        """Upsert the feedback; every tab of the conversation shows it."""
        data = self.validated(FeedbackCreateSerializer, request)
        public_id = self.public_id(message_id, "message's conversation")
        message_id = str(public_id)
        session = await _conversation_of_message(message_id=public_id, token=self.token(request))
        if session is None:
            raise self.refused("message's conversation")
        await limits.action_take(str(session.public_id))
        presence = presences().acquire(session)
        try:
            feedback, created = await _feedback_give(
                session=session,
                message_id=message_id,
                rating=RATINGS[data["rating"]],
                reason=data.get("reason", ""),
                comment=data.get("comment", ""),
            )
            ack = frames.feedback_ack(message_id=message_id, rating=feedback.rating, others=True)
            await publish(session_group(session.public_id), [ack], origin=presence.name)
            await relay(
                events.FeedbackGiven(
                    session_pk=session.pk,
                    session_id=str(session.public_id),
                    message_id=message_id,
                    rating=feedback.rating,
                )
            )
        finally:
            presences().release(presence)
        body = {
            "message_id": message_id,
            "rating": feedback.rating,
            "reason": feedback.reason,
            "comment": feedback.comment,
        }
        return Response(body, status=201 if created else 200)


class RatingView(VisitorView):
    """The end-of-chat survey of the token's conversation."""

    @extend_schema(
        operation_id="conversation_rating_create",
        summary="Rate the conversation (1 to 5)",
        description="The end-of-chat survey: a score, whether the problem was solved, a comment. " + UPSERT_DESCRIPTION,
        request=RatingCreateSerializer,
        responses={
            201: OpenApiResponse(RatingSerializer, description="The first rating of this conversation."),
            200: OpenApiResponse(RatingSerializer, description="It replaced the earlier rating."),
            **error_responses(400, 404, *COMMON_ERRORS),
        },
        parameters=ERROR_HEADERS,
        tags=["visitor"],
    )
    async def post(self, request: Request, conversation_id: str) -> Response:
        """Upsert the survey."""
        data = self.validated(RatingCreateSerializer, request)
        session = await _conversation_for(public_id=self.public_id(conversation_id), token=self.token(request))
        if session is None:
            raise self.refused()
        await limits.action_take(str(session.public_id))
        presence = presences().acquire(session)
        try:
            rating, created = await _rating_give(
                session=session, score=data["score"], resolved=data.get("resolved"), comment=data.get("comment", "")
            )
            await relay(
                events.SessionRated(
                    session_pk=session.pk,
                    session_id=str(session.public_id),
                    score=rating.score,
                    resolved=rating.resolved,
                    comment=rating.comment,
                )
            )
        finally:
            presences().release(presence)
        body = {"score": rating.score, "resolved": rating.resolved, "comment": rating.comment}
        return Response(body, status=201 if created else 200)


class HandoffView(VisitorView):
    """Ask for a person, as the widget's `handoff` frame does."""

    @extend_schema(
        operation_id="conversation_handoff_create",
        summary="Ask for a person",
        description="Queues the conversation for the agent desk (`waiting`, with its place), or says nobody can "
        "answer now (`unavailable`: outside business hours or no agent available). Asking again while waiting "
        "or assigned changes nothing and says where things stand. Every widget tab of the conversation is told.",
        request=HandoffCreateSerializer,
        responses={
            200: HandoffStatusSerializer,
            **error_responses(
                400, 404, 409, *COMMON_ERRORS, s409="`limit_reached`: this conversation asked too many times."
            ),
        },
        parameters=ERROR_HEADERS,
        tags=["visitor"],
    )
    async def post(self, request: Request, conversation_id: str) -> Response:
        """Request a person; the desk sees it."""
        data = self.validated(HandoffCreateSerializer, request)
        session = await _conversation_for(public_id=self.public_id(conversation_id), token=self.token(request))
        if session is None:
            raise self.refused()
        await limits.action_take(str(session.public_id))
        presence = presences().acquire(session)
        try:
            requested = await _handoff_request(session=session, reason=data.get("reason", ""))
            await publish(session_group(session.public_id), [status_frame(requested.view)], origin=presence.name)
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
        finally:
            presences().release(presence)
        view = requested.view
        return Response({"state": view.state, "position": view.position, "agent_name": view.agent_name})

"""`/api/v1/conversations/`: start one (anonymous), read one, end one."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from api import errors
from api.errors import ApiError
from api.schema_common import COMMON_ERRORS, error_responses
from api.visitor import limits, selectors, services
from api.visitor.base import ERROR_HEADERS, VisitorView, client_ip
from api.visitor.presence import presences
from api.visitor.serializers import (
    ConversationCreatedSerializer,
    ConversationCreateSerializer,
    ConversationSerializer,
    EmptySerializer,
)
from assistant import events
from assistant.access import verify_identity
from assistant.delivery import publish, relay
from assistant.groups import session_group
from assistant.handoff import services as handoff_services
from assistant.handoff.visitor import abandoned_event
from assistant.protocol import frames
from assistant.selectors import iso
from assistant.services import PageContext, session_end

_conversation_create = database_sync_to_async(services.conversation_create)
_conversation_read = database_sync_to_async(selectors.conversation_read)
_conversation_for = database_sync_to_async(selectors.conversation_for)
_conversation_view = database_sync_to_async(selectors.conversation_view)
_session_end = database_sync_to_async(session_end)
_abandon_waiting = database_sync_to_async(handoff_services.abandon_waiting)


def config() -> dict[str, Any]:
    """What the widget learns in `welcome.config`."""
    return {
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        "quick_replies": list(settings.ASSISTANT_QUICK_REPLIES),
        "greeting": settings.ASSISTANT_GREETING,
        "ask_contact": settings.WIDGET_ASK_CONTACT,
    }


class ConversationsView(VisitorView):
    """Start a conversation: anonymous, limited per address like the widget's."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="conversations_create",
        summary="Start a conversation",
        description="Anonymous. Takes the websocket's `hello` fields (all optional): a signed `identity` "
        "(ignored unless valid; required when the server sets WIDGET_IDENTITY_REQUIRED), the `page` and the "
        "`locale`. Answers the conversation's `token`, which every other visitor operation needs: keep it. "
        "Limited per client address with the widget's new conversations (CHAT_SESSIONS_PER_IP_PER_HOUR).",
        request=ConversationCreateSerializer,
        responses={
            201: ConversationCreatedSerializer,
            **error_responses(
                400,
                *COMMON_ERRORS,
                s403="`forbidden`: a valid signed identity is required, or the Origin is not allowed.",
            ),
        },
        auth=[],
        parameters=ERROR_HEADERS,
        tags=["visitor"],
    )
    async def post(self, request: Request) -> Response:
        """Write the conversation now (source `api`) and give its token."""
        data = self.validated(ConversationCreateSerializer, request)
        identity = verify_identity(data.get("identity"))
        if settings.WIDGET_IDENTITY_REQUIRED and identity is None:
            raise ApiError(
                errors.FORBIDDEN,
                "A valid signed identity is required (WIDGET_IDENTITY_REQUIRED).",
                status_code=403,
                field="identity",
            )
        await limits.conversation_take(client_ip(request))
        page = data.get("page") or {}
        context = PageContext(
            url=page.get("url", ""),
            title=page.get("title", ""),
            referrer=page.get("referrer", ""),
            locale=data.get("locale", ""),
            user_agent=request.headers.get("User-Agent", "")[:500],
        )
        session, token = await _conversation_create(identity=identity, page=context)
        # Subscribers learn of the new conversation as of a widget's first message.
        presences().release(presences().acquire(session, created=True))
        return Response(
            {
                "id": str(session.public_id),
                "token": token,
                "title": session.title,
                "status": session.status,
                "created_at": iso(session.created_at),
                "user_type": session.user_type,
            },
            status=201,
        )


class ConversationView(VisitorView):
    """One conversation, for the bearer of its token."""

    @extend_schema(
        operation_id="conversation_read",
        summary="Read a conversation",
        description="Its title, status, last seq, who answers (the handoff) and the widget's configuration.",
        responses={200: ConversationSerializer, **error_responses(404, *COMMON_ERRORS)},
        parameters=ERROR_HEADERS,
        tags=["visitor"],
    )
    async def get(self, request: Request, conversation_id: str) -> Response:
        """The conversation."""
        view = await _conversation_read(public_id=self.public_id(conversation_id), token=self.token(request))
        if view is None:
            raise self.refused()
        return Response({**view, "config": config()})


class ConversationEndView(VisitorView):
    """End a conversation, as the widget's `end` frame does."""

    @extend_schema(
        operation_id="conversation_end",
        summary="End a conversation",
        description="Closes it (every widget tab of it is told `ended`); a request for a person still waiting "
        "ends `abandoned`. The token keeps working: a new message reopens the conversation.",
        request=EmptySerializer,
        responses={200: ConversationSerializer, **error_responses(400, 404, *COMMON_ERRORS)},
        parameters=ERROR_HEADERS,
        tags=["visitor"],
    )
    async def post(self, request: Request, conversation_id: str) -> Response:
        """Close the conversation."""
        self.validated(EmptySerializer, request)
        session = await _conversation_for(public_id=self.public_id(conversation_id), token=self.token(request))
        if session is None:
            raise self.refused()
        await limits.action_take(str(session.public_id))
        group = session_group(session.public_id)
        presence = presences().acquire(session)
        try:
            await _session_end(session=session)
            if await _abandon_waiting(session_pk=session.pk):
                session.handoff_state = session.Handoff.AI
                await publish(group, [frames.handoff_status(state="ended")], origin=presence.name)
                await relay(abandoned_event(session))
            await publish(group, [frames.ended()], origin=presence.name)
            await relay(events.SessionEnded(session_pk=session.pk, session_id=str(session.public_id)))
        finally:
            presences().release(presence)
        return Response({**await _conversation_view(session=session), "config": config()})

"""`/api/v1/conversations/{id}/messages/`: read the conversation, and take a turn in it."""

from __future__ import annotations

import re
import uuid
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotAcceptable
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from api import errors
from api.errors import ApiError
from api.schema_common import COMMON_ERRORS, error_responses
from api.visitor import selectors, sse, turns
from api.visitor.base import ERROR_HEADERS, VisitorView, client_ip
from api.visitor.serializers import (
    NOT_BLANK,
    MessageCreateSerializer,
    MessagePageSerializer,
    TurnErrorSerializer,
    TurnSerializer,
)
from assistant import protocol
from assistant.protocol import MAX_SEQ
from assistant.services import DESK_CLIENT_PREFIX

_messages_read = database_sync_to_async(selectors.messages_read)
_conversation_for = database_sync_to_async(selectors.conversation_for)

#: A message needs a character that is not blank (as the schema's pattern for `text` says).
_NOT_BLANK = re.compile(NOT_BLANK)
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: `client_id` and the Idempotency-Key header both given, with different values.
IDEMPOTENCY_CONFLICT = "idempotency_conflict"
#: The header's schema: what `_idempotency_key` accepts.
IDEMPOTENCY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[!-~]+$",
                      "not": {"pattern": "^desk:"}}  # fmt: skip
MAX_KEY_CHARS = 64
#: Keys the API makes up when the client sends none (every visitor message has one).
GENERATED_KEY_PREFIX = "api-"

SSE_DESCRIPTION = (
    "With `Accept: text/event-stream`: the turn as Server-Sent Events named like the websocket's frames, "
    "each `data:` the frame's JSON: `ack` (the message is stored), `reply.start`, `reply.delta` (text), "
    "`reply.end` (how it ended; after a provider failed mid-reply, another `reply.start` with `retry_of` "
    "follows), then the stream ends. `handoff.status` instead of a reply while a person answers; `error` if the "
    "reply outlasts CHAT_REPLY_TIMEOUT_S. Comment lines keep an idle stream alive."
)


def _query_int(request: Request, name: str, default: int, *, minimum: int, maximum: int) -> int:
    """Query parameter `name`: given at most once, a whole number from `minimum` to `maximum`."""
    values = request.query_params.getlist(name)
    if not values:
        return default
    if len(values) > 1:
        raise ApiError(errors.INVALID_PARAMETER, f"'{name}' may be given once.", parameter=name)
    raw = values[0]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise ApiError(errors.INVALID_PARAMETER, f"'{name}' must be a whole number.", parameter=name)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ApiError(errors.INVALID_PARAMETER, f"'{name}' must be {minimum} to {maximum}.", parameter=name)
    return value


def _idempotency_key(request: Request, client_id: str | None) -> str:
    """The turn's key: the Idempotency-Key header or `client_id` (the same if both), else a new one."""
    header = request.headers.get(IDEMPOTENCY_HEADER)
    if header is not None:
        if not 1 <= len(header) <= MAX_KEY_CHARS or not all("!" <= char <= "~" for char in header):
            raise ApiError(
                errors.INVALID_PARAMETER,
                f"'{IDEMPOTENCY_HEADER}' must be 1 to {MAX_KEY_CHARS} printable ASCII characters.",
                parameter=IDEMPOTENCY_HEADER,
            )
        if client_id is not None and client_id != header:
            raise ApiError(
                IDEMPOTENCY_CONFLICT,
                f"'client_id' and the {IDEMPOTENCY_HEADER} header name the same key: they differ.",
                status_code=409,
                field="client_id",
            )
    key = header if header is not None else client_id
    if key is None:
        return GENERATED_KEY_PREFIX + uuid.uuid4().hex
    if key.startswith(DESK_CLIENT_PREFIX):
        detail = f"The idempotency key may not begin with {DESK_CLIENT_PREFIX!r}."
        if header is not None:
            raise ApiError(errors.INVALID_PARAMETER, detail, parameter=IDEMPOTENCY_HEADER)
        raise ApiError(errors.INVALID_FIELD, detail, field="client_id")
    return key


def _text(data: dict[str, Any]) -> str:
    """The message text, with the websocket's codes for a blank or too long one."""
    text: str = data["text"]
    if not _NOT_BLANK.search(text):
        raise ApiError(protocol.EMPTY_MESSAGE, "The message is empty.", field="text")
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise ApiError(
            protocol.MESSAGE_TOO_LONG, f"The message is {len(text)} characters; the limit is {limit}.", field="text"
        )
    return text


class MessagesView(VisitorView):
    """The conversation's messages; a new visitor message and its reply."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        """A new message may also be answered as an event stream (`Accept: text/event-stream`)."""
        if request.method != "POST":
            return super().perform_content_negotiation(request, force)
        renderers = [JSONRenderer(), sse.EventStreamRenderer()]
        try:
            return self.get_content_negotiator().select_renderer(request, renderers)
        except NotAcceptable:
            if force:
                return renderers[0], renderers[0].media_type
            raise

    @extend_schema(
        operation_id="conversation_messages_list",
        summary="Messages after a seq",
        description="Messages with seq > `since`, oldest first, with the fields of the websocket's history. "
        "Poll with `since=next_since`: it never passes a reply still streaming, so that one comes again "
        "until it is final.",
        parameters=[
            *ERROR_HEADERS,
            OpenApiParameter(
                "since",
                {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
                description="Only messages after this seq (default 0).",
                required=False,
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                description=f"At most this many (default {DEFAULT_LIMIT}).",
                required=False,
            ),
        ],
        responses={200: MessagePageSerializer, **error_responses(400, 404, *COMMON_ERRORS)},
        tags=["visitor"],
    )
    async def get(self, request: Request, conversation_id: str) -> Response:
        """Up to `limit` messages after `since`."""
        unknown = sorted(set(request.query_params) - {"since", "limit"})
        if unknown:
            name = unknown[0][:40]
            raise ApiError(
                errors.INVALID_PARAMETER, f"Unknown parameter '{name}'; allowed: limit, since.", parameter=name
            )
        since = _query_int(request, "since", 0, minimum=0, maximum=MAX_SEQ)
        limit = _query_int(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        page = await _messages_read(
            public_id=self.public_id(conversation_id), token=self.token(request), since=since, limit=limit
        )
        if page is None:
            raise self.refused()
        return Response(page)

    @extend_schema(
        operation_id="conversation_messages_create",
        summary="Send a visitor message and get the reply",
        description="Stores the message and answers once the reply has ended: 201 with the pair, or 200 with the "
        "first pair for a retry with the same idempotency key (`Idempotency-Key` header or `client_id`). While a "
        "person answers the visitor, no AI reply: `ai_message` is null and `handoff` says who answers. "
        "502 only when every provider, the offline one included, failed; 504 when the reply outlasts "
        "CHAT_REPLY_TIMEOUT_S. Both keep the message, and give the turn as stored.\n\n" + SSE_DESCRIPTION,
        request=MessageCreateSerializer,
        parameters=[
            *ERROR_HEADERS,
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                IDEMPOTENCY_SCHEMA,
                OpenApiParameter.HEADER,
                required=False,
                description="Makes the request safe to retry: the same key returns the first turn (1 to 64 "
                "printable ASCII characters; same as `client_id`).",
            ),
        ],
        responses={
            (201, "application/json"): OpenApiResponse(TurnSerializer, description="The turn, its reply ended."),
            (200, "application/json"): OpenApiResponse(TurnSerializer, description="A retry: the first turn."),
            (200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description=SSE_DESCRIPTION),
            **error_responses(
                400,
                404,
                409,
                *COMMON_ERRORS,
                s400="`empty_message`, `message_too_long` (field `text`), `invalid_field`, `invalid_parameter` "
                "(a bad Idempotency-Key), `invalid_json`.",
                s409="`reply_in_progress`: the conversation's previous reply has not ended yet; "
                "`idempotency_conflict`: `client_id` and the Idempotency-Key header differ.",
            ),
            (500, "application/json"): OpenApiResponse(TurnErrorSerializer, description="`internal_error`."),
            (502, "application/json"): OpenApiResponse(
                TurnErrorSerializer, description="`provider_unavailable`: every provider failed."
            ),
            (504, "application/json"): OpenApiResponse(
                TurnErrorSerializer, description="`reply_timeout`: the reply outlasted CHAT_REPLY_TIMEOUT_S."
            ),
        },
        tags=["visitor"],
    )
    async def post(self, request: Request, conversation_id: str) -> HttpResponseBase:
        """Take a turn: blocking, or as an event stream."""
        data = self.validated(MessageCreateSerializer, request)
        text = _text(data)
        client_id = _idempotency_key(request, data.get("client_id"))
        session = await _conversation_for(public_id=self.public_id(conversation_id), token=self.token(request))
        if session is None:
            raise self.refused()
        stream = sse.wants_stream(request)
        turn = await turns.start(session=session, text=text, client_id=client_id, ip=client_ip(request), stream=stream)
        if stream and turn.frames is not None:
            return sse.response(turns.live_events(turn))
        result, timed_out = await turns.settle(turn)
        handoff = await turns.handoff_of(turn) if result.ai_message is None else None
        if stream:
            return sse.response(turns.replayed_events(turn, result, handoff))
        answer = turns.body(turn, result, handoff)
        failed = turns.failure(result, timed_out=timed_out)
        if failed is not None:
            status, code, detail = failed
            return Response({"code": code, "detail": detail, **answer}, status=status)
        return Response(answer, status=200 if turn.duplicate else 201)

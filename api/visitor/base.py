"""`VisitorView`: a DRF view whose handlers are coroutines running on the server's event loop.

DRF's views are synchronous; under ASGI Django would run them in a thread. The chat is not: its
reply tasks, its delivery to the session's tabs and its event seam (whose subscribers keep state
per event loop) live on the loop. So these views keep DRF's request handling (content
negotiation, authentication, permissions, parsers, the `{code, detail}` errors, the OpenAPI
schema) and await their handlers instead of calling them.

Each handler runs as its own task in a fresh `contextvars.Context`: its database units
(`database_sync_to_async`, as in the consumers) then run on the chat's database thread rather than
on a thread of the HTTP request, and what it starts (a reply, an analytics write) belongs to the
process, not to a request that ends before it does.

Before the handler, every request is checked for its browser origin (403 `forbidden` unless
allowed, as for the widget's websocket), counted against API_REQUESTS_PER_IP_PER_MINUTE, and
refused (413) past the body size the endpoint takes.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import uuid
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from rest_framework import exceptions, parsers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import errors
from api.errors import ApiError
from api.schema_common import error_headers
from api.visitor import auth, limits
from api.visitor.auth import ConversationToken, ConversationTokenAuthentication
from assistant import protocol

logger = logging.getLogger(__name__)

#: The largest request body any visitor endpoint reads (a message at CHAT_MAX_MESSAGE_CHARS,
#: every character escaped as \\uXXXX, and the rest of the object).
BODY_HEADROOM = 4096
PAYLOAD_TOO_LARGE = "payload_too_large"
#: A UUID as the schema's `format: uuid` (and every id this API gives) writes it.
CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: The headers of the visitor operations' errors, for the schema (Retry-After on 429 and 503).
ERROR_HEADERS = error_headers(429, 503)
#: 5xx answers that are the server shedding load or restarting, not failing.
QUIET_CODES = frozenset({limits.SERVER_BUSY, protocol.RESTARTING})


def body_limit() -> int:
    """Bytes a visitor request body may have."""
    return max(64 * 1024, 6 * settings.CHAT_MAX_MESSAGE_CHARS + BODY_HEADROOM)


class StrictJSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a body nested too deeply for the decoder a 400 too (not a 500)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None


class AcceptNegotiation(DefaultContentNegotiation):
    """By the Accept header alone: no `?format=` (an undocumented parameter would change the answer)."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)


def client_ip(request: HttpRequest) -> str:
    """The client's address (a trusted proxy's X-Forwarded-For already applied: project.proxy)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


async def detached(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run `coroutine` as a task in a fresh context, and wait for it.

    A client that hangs up does not cut the handler short (Django cancels the request's task): a
    turn half begun would leave a reply row nobody generates, blocking the conversation; an
    action stored but not announced would be missing from analytics. Like a websocket handler,
    it runs to its end; only its answer goes nowhere.
    """
    task = asyncio.create_task(coroutine, context=contextvars.Context())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_orphaned_done)
        raise


def _orphaned_done(task: asyncio.Task[Any]) -> None:
    """A handler whose client left has ended: its error, if not the client's fault, is logged."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None and errors.convert(error) is None:
        logger.error("Visitor API handler failed after its client left", exc_info=error)


def _rendered(response: Response) -> HttpResponse:
    """`response` rendered here, as a plain response.

    Django renders a deferred response in a thread of its own (`sync_to_async`); rendering JSON
    needs none, and a turn's request already pays for enough thread hops.
    """
    response.render()
    plain = HttpResponse(response.content, status=response.status_code)
    for name, value in response.items():
        plain[name] = value
    data = response.data
    if isinstance(data, dict) and data.get("code") in QUIET_CODES:
        # Shedding load is not a server error: Django would log each of these 503s as an ERROR.
        plain._has_been_logged = True  # type: ignore[attr-defined]
    return plain


class VisitorView(APIView):
    """A visitor endpoint: async handlers (`async def get/post`), a conversation token unless public."""

    authentication_classes = [ConversationTokenAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [StrictJSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = AcceptNegotiation

    async def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:  # type: ignore[override]
        """DRF's dispatch (`APIView.dispatch`) with the handler awaited, plus origin, CORS and limits."""
        self.args, self.kwargs = args, kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        origin, allowed = auth.browser_origin(request)
        try:
            if not allowed:
                raise ApiError(errors.FORBIDDEN, "Requests from this origin are not allowed.", status_code=403)
            if request.method == "OPTIONS":
                response: HttpResponseBase = HttpResponse(status=204)
                auth.add_cors(response, origin, preflight=True)
                return response
            self._check_body(request)
            self.initial(drf_request, *args, **kwargs)
            await limits.request_take(client_ip(request))
            method = (request.method or "").lower()
            handler = getattr(self, method, None) if method in self.http_method_names else None
            if handler is None:
                raise exceptions.MethodNotAllowed(request.method)
            response = await detached(handler(drf_request, *args, **kwargs))
        except Exception as exc:
            response = self.handle_exception(exc)
        response = self.finalize_response(drf_request, response, *args, **kwargs)
        if isinstance(response, Response):
            response = _rendered(response)
        if allowed:
            auth.add_cors(response, origin)
        return response

    def _check_body(self, request: HttpRequest) -> None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = body_limit()
        if length > limit:
            raise ApiError(PAYLOAD_TOO_LARGE, f"The request body may have at most {limit} bytes.", status_code=413)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        """Answers other than an event stream are JSON, whatever renderer negotiation chose."""
        renderer = getattr(request, "accepted_renderer", None)
        if isinstance(response, Response) and renderer is not None and not isinstance(renderer, JSONRenderer):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    # --- for handlers ------------------------------------------------------------------------
    @staticmethod
    def token(request: Request) -> str:
        """The conversation token of an authenticated request."""
        user = request.user
        assert isinstance(user, ConversationToken)
        return user.token

    @staticmethod
    def validated(serializer_class: type, request: Request) -> dict[str, Any]:
        """The request body validated by `serializer_class` (an empty body is `{}`); 400 naming the field."""
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    @staticmethod
    def refused(what: str = "conversation") -> ApiError:
        """The one answer for anything the token does not open: 403, whether or not it exists.

        The token is derived from its conversation's id, so a token opens one conversation; which
        others exist is nobody's business (the same answer, and the same work, for all of them).
        """
        return ApiError(errors.FORBIDDEN, f"This token does not open that {what}.", status_code=403)

    def public_id(self, value: uuid.UUID | str, what: str = "conversation") -> uuid.UUID:
        """A path's id as a UUID; one that is not a UUID opens nothing (the same 403)."""
        if isinstance(value, uuid.UUID):
            return value
        if not CANONICAL_UUID.fullmatch(value):  # `uuid.UUID` also takes braces, `urn:uuid:`, no hyphens
            raise self.refused(what)
        return uuid.UUID(value)

"""Who may use a conversation: the bearer of its token, from an allowed browser origin.

The token is the conversation's resume token, the one the websocket's `welcome` gives
(`assistant.services.session_token`), sent as `Authorization: Bearer <token>`. Parsing the header
here touches no database: the token is checked against the conversation (its stored hash) in the
same unit of work that reads it (`api.visitor.selectors`), and a token that is not the
conversation's gets the same 403 as a conversation that does not exist, so it tells nothing.

No cookie is involved, so there is nothing for CSRF to protect (and no `SessionAuthentication`):
a page on another site cannot make a browser send the token. Browsers are still held to the
widget's origins (`WIDGET_ALLOWED_ORIGINS`, checked as the websocket checks them), and an allowed
origin gets the CORS headers that let its page read the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from assistant.access import origin_allowed

#: A conversation token: URL-safe base64 (43 characters today; some room for other lengths).
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")
MALFORMED = "Malformed credentials: send 'Authorization: Bearer <token>' with the conversation's token."

#: What a browser may send and read across origins (an allowed one).
CORS_ALLOW_HEADERS = "Authorization, Content-Type, Accept, Idempotency-Key"
CORS_EXPOSE_HEADERS = "Retry-After, WWW-Authenticate"
CORS_MAX_AGE_S = 600


@dataclass(frozen=True, slots=True)
class ConversationToken:
    """The bearer of a conversation token (`request.user`); which conversation is checked later."""

    token: str
    is_authenticated: bool = True


class ConversationTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <conversation token>`: well-formed or 401; checked against the conversation later."""

    def authenticate(self, request: Request) -> tuple[ConversationToken, str] | None:
        """The token; None without an Authorization header; 401 when it is not a bearer token of ours."""
        header = get_authorization_header(request)
        if not header:
            return None
        scheme, _, token = header.partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or len(token) > 128 or not TOKEN_PATTERN.fullmatch(token.decode("latin-1")):
            raise AuthenticationFailed(MALFORMED)
        value = token.decode("ascii")
        return ConversationToken(value), value

    def authenticate_header(self, request: Request) -> str:
        """A 401 names the scheme."""
        return 'Bearer realm="api"'


class ConversationTokenScheme(OpenApiAuthenticationExtension):
    """The schema's description of conversation tokens."""

    target_class = "api.visitor.auth.ConversationTokenAuthentication"
    name = "conversationToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        """HTTP bearer: the token `POST /api/v1/conversations/` returned (or the widget's resume token)."""
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The conversation's token: `token` of `POST /api/v1/conversations/` (the same "
            "resume token the websocket's `welcome` gives). It opens that conversation only.",
        }


def _scope(request: HttpRequest) -> dict[str, Any]:
    """The request's Origin and Host as the ASGI scope `assistant.access.origin_allowed` reads."""
    headers = []
    for name in ("Origin", "Host"):
        value = request.headers.get(name)
        if value is not None:
            headers.append((name.lower().encode(), value.encode("latin-1", "replace")))
    return {"headers": headers}


def browser_origin(request: HttpRequest) -> tuple[str | None, bool]:
    """The request's Origin header (None for non-browser clients) and whether it is allowed."""
    origin = request.headers.get("Origin")
    return origin, origin is None or origin_allowed(_scope(request))


def add_cors(response: HttpResponseBase, origin: str | None, *, preflight: bool = False) -> None:
    """Let an allowed origin's page read `response` (and, for a preflight, send what the API takes)."""
    if origin is None:
        return
    response["Access-Control-Allow-Origin"] = origin
    response["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    vary = response.get("Vary")
    response["Vary"] = f"{vary}, Origin" if vary else "Origin"
    if preflight:
        response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        response["Access-Control-Max-Age"] = str(CORS_MAX_AGE_S)

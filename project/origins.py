"""Only the site's own pages may open a staff websocket: the Origin check of every staff socket.

A browser sends the admin's session cookie with any websocket it opens to this host, whichever
page opens it: without this check a page on `https://evil.example` (or a sandboxed frame, whose
Origin is `null`) visited by a signed-in staff user could watch the live analytics feed and every
visitor's messages (cross-site websocket hijacking; CORS does not apply to websockets).

`StaffOriginGuard` wraps each staff route (`staff_routes` in `project/asgi.py`), before the
session cookie is even read. A connection is let through only when its `Origin` is

- the site's own origin: the host and port of the `Host` header the browser sent (a `Host`
  without a port means the default port of the Origin's scheme; when the server itself speaks
  TLS, the Origin must be `https`), with that host in ALLOWED_HOSTS (no DNS rebinding); or
- one of STAFF_ALLOWED_ORIGINS (exact scheme, host and port; default none).

Refused: a missing Origin, `null`, several Origin headers, anything that is not
`http(s)://host[:port]`. A missing Origin is refused because every browser sends one on a
websocket handshake (RFC 6455 section 4.1 requires it of browser clients, and they do not let
pages remove it), so a handshake without it is not one of the staff's pages; a script holding a
staff cookie can use the JSON API instead. A refused connection is accepted and then closed with
4403, like the chat socket's Origin check, so the dashboard can show the code (a handshake
refused before accepting reaches a page as a bare 1006), and logs one WARNING line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host
from django.urls import URLPattern

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN_ORIGIN = 4403
DEFAULT_PORTS = {"http": 80, "https": 443}
#: How long a refused socket waits for the client to acknowledge the close before letting go.
CLOSE_WAIT_S = 5.0

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
Origin = tuple[str, str, int]


def parse_origin(value: str) -> Origin | None:
    """`(scheme, host, port)` of a serialised origin `http(s)://host[:port]`, or None if malformed."""
    value = value.strip()
    try:
        parts = urlsplit(value.lower())
        port = parts.port
    except ValueError:  # a bad port or a broken IPv6 literal
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    if parts.path or parts.query or parts.fragment or value.endswith(("?", "#")):
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _headers(scope: dict[str, Any], name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == name]


def _allowed_hosts() -> list[str]:
    """ALLOWED_HOSTS as Django applies it to HTTP requests (localhost only, when empty under DEBUG)."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def _same_site(origin: Origin, host_header: str, scope: dict[str, Any]) -> bool:
    """Whether `origin` is this site as the browser addressed it (the Host header)."""
    scheme, host, port = origin
    if scope.get("scheme") == "wss" and scheme != "https":
        return False
    try:
        parts = urlsplit(f"//{host_header.strip().lower()}")
        host_port = parts.port
    except ValueError:
        return False
    if not parts.hostname or parts.path or parts.username is not None:
        return False
    if not validate_host(parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]", _allowed_hosts()):
        return False
    return parts.hostname == host and (host_port or DEFAULT_PORTS[scheme]) == port


def check_staff_origin(scope: dict[str, Any]) -> str | None:
    """None when a staff socket may open from this scope's Origin, else why it may not."""
    origins = _headers(scope, b"origin")
    if not origins:
        return "no Origin header (browsers always send one)"
    if len(origins) > 1:
        return "several Origin headers"
    origin = parse_origin(origins[0])
    if origin is None:
        return "an opaque (null) or malformed Origin"
    if origin in {parse_origin(item) for item in settings.STAFF_ALLOWED_ORIGINS}:
        return None
    hosts = _headers(scope, b"host")
    if len(hosts) == 1 and _same_site(origin, hosts[0], scope):
        return None
    return "not this site's origin nor one of STAFF_ALLOWED_ORIGINS"


class StaffOriginGuard:
    """ASGI middleware for a staff websocket: refuses other origins with 4403 and one WARNING."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the connection on, or refuse it before anything reads its cookie."""
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        reason = check_staff_origin(scope)
        if reason is None:
            await self.app(scope, receive, send)
            return
        origin = (_headers(scope, b"origin") or ["(none)"])[0]
        logger.warning("Refused staff websocket %s from Origin %r: %s", scope.get("path"), origin[:120], reason)
        await _refuse(receive, send)


async def _refuse(receive: Any, send: Any) -> None:
    """Accept then close with 4403, and wait (briefly) for the client to go."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": CLOSE_FORBIDDEN_ORIGIN})
    try:
        async with asyncio.timeout(CLOSE_WAIT_S):
            while (await receive())["type"] != "websocket.disconnect":
                pass  # frames the client sent before it saw the close: dropped unread
    except TimeoutError:
        pass


def staff_routes(patterns: Iterable[URLPattern]) -> list[URLPattern]:
    """`patterns` (websocket routes of staff consumers) each behind `StaffOriginGuard`.

    Every staff socket is mounted through this in `project/asgi.py`, so a new one (the agent
    desk…) gets the same check by being listed there.
    """
    return [
        URLPattern(route.pattern, StaffOriginGuard(route.callback), route.default_args, route.name)
        for route in patterns
    ]

"""Server-Sent Events: a turn streamed as the websocket's frames, one event per frame.

Each event is named like the frame's `type` (`ack`, `reply.start`, `reply.delta`, `reply.end`,
`handoff.status`, `error`) and its `data:` is the frame's JSON, exactly what a websocket tab
receives, on one line. A comment line (`: keep-alive`) goes out every API_SSE_KEEPALIVE_S while
nothing else does, so that proxies do not drop a stream waiting for a slow provider.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.http import StreamingHttpResponse
from rest_framework.renderers import BaseRenderer

MEDIA_TYPE = "text/event-stream"
KEEPALIVE = b": keep-alive\n\n"


def event(name: str, data: Mapping[str, Any]) -> bytes:
    """One event. Text that is not valid Unicode (a lone surrogate from a vendor) goes as ASCII escapes."""
    try:
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        payload = json.dumps(data, separators=(",", ":")).encode("ascii")
    return b"event: " + name.encode("ascii") + b"\ndata: " + payload + b"\n\n"


class EventStreamRenderer(BaseRenderer):
    """Lets content negotiation accept `Accept: text/event-stream` (the view streams the events itself)."""

    media_type = MEDIA_TYPE
    format = "sse"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        """Not used for streams (errors before a stream starts are rendered as JSON by the view)."""
        return json.dumps(data).encode()


def wants_stream(request: Any) -> bool:
    """Whether content negotiation chose the event stream for `request`."""
    return isinstance(getattr(request, "accepted_renderer", None), EventStreamRenderer)


def response(events: Any) -> StreamingHttpResponse:
    """A 200 event stream over the async iterator `events`, never cached or buffered on the way."""
    stream = StreamingHttpResponse(events, content_type=f"{MEDIA_TYPE}; charset=utf-8")
    stream["Cache-Control"] = "no-cache"
    stream["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return stream

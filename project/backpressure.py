"""Backpressure for streamed HTTP responses under daphne.

daphne hands every `http.response.body` message to twisted at once and returns: with a client
slower than the server (any remote one), a streamed response piles up in the server's send
buffer, so a million-row export ends up in memory after all (bench/dashboard_scale.py part C:
350+ MB after 8 s of a 6 MB/s reader). twisted can tell a producer to pause when the socket's
buffer is full; daphne registers none. This wraps the HTTP app's `send`: while a response has
more body to come, a push producer is registered on daphne's request, and `send` waits while
twisted has paused it. Under another server (or the test client) it changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

Send = Callable[[dict[str, Any]], Awaitable[None]]


@implementer(IPushProducer)
class _Flow:
    """Open while the client keeps up; twisted closes it when the socket's buffer is full."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    def pauseProducing(self) -> None:
        """The socket's buffer is full."""
        self.open.clear()

    def resumeProducing(self) -> None:
        """The client has caught up."""
        self.open.set()

    def stopProducing(self) -> None:
        """The connection is gone: let the app go on and notice the disconnect."""
        self.open.set()


def _daphne_request(send: Any) -> Any:
    """daphne's twisted request, bound into the `send` it gives the app (functools.partial)."""
    args = getattr(send, "args", None) or (None,)
    request = args[0]
    return request if hasattr(request, "registerProducer") and hasattr(request, "channel") else None


def _release(request: Any, flow: _Flow) -> None:
    """Unregister `flow`, unless the connection is gone (twisted has dropped the channel then)."""
    if getattr(request, "producer", None) is flow and getattr(request, "channel", None) is not None:
        request.unregisterProducer()


class Backpressure:
    """ASGI middleware for HTTP: `send` of a streamed body waits while the client is behind."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        """Serve one request, pacing its body to the client."""
        request = _daphne_request(send)
        if scope["type"] != "http" or request is None:
            await self.app(scope, receive, send)
            return
        flow: _Flow | None = None

        async def paced(message: dict[str, Any]) -> None:
            nonlocal flow
            body = message["type"] == "http.response.body"
            more = body and message.get("more_body", False)
            if more and flow is None and request.producer is None:
                flow = _Flow()
                try:
                    request.registerProducer(flow, True)
                except (RuntimeError, ValueError):  # another producer on this channel: no pacing
                    flow = None
            elif body and not more and flow is not None:
                _release(request, flow)  # before the last write: twisted complains otherwise
                flow = None
            await send(message)
            if flow is not None:
                await flow.open.wait()

        try:
            await self.app(scope, receive, paced)
        finally:
            if flow is not None:
                _release(request, flow)

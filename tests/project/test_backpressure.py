"""`project.backpressure`: a streamed body waits while daphne's transport is paused."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from project.backpressure import Backpressure


class Request:
    """The two parts of daphne's twisted request the middleware uses (registerProducer, channel)."""

    def __init__(self) -> None:
        self.producer: Any = None
        self.channel = object()
        self.log: list[str] = []

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer
        self.log.append("register")

    def unregisterProducer(self) -> None:
        self.producer = None
        self.log.append("unregister")


async def daphne_send(request: Request, message: dict[str, Any]) -> None:
    request.log.append(f"{message['type']}:{message.get('body', b'').decode()}")
    if message.get("body") == b"a":
        request.producer.pauseProducing()  # twisted: the socket's buffer is full after this write


async def streaming_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in ("a", "b"):
        await send({"type": "http.response.body", "body": part.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"c", "more_body": False})


async def test_body_waits_while_paused_and_the_producer_is_released_before_the_last_write() -> None:
    request = Request()
    send = functools.partial(daphne_send, request)  # daphne binds its request the same way
    app = asyncio.create_task(Backpressure(streaming_app)({"type": "http"}, None, send))
    await asyncio.sleep(0.05)
    assert request.log == ["http.response.start:", "register", "http.response.body:a"]
    request.producer.resumeProducing()
    await app
    assert request.log[3:] == ["http.response.body:b", "unregister", "http.response.body:c"]
    assert request.producer is None


async def test_other_servers_and_whole_bodies_pass_through_untouched() -> None:
    sent: list[dict[str, Any]] = []

    async def plain_send(message: dict[str, Any]) -> None:
        sent.append(message)

    await Backpressure(streaming_app)({"type": "http"}, None, plain_send)
    assert [m.get("body") for m in sent] == [None, b"a", b"b", b"c"]

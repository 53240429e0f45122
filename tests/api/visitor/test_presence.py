"""API requests as connections of their conversation: one tracker load per conversation, not per turn."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from analytics import tracker
from analytics.selectors import transcript
from api.visitor.presence import presences
from assistant import events
from assistant.delivery import layer_is_shared
from tests.api.visitor.conftest import start_conversation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends, pytest.mark.usefixtures("drain_replies")]


@pytest.fixture
def connections() -> Iterator[list[str]]:
    """`SessionOpened` and `ConnectionClosed` as they are published, by kind."""
    seen: list[str] = []

    def opened(event: events.SessionOpened) -> None:
        seen.append("opened")

    def closed(event: events.ConnectionClosed) -> None:
        seen.append("closed")

    events.subscribe(events.SessionOpened, opened)
    events.subscribe(events.ConnectionClosed, closed)
    yield seen
    events.bus.unsubscribe(events.SessionOpened, opened)
    events.bus.unsubscribe(events.ConnectionClosed, closed)


async def test_turns_share_one_connection_while_it_lingers_on_one_process(api, settings, connections) -> None:
    settings.API_PRESENCE_LINGER_S = 0.3
    conversation = await start_conversation(api)
    for text in ("How do I scale Parley?", "And the widget?", "Thanks"):
        assert (await conversation.client.post(conversation.messages, {"text": text})).status == 201
    if layer_is_shared(get_channel_layer()):
        # Several processes: a process outside the session's group must not keep its numbers.
        assert connections == ["opened", "closed"] * 4 and presences().held() == 0
        return
    assert connections == ["opened"] and presences().held() == 1
    await asyncio.sleep(0.45)
    assert connections == ["opened", "closed"] and presences().held() == 0
    await tracker.drain()
    assert tracker.trackers() == {}
    row = (await sync_to_async(transcript)(conversation.id))["analytics"]
    assert (row["user_messages"], row["assistant_messages"], row["last_seq"]) == (3, 3, 6)


async def test_without_linger_every_request_connects_and_disconnects(api, connections) -> None:
    conversation = await start_conversation(api)
    assert (await conversation.client.post(conversation.messages, {"text": "Hi"})).status == 201
    assert (await conversation.client.post(f"{conversation.path}rating/", {"score": 5})).status == 201
    assert connections == ["opened", "closed"] * 3 and presences().held() == 0

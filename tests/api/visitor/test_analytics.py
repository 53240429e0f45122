"""API conversations on the event seam: the same events as a widget's, and counted by analytics."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.utils import timezone

from analytics import services as analytics_services
from analytics import tracker
from analytics.selectors import Filters, Period, summary, transcript
from assistant import events
from assistant.models import ChatSession
from tests.api.visitor.conftest import Conversation
from tests.assistant.test_consumers import connected

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drain_replies")]

QUESTION = "How do I scale Parley?"
#: What differs between two turns by nature: ids, times, the connection's name.
VOLATILE = {
    "event_id",
    "session_pk",
    "session_id",
    "message_id",
    "connection",
    "started_at",
    "ttft_ms",
    "duration_ms",
    "calls",
}


@pytest.fixture
def published() -> Iterator[list[events.ChatEvent]]:
    """Every chat event published while the test runs."""
    seen: list[events.ChatEvent] = []
    for kind in events.EVENT_TYPES.values():
        events.subscribe(kind, seen.append)
    yield seen
    for kind in events.EVENT_TYPES.values():
        events.bus.unsubscribe(kind, seen.append)


def comparable(event: events.ChatEvent) -> tuple[str, dict[str, Any]]:
    fields = {k: v for k, v in dataclasses.asdict(event).items() if k not in VOLATILE}
    return type(event).__name__, fields


async def test_an_api_turn_publishes_the_events_of_a_widget_turn(conversation, published, settings) -> None:
    settings.RESPONSE_CACHE_LOCAL_TTL_S = 0  # the second asking of the question would be a cached reply
    tab = await connected()
    welcome = await tab.hello()
    await tab.say(QUESTION, "same-key")
    widget_events = [comparable(event) for event in published]
    await tab.close()
    published.clear()
    reply = await conversation.client.post(conversation.messages, {"text": QUESTION, "client_id": "same-key"})
    assert reply.status == 201
    api_events = [comparable(event) for event in published]
    names = [name for name, _ in api_events]
    assert names == ["SessionOpened", "MessageStored", "ReplyStarted", "ReplyEnded", "ConnectionClosed"]
    # The widget's first message wrote its conversation (created); the API's was written before.
    widget_turn = [item for item in widget_events if item[0] not in {"SessionOpened", "ConnectionClosed"}]
    api_turn = [item for item in api_events if item[0] not in {"SessionOpened", "ConnectionClosed"}]
    assert api_turn == widget_turn
    opened = published[0]
    assert isinstance(opened, events.SessionOpened) and opened.session_id == conversation.id and not opened.created
    assert published[-1].connection == opened.connection  # type: ignore[attr-defined]
    assert welcome["session_id"] != conversation.id


async def test_starting_a_conversation_opens_and_closes_it_as_created(api, published) -> None:
    reply = await api.post("/api/v1/conversations/", {})
    assert [type(event).__name__ for event in published] == ["SessionOpened", "ConnectionClosed"]
    assert published[0].created is True and published[0].session_id == reply.json()["id"]  # type: ignore[attr-defined]


@pytest.mark.backends
async def test_an_api_conversation_is_counted_by_analytics_as_the_database_says(conversation: Conversation) -> None:
    first = (await conversation.client.post(conversation.messages, {"text": QUESTION})).json()
    await conversation.client.post(conversation.messages, {"text": "How do I embed the widget on my site?"})
    feedback = f"/api/v1/messages/{first['ai_message']['message_id']}/feedback/"
    assert (await conversation.client.post(feedback, {"rating": "up"})).status == 201
    assert (await conversation.client.post(f"{conversation.path}rating/", {"score": 4, "resolved": True})).status == 201
    assert (await conversation.client.post(f"{conversation.path}end/")).status == 200
    await tracker.drain()
    assert tracker.trackers() == {}  # every request's connection closed: nothing held open

    written = (await sync_to_async(transcript)(conversation.id))["analytics"]
    assert written is not None
    assert (written["user_messages"], written["assistant_messages"], written["last_seq"]) == (2, 2, 4)
    assert (written["feedback_up"], written["feedback_down"], written["satisfaction_rating"]) == (1, 0, 4)
    assert written["closed"] is True and written["provider"] == "local"

    @database_sync_to_async
    def rebuilt() -> dict[str, Any]:
        session_pk = ChatSession.objects.get(public_id=conversation.id).pk
        analytics_services.session_analytics_rebuild(session_pk=session_pk)
        return transcript(conversation.id)["analytics"]

    from_database = await rebuilt()
    for key in (
        "user_messages",
        "assistant_messages",
        "feedback_up",
        "satisfaction_rating",
        "resolution",
        "engagement_score",
        "closed",
        "last_seq",
        "topics_discussed",
    ):
        assert written[key] == from_database[key], key

    await database_sync_to_async(analytics_services.rollups_refresh)()
    today = timezone.localdate()
    period = Period(start=today, end=today)

    def sessions(source: str) -> int:
        return summary(period, Filters(source=source))["metrics"]["sessions"]

    assert await sync_to_async(sessions)("api") == 1
    assert await sync_to_async(sessions)("widget") == 0

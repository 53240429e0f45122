"""Feedback on a reply, the end-of-chat rating and asking for a person, through the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async

from assistant import events
from assistant.models import Feedback, Handoff, SessionRating
from tests.api.visitor.client import ApiClient
from tests.api.visitor.conftest import BASE, Conversation, start_conversation
from tests.assistant.handoff.conftest import support_agents
from tests.assistant.test_consumers import connected

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drain_replies")]


@pytest.fixture
def published() -> Iterator[list[events.ChatEvent]]:
    """The chat events published while the test runs."""
    seen: list[events.ChatEvent] = []
    kinds = (events.FeedbackGiven, events.SessionRated, events.HandoffRequested, events.SessionEnded)
    for kind in kinds:
        events.subscribe(kind, seen.append)
    yield seen
    for kind in kinds:
        events.bus.unsubscribe(kind, seen.append)


async def turn(conversation: Conversation) -> dict[str, Any]:
    reply = await conversation.client.post(conversation.messages, {"text": "How do I scale Parley?"})
    assert reply.status == 201
    return reply.json()


def feedback_path(message_id: str) -> str:
    return f"{BASE}/messages/{message_id}/feedback/"


@database_sync_to_async
def feedback_rows() -> list[tuple[str, str, str]]:
    return list(Feedback.objects.values_list("rating", "reason", "comment"))


# --- feedback -----------------------------------------------------------------------------------
async def test_feedback_is_created_then_replaced_and_every_tab_sees_it(conversation, published) -> None:
    ai = (await turn(conversation))["ai_message"]
    tab = await connected()
    await tab.hello(session_id=conversation.id, token=conversation.token)
    first = await conversation.client.post(feedback_path(ai["message_id"]), {"rating": "up", "reason": "clear"})
    assert first.status == 201
    assert first.json() == {"message_id": ai["message_id"], "rating": "up", "reason": "clear", "comment": ""}
    assert await tab.recv_type("feedback.ack") == {
        "type": "feedback.ack",
        "message_id": ai["message_id"],
        "rating": "up",
    }
    again = await conversation.client.post(feedback_path(ai["message_id"]), {"rating": "negative", "comment": "wrong"})
    assert again.status == 200 and again.json()["rating"] == "down" and again.json()["comment"] == "wrong"
    assert await feedback_rows() == [("down", "", "wrong")]
    await tab.close()
    given = [event for event in published if isinstance(event, events.FeedbackGiven)]
    assert [(event.message_id, event.rating, event.session_id) for event in given] == [
        (ai["message_id"], "up", conversation.id),
        (ai["message_id"], "down", conversation.id),
    ]
    history = (await conversation.client.get(conversation.messages)).json()["results"]
    assert history[1]["feedback"] == {"rating": "down", "reason": "", "comment": "wrong"}


async def test_positive_means_up(conversation: Conversation) -> None:
    ai = (await turn(conversation))["ai_message"]
    reply = await conversation.client.post(feedback_path(ai["message_id"]), {"rating": "positive"})
    assert reply.status == 201 and reply.json()["rating"] == "up"


async def test_feedback_on_another_conversations_message_is_403_and_on_a_visitor_message_404(api, conversation) -> None:
    mine = await turn(conversation)
    other = await start_conversation(api)
    theirs = await turn(other)
    for path in (feedback_path(theirs["ai_message"]["message_id"]), feedback_path(str(uuid.uuid4()))):
        reply = await conversation.client.post(path, {"rating": "up"})
        assert reply.status == 403 and reply.code == "forbidden"
    own_question = await conversation.client.post(feedback_path(mine["user_message"]["message_id"]), {"rating": "up"})
    assert own_question.status == 404 and own_question.code == "not_found"  # ours, but not a reply
    anonymous = await api.post(feedback_path(mine["ai_message"]["message_id"]), {"rating": "up"})
    assert anonymous.status == 401
    assert await feedback_rows() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "rating"),
        ({"rating": "meh"}, "rating"),
        ({"rating": 1}, "rating"),
        ({"rating": "up", "reason": "r" * 101}, "reason"),
        ({"rating": "up", "comment": "c" * 2001}, "comment"),
        ({"rating": "up", "stars": 5}, "stars"),
    ],
)
async def test_bad_feedback_is_a_400_naming_the_field(conversation: Conversation, body, field) -> None:
    ai = (await turn(conversation))["ai_message"]
    reply = await conversation.client.post(feedback_path(ai["message_id"]), body)
    assert reply.status == 400 and reply.json()["field"] == field


async def test_feedback_and_other_actions_share_the_conversations_action_rate(conversation, settings) -> None:
    settings.CHAT_EVENT_RATE_LIMIT_PER_MINUTE = 2
    ai = (await turn(conversation))["ai_message"]
    assert (await conversation.client.post(feedback_path(ai["message_id"]), {"rating": "up"})).status == 201
    assert (await conversation.client.post(f"{conversation.path}rating/", {"score": 4})).status == 201
    refused = await conversation.client.post(f"{conversation.path}handoff/", {})
    assert refused.status == 429 and refused.code == "rate_limited" and int(refused.headers["retry-after"]) >= 1


# --- the end-of-chat rating ---------------------------------------------------------------------
async def test_rating_is_created_then_replaced(conversation: Conversation, published) -> None:
    first = await conversation.client.post(f"{conversation.path}rating/", {"score": 5, "resolved": True})
    assert first.status == 201 and first.json() == {"score": 5, "resolved": True, "comment": ""}
    again = await conversation.client.post(f"{conversation.path}rating/", {"score": 2, "comment": "slow"})
    assert again.status == 200 and again.json() == {"score": 2, "resolved": None, "comment": "slow"}
    rows = await database_sync_to_async(lambda: list(SessionRating.objects.values_list("score", "comment")))()
    assert rows == [(2, "slow")]
    rated = [(e.score, e.resolved) for e in published if isinstance(e, events.SessionRated)]
    assert rated == [(5, True), (2, None)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "score"),
        ({"score": 0}, "score"),
        ({"score": 6}, "score"),
        ({"score": "5"}, "score"),
        ({"score": 4.0}, "score"),
        ({"score": True}, "score"),
        ({"score": 4, "resolved": "yes"}, "resolved"),
        ({"score": 4, "resolved": 1}, "resolved"),
        ({"score": 4, "comment": "c" * 2001}, "comment"),
    ],
)
async def test_a_bad_rating_is_a_400_naming_the_field(conversation: Conversation, body, field) -> None:
    reply = await conversation.client.post(f"{conversation.path}rating/", body)
    assert reply.status == 400 and reply.json()["field"] == field


async def test_rating_someone_elses_conversation_is_403(api, conversation: Conversation) -> None:
    other = await start_conversation(api)
    assert (await other.client.post(f"{conversation.path}rating/", {"score": 5})).status == 403


# --- asking for a person ------------------------------------------------------------------------
async def test_asking_with_nobody_at_the_desk_is_unavailable(conversation: Conversation, published) -> None:
    tab = await connected()
    await tab.hello(session_id=conversation.id, token=conversation.token)
    reply = await conversation.client.post(f"{conversation.path}handoff/", {"reason": "I want a human"})
    assert reply.status == 200
    assert reply.json() == {"state": "unavailable", "position": None, "agent_name": None}
    assert await tab.recv_type("handoff.status") == {"type": "handoff.status", "state": "unavailable"}
    await tab.close()
    requested = [(e.state, e.reason) for e in published if isinstance(e, events.HandoffRequested)]
    assert requested == [("unavailable", "I want a human")]


async def test_asking_with_an_agent_available_queues_the_conversation_for_the_desk(conversation, published) -> None:
    @database_sync_to_async
    def available_agent() -> None:
        from django.contrib.auth import get_user_model

        from assistant.handoff import services

        ada = get_user_model().objects.create_user(username="ada", password="x")
        ada.groups.add(support_agents())
        services.presence_set(user=get_user_model().objects.get(pk=ada.pk), available=True)

    await available_agent()
    reply = await conversation.client.post(f"{conversation.path}handoff/", {})
    assert reply.status == 200 and reply.json() == {"state": "waiting", "position": 1, "agent_name": None}
    again = await conversation.client.post(f"{conversation.path}handoff/", {})
    assert again.json()["state"] == "waiting"
    assert await database_sync_to_async(lambda: Handoff.objects.count())() == 1
    read = (await conversation.client.get(conversation.path)).json()
    assert read["handoff"] == {"state": "waiting", "position": 1, "agent_name": None}
    assert [e.state for e in published if isinstance(e, events.HandoffRequested)] == ["waiting"]
    ended = await conversation.client.post(f"{conversation.path}end/")
    assert ended.json()["handoff"]["state"] == "ai"  # the request still waiting ends abandoned


async def test_a_bad_handoff_request_is_a_400(conversation: Conversation) -> None:
    reply = await conversation.client.post(f"{conversation.path}handoff/", {"reason": "r" * 201})
    assert reply.status == 400 and reply.json()["field"] == "reason"
    wrong = await ApiClient(token="B" * 43).post(f"{conversation.path}handoff/", {})
    assert wrong.status == 403

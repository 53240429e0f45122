"""The visitor's side of handoff on `/ws/chat/`: `handoff`, `contact`, `typing`, and no AI reply
while a person answers. Real consumer, real database; the desk's actions are its services."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from assistant.groups import desk_session_group
from assistant.handoff import services
from assistant.models import ChatMessage, ChatSession, ContactRequest, Handoff
from tests.assistant.test_consumers import connected

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends, pytest.mark.usefixtures("drain_replies")]

claim = database_sync_to_async(services.claim)
handback = database_sync_to_async(services.handback)


@database_sync_to_async
def rows(session_id: str) -> list[tuple[int, str]]:
    return list(ChatMessage.objects.filter(session__public_id=session_id).values_list("seq", "role"))


@database_sync_to_async
def handoffs() -> list[tuple[str, str]]:
    return list(Handoff.objects.values_list("outcome", "reason"))


async def test_asking_with_nobody_at_the_desk_says_unavailable(caplog) -> None:
    client = await connected()
    await client.hello()
    await client.send({"type": "handoff", "reason": "I want a human"})
    status = await client.recv_type("handoff.status")
    assert status == {"type": "handoff.status", "state": "unavailable"}
    assert await handoffs() == [("unavailable", "I want a human")]
    await client.close()


async def test_waiting_then_assigned_then_no_ai_reply_until_handed_back(make_agent) -> None:
    ada = await database_sync_to_async(make_agent)("ada", first_name="Ada")
    client = await connected()
    welcome = await client.hello()
    await client.send({"type": "handoff"})
    assert await client.recv_type("handoff.status") == {"type": "handoff.status", "state": "waiting", "position": 1}
    sid = welcome["session_id"]
    await claim(session_id=sid, agent=ada)
    await client.send({"type": "message", "text": "Are you a person?", "client_id": "m1"})
    ack = await client.recv_type("ack")
    assert ack["seq"] == 1
    if not await client.nothing_more(0.3):  # no reply.start: the AI stays quiet
        pytest.fail(f"unexpected frame: {await client.recv()}")
    assert await rows(sid) == [(1, "user")]
    await handback(session_id=sid, agent=ada)
    _, text, end = await client.say("And now?", "m2")
    assert end["status"] == "complete" and text
    assert await rows(sid) == [(1, "user"), (2, "user"), (3, "assistant")]
    await client.close()


async def test_a_tab_that_joins_later_is_told_who_answers(make_agent) -> None:
    ada = await database_sync_to_async(make_agent)("ada", first_name="Ada")
    client = await connected()
    welcome = await client.hello()
    await client.send({"type": "handoff"})
    await client.recv_type("handoff.status")
    await claim(session_id=welcome["session_id"], agent=ada)
    other = await connected()
    await other.hello(session_id=welcome["session_id"], token=welcome["token"])
    status = await other.recv_type("handoff.status")
    assert status == {"type": "handoff.status", "state": "assigned", "agent": {"name": "Ada"}}
    await client.close()
    await other.close()


async def test_contact_needs_a_valid_email_and_is_stored_once_acknowledged() -> None:
    client = await connected()
    await client.hello()
    await client.send({"type": "contact", "email": "nope"})
    error = await client.recv_type("error")
    assert (error["code"], error["field"]) == ("invalid_field", "email")
    await client.send({"type": "contact", "email": "ana@example.com", "message": "Call me back"})
    assert await client.recv_type("contact.ack") == {"type": "contact.ack"}
    stored = await database_sync_to_async(lambda: list(ContactRequest.objects.values_list("email", "message")))()
    assert stored == [("ana@example.com", "Call me back")]
    await client.send({"type": "contact", "email": "a@b.c", "phone": "1"})
    error = await client.recv_type("error")
    assert (error["code"], error["field"]) == ("invalid_field", "phone")
    await client.close()


async def test_typing_reaches_the_desks_watching_and_is_rate_limited(settings, make_agent) -> None:
    settings.CHAT_TYPING_RATE_LIMIT_PER_MINUTE = 6  # a burst of one
    ada = await database_sync_to_async(make_agent)("ada")
    client = await connected()
    welcome = await client.hello()
    await client.send({"type": "message", "text": "Hi", "client_id": "m1"})
    await client.read_reply()
    layer = get_channel_layer()
    desk = await layer.new_channel()
    await layer.group_add(desk_session_group(welcome["session_id"]), desk)
    await claim(session_id=welcome["session_id"], agent=ada)
    await client.send({"type": "typing", "state": "start"})
    message = await asyncio.wait_for(layer.receive(desk), 5)
    assert message["frame"] == {"type": "typing", "session_id": welcome["session_id"], "role": "user", "state": "start"}
    await client.send({"type": "typing", "state": "stop"})
    error = await client.recv_type("error")
    assert error["code"] == "rate_limited" and error["retry_after"] > 0
    await client.send({"type": "typing", "state": "maybe"})
    error = await client.recv_type("error")
    assert (error["code"], error["field"]) == ("invalid_field", "state")
    await client.close()


async def test_ending_while_waiting_abandons_the_request(make_agent) -> None:
    await database_sync_to_async(make_agent)("ada")
    client = await connected()
    await client.hello()
    await client.send({"type": "handoff"})
    await client.recv_type("handoff.status")
    await client.send({"type": "end"})
    assert (await client.recv_type("handoff.status"))["state"] == "ended"
    assert [outcome for outcome, _ in await handoffs()] == ["abandoned"]
    state = await database_sync_to_async(lambda: ChatSession.objects.get().handoff_state)()
    assert state == "ai"
    await client.close()


async def test_handoff_and_contact_frames_share_the_event_rate_limit(settings) -> None:
    settings.CHAT_EVENT_RATE_LIMIT_PER_MINUTE = 3  # a burst of one
    client = await connected()
    await client.hello()
    await client.send({"type": "handoff"})
    await client.recv_type("handoff.status")
    await client.send({"type": "contact", "email": "ana@example.com"})
    error = await client.recv_type("error")
    assert error["code"] == "rate_limited" and error["retry_after"] > 0
    assert await handoffs() == [("unavailable", "")]
    await client.close()

"""Desk actions seen from the visitor's widget: a takeover stops the AI mid-stream, every tab is told."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from assistant import events
from assistant import services as chat
from assistant.handoff import actions
from assistant.models import ChatMessage, ChatSession
from assistant.protocol import ClientError
from tests.assistant.test_consumers import connected

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends, pytest.mark.usefixtures("drain_replies")]


@database_sync_to_async
def statuses(session_id: str) -> list[tuple[int, str, str]]:
    return list(
        ChatMessage.objects.filter(session__public_id=session_id).values_list("seq", "role", "status").order_by("seq")
    )


async def test_a_takeover_during_an_ai_stream_stops_it_and_names_the_person(settings, make_agent) -> None:
    settings.LOCAL_TOKEN_DELAY_MS = 100  # a reply of ~15 s: the takeover lands mid-stream
    ada = await database_sync_to_async(make_agent)("ada", first_name="Ada")
    changes: list[events.HandoffChanged] = []
    events.subscribe(events.HandoffChanged, changes.append)
    try:
        client = await connected()
        welcome = await client.hello()
        sid = welcome["session_id"]
        await client.send({"type": "message", "text": "How do I embed the widget?", "client_id": "m1"})
        await client.recv_type("reply.delta")
        await actions.claim(session_id=sid, agent=ada)
        seen = []
        while len({"reply.end", "handoff.status"} & {frame["type"] for frame in seen}) < 2:
            seen.append(await client.recv())
        end = next(frame for frame in seen if frame["type"] == "reply.end")
        status = next(frame for frame in seen if frame["type"] == "handoff.status")
        assert end["status"] == "stopped"
        assert status == {"type": "handoff.status", "state": "assigned", "agent": {"name": "Ada"}}
        assert await statuses(sid) == [(1, "user", "complete"), (2, "assistant", "stopped")]
        assert [(c.state, c.previous_state, c.agent_name) for c in changes] == [("assigned", "ai", "Ada")]
        await client.close()
    finally:
        events.bus.unsubscribe(events.HandoffChanged, changes.append)


async def test_release_transfer_handback_and_resolve_each_tell_the_visitor(make_agent) -> None:
    ada = await database_sync_to_async(make_agent)("ada", first_name="Ada")
    bob = await database_sync_to_async(make_agent)("bob", first_name="Bob")
    client = await connected()
    welcome = await client.hello()
    sid = welcome["session_id"]
    await client.send({"type": "handoff"})
    assert (await client.recv_type("handoff.status"))["state"] == "waiting"
    await actions.claim(session_id=sid, agent=ada)
    assert (await client.recv_type("handoff.status"))["agent"] == {"name": "Ada"}
    await actions.transfer(session_id=sid, agent=ada, to_user_id=bob.pk)
    assert (await client.recv_type("handoff.status"))["agent"] == {"name": "Bob"}
    await actions.release(session_id=sid, agent=bob)
    assert await client.recv_type("handoff.status") == {"type": "handoff.status", "state": "waiting", "position": 1}
    await actions.claim(session_id=sid, agent=bob)
    await client.recv_type("handoff.status")
    await actions.handback(session_id=sid, agent=bob)
    assert await client.recv_type("handoff.status") == {"type": "handoff.status", "state": "ended"}
    _, text, end = await client.say("Back to the assistant?", "m1")
    assert end["status"] == "complete" and text
    await actions.claim(session_id=sid, agent=ada)
    await client.recv_type("handoff.status")
    await actions.resolve(session_id=sid, agent=ada)
    assert (await client.recv_type("handoff.status"))["state"] == "ended"
    await client.close()


async def test_an_agent_message_reaches_every_tab_once_with_the_persons_name(make_agent) -> None:
    ada = await database_sync_to_async(make_agent)("ada", first_name="Ada")
    stored: list[events.AgentMessageStored] = []
    events.subscribe(events.AgentMessageStored, stored.append)
    try:
        first = await connected()
        welcome = await first.hello()
        sid = welcome["session_id"]
        await first.say("Hello", "m1")
        second = await connected()
        await second.hello(session_id=sid, token=welcome["token"])
        await actions.claim(session_id=sid, agent=ada)
        message = await actions.send_message(session_id=sid, agent=ada, text="Hi, Ada here.", client_id="d1")
        again = await actions.send_message(session_id=sid, agent=ada, text="Hi, Ada here.", client_id="d1")
        assert again.pk == message.pk
        for client in (first, second):
            frame = await client.recv_type("message")
            shown = (frame["role"], frame["text"], frame["author"], frame["seq"])
            assert shown == ("agent", "Hi, Ada here.", {"name": "Ada"}, 3)
            assert "client_id" not in frame  # the desk's key stays with the desk
            assert await client.nothing_more(0.2)  # the resend showed nothing new
        assert [(event.seq, event.agent_name) for event in stored] == [(3, "Ada")]
        await second.close()
        history = (await (await connected()).hello(session_id=sid, token=welcome["token"]))["history"]
        assert history[-1]["role"] == "agent" and history[-1]["author"] == {"name": "Ada"}
        await first.close()
    finally:
        events.bus.unsubscribe(events.AgentMessageStored, stored.append)


async def test_agent_typing_reaches_the_visitor_only_from_the_person_answering(make_agent) -> None:
    ada = await database_sync_to_async(make_agent)("ada", first_name="Ada")
    bob = await database_sync_to_async(make_agent)("bob")
    client = await connected()
    welcome = await client.hello()
    sid = welcome["session_id"]
    await client.say("Hello", "m1")
    await actions.claim(session_id=sid, agent=ada)
    await client.recv_type("handoff.status")
    await actions.typing(session_id=sid, agent=ada, state="start")
    assert await client.recv_type("typing") == {"type": "typing", "role": "agent", "state": "start", "name": "Ada"}
    with pytest.raises(ClientError) as caught:
        await actions.typing(session_id=sid, agent=bob, state="start")
    assert caught.value.code == "forbidden"
    await client.close()


async def test_after_a_hand_back_the_ai_is_told_what_the_person_said(make_agent) -> None:
    ada = await database_sync_to_async(make_agent)("ada")
    client = await connected()
    welcome = await client.hello()
    sid = welcome["session_id"]
    await client.say("Hello", "m1")
    await actions.claim(session_id=sid, agent=ada)
    await actions.send_message(session_id=sid, agent=ada, text="Your refund was sent today.", client_id="d1")
    await actions.handback(session_id=sid, agent=ada)
    session = await database_sync_to_async(lambda: ChatSession.objects.get(public_id=sid))()
    turn = await database_sync_to_async(chat.turn_begin)(session=session, text="When will it arrive?", client_id="m2")
    assert turn.history[-1] == ("assistant", "Your refund was sent today.")
    await client.close()


async def test_claiming_ones_own_conversation_again_is_acknowledged(make_agent) -> None:
    """A desk that lost its claim.ack claims again: same answer, no error."""
    ada = await database_sync_to_async(make_agent)("ada", first_name="Ada")
    client = await connected()
    welcome = await client.hello()
    await client.say("Hello", "m1")
    first = await actions.claim(session_id=welcome["session_id"], agent=ada)
    again = await actions.claim(session_id=welcome["session_id"], agent=ada)
    assert first.session.pk == again.session.pk and again.previous_state == "assigned"
    await client.close()


async def test_a_reply_that_missed_the_takeovers_stop_ends_at_its_next_checkpoint(settings, make_agent) -> None:
    """The stop request reaches only a reply already registered; the checkpoint is the backstop.
    Here the claim is the bare service, which sends no stop at all."""
    from assistant.handoff import services

    settings.LOCAL_TOKEN_DELAY_MS = 100
    settings.CHAT_CHECKPOINT_INTERVAL_S = 0.2
    ada = await database_sync_to_async(make_agent)("ada")
    client = await connected()
    welcome = await client.hello()
    sid = welcome["session_id"]
    await client.send({"type": "message", "text": "How do I embed the widget?", "client_id": "m1"})
    await client.recv_type("reply.delta")
    await database_sync_to_async(services.claim)(session_id=sid, agent=ada)
    end = await client.recv_type("reply.end", timeout=3)
    assert end["status"] == "stopped"
    assert await statuses(sid) == [(1, "user", "complete"), (2, "assistant", "stopped")]
    await client.close()

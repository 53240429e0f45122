"""Desk actions seen from the visitor's widget: a takeover stops the AI mid-stream, every tab is told."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from assistant import events
from assistant.handoff import actions
from assistant.models import ChatMessage
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

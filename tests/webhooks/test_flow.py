"""Every event type from a real chat: websocket turns, feedback, rating, a person at the desk, the end.

The chat runs through the real ASGI application (websocket), the desk's actions, and the real
dispatcher sending to a real HTTP receiver on loopback, which verifies each signature with the
`standardwebhooks` package. Checked: each event type arrives once, signed, with its documented
payload, in the order of the conversation.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async

from assistant.handoff import actions
from assistant.models import ChatMessage
from tests.assistant.test_consumers import connected
from tests.support.fake_vendors import refused_url
from tests.webhooks.receiver import Receiver
from webhooks.dispatcher import Dispatcher
from webhooks.models import WebhookDelivery

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends, pytest.mark.usefixtures("drain_replies")]

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def is_uuid(value: Any) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except (TypeError, ValueError):
        return False


@database_sync_to_async
def outbox_ids() -> list[tuple[str, str]]:
    return list(WebhookDelivery.objects.order_by("pk").values_list("event_id", "event_type"))


async def test_a_whole_conversation_sends_every_chat_event_signed_and_in_order(
    receiver: Receiver, make_endpoint: Any, make_agent: Any, running_dispatcher: Dispatcher
) -> None:
    await database_sync_to_async(make_endpoint)()
    ada = await database_sync_to_async(make_agent)("ada", first_name="Ada")

    client = await connected()
    welcome = await client.hello(page={"url": "https://shop.example/help"}, locale="en-GB")
    sid = welcome["session_id"]
    ack, text, end = await client.say("How do I embed the widget?", "m1")
    await client.send({"type": "feedback", "message_id": end["message_id"], "rating": "up"})
    await client.recv_type("feedback.ack")
    await client.send(
        {"type": "feedback", "message_id": end["message_id"], "rating": "down", "reason": "wrong", "comment": "no"}
    )
    await client.recv_type("feedback.ack")
    await client.send({"type": "rating", "score": 4, "resolved": True, "comment": "thanks"})
    await client.recv_type("rating.ack")
    await client.send({"type": "handoff", "reason": "a person please"})
    assert (await client.recv_type("handoff.status"))["state"] == "waiting"
    await actions.claim(session_id=sid, agent=ada)
    await actions.send_message(session_id=sid, agent=ada, text="Hello, Ada here.", client_id="a1")
    await client.recv_type("message")
    await client.send({"type": "end"})
    await client.recv_type("ended")
    await client.close()

    expected = [
        "conversation.started",
        "message.created",  # the visitor's
        "message.created",  # the reply
        "reply.completed",
        "feedback.created",
        "feedback.updated",
        "rating.created",
        "handoff.requested",
        "handoff.assigned",
        "message.created",  # the person's
        "conversation.closed",
    ]
    assert [kind for _, kind in await outbox_ids()] == expected
    assert await receiver.until(lambda r: len(r.accepted()) == len(expected))
    got = receiver.accepted()
    assert all(item.verified for item in got)
    assert [item.type for item in got] == expected  # one conversation: in the order it happened
    assert [item.id for item in got] == [event_id for event_id, _ in await outbox_ids()]
    assert all(re.fullmatch(r"msg_[0-9a-f]{32}", item.id) for item in got)

    bodies = [item.payload for item in got]
    assert all(set(body) == {"type", "timestamp", "data"} and ISO.match(body["timestamp"]) for body in bodies)
    assert all(body["data"]["conversation_id"] == sid for body in bodies)
    started, user, reply_message, reply, fb_new, fb_changed, rating, requested, assigned, agent, closed = (
        body["data"] for body in bodies
    )
    assert started == {
        "conversation_id": sid,
        "source": "widget",
        "visitor": {"type": "anonymous", "id": "", "name": "", "email": ""},
        "locale": "en-GB",
        "page_url": "https://shop.example/help",
        "created_at": started["created_at"],
    } and ISO.match(started["created_at"])
    assert user["message"] == {
        "id": ack["message_id"],
        "seq": 1,
        "role": "user",
        "text": "How do I embed the widget?",
        "status": "complete",
        "created_at": user["message"]["created_at"],
        "client_id": "m1",
    }
    assert reply_message["message"] == {
        "id": end["message_id"],
        "seq": 2,
        "role": "assistant",
        "text": text,
        "status": "complete",
        "created_at": reply_message["message"]["created_at"],
        "reply_to": 1,
    }
    assert reply == {
        "conversation_id": sid,
        "message_id": end["message_id"],
        "seq": 2,
        "reply_to": 1,
        "status": "complete",
        "error": "",
        "provider": "local",
        "model": end["model"],
        "cached": False,
        "tokens": {"input": end["usage"]["input_tokens"], "output": end["usage"]["output_tokens"]},
        "latency_ms": {"first_token": end["ttft_ms"], "total": end["duration_ms"]},
        "calls": [
            {
                "provider": "local",
                "model": end["model"],
                "outcome": "ok",
                "latency_ms": reply["calls"][0]["latency_ms"],
                "tokens": {"input": end["usage"]["input_tokens"], "output": end["usage"]["output_tokens"]},
                "error_kind": "",
                "fallback_from": "",
            }
        ],
    }
    assert fb_new == {
        "conversation_id": sid,
        "message_id": end["message_id"],
        "rating": "up",
        "reason": "",
        "comment": "",
    }
    assert (fb_changed["rating"], fb_changed["reason"], fb_changed["comment"]) == ("down", "wrong", "no")
    assert rating == {
        "conversation_id": sid,
        "score": 4,
        "resolved": True,
        "comment": "thanks",
        "replaces_earlier": False,
    }
    assert requested == {
        "conversation_id": sid,
        "state": "waiting",
        "reason": "a person please",
        "requested_at": requested["requested_at"],
    }
    assert assigned == {
        "conversation_id": sid,
        "kind": "claim",
        "agent": {"id": ada.pk, "name": "Ada"},
        "by": {"id": ada.pk, "name": "Ada"},
        "previous_state": "waiting",
        "previous_agent_id": None,
    }
    assert agent["message"]["role"] == "agent" and agent["message"]["author"] == {"name": "Ada"}
    assert agent["message"]["text"] == "Hello, Ada here." and "client_id" not in agent["message"]
    assert closed == {"conversation_id": sid, "reason": "ended", "closed_at": closed["closed_at"]}


async def test_a_reply_every_provider_failed_is_reply_failed_with_its_calls(
    settings: Any, receiver: Receiver, make_endpoint: Any, running_dispatcher: Dispatcher
) -> None:
    settings.AI_PROVIDERS = ["openai"]  # no local assistant to fall back on
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = refused_url()
    settings.PROVIDER_MAX_RETRIES = 0
    settings.PROVIDER_CONNECT_TIMEOUT_S = 0.5
    settings.TITLE_FROM_PROVIDER = False
    await database_sync_to_async(make_endpoint)(event_types=["reply.failed", "reply.completed"])

    client = await connected()
    await client.hello()
    _, _, end = await client.say("Anyone there?", "m1")
    await client.close()

    assert end["status"] == "failed"
    assert await receiver.until(lambda r: len(r.accepted()) == 1)
    [failed] = receiver.accepted()
    data = failed.payload["data"]
    assert failed.type == "reply.failed"
    assert (data["status"], data["error"], data["seq"], data["reply_to"]) == ("failed", "provider_unavailable", 2, 1)
    assert [(call["provider"], call["outcome"]) for call in data["calls"]] == [("openai", "error")]
    assert is_uuid(data["conversation_id"]) and is_uuid(data["message_id"])


async def test_an_endpoint_gets_only_the_types_it_selected(
    receiver: Receiver, make_endpoint: Any, running_dispatcher: Dispatcher
) -> None:
    await database_sync_to_async(make_endpoint)("/replies", event_types=["reply.completed"])
    await database_sync_to_async(make_endpoint)("/everything")

    client = await connected()
    await client.hello()
    await client.say("How do I embed the widget?", "m1")
    await client.close()

    assert await receiver.until(lambda r: len(r.accepted("/everything")) == 4 and len(r.accepted("/replies")) == 1)
    assert [item.type for item in receiver.accepted("/replies")] == ["reply.completed"]
    everything = receiver.accepted("/everything")
    reply = next(item for item in everything if item.type == "reply.completed")
    assert reply.id == receiver.accepted("/replies")[0].id  # one event, one webhook-id, whichever endpoint
    assert len({item.id for item in everything}) == 4


async def test_an_interrupted_reply_left_by_a_dead_process_is_reply_failed(
    receiver: Receiver, make_endpoint: Any, running_dispatcher: Dispatcher
) -> None:
    from assistant import services as chat

    await database_sync_to_async(make_endpoint)(event_types=["reply.failed"])

    @database_sync_to_async
    def orphan() -> str:
        session = chat.session_materialize(
            session=chat.session_open(
                session_id=None, token=None, last_seq=0, identity=None, page=chat.PageContext()
            ).session
        )[0]
        turn = chat.turn_begin(session=session, text="Hello?", client_id="c1")
        assert turn.assistant_message is not None
        ChatMessage.objects.filter(pk=turn.assistant_message.pk).update(owner="gone", text="Half an ans")
        assert chat.replies_interrupt_orphaned(now=turn.assistant_message.created_at, everything=True) == 1
        return str(session.public_id)

    sid = await orphan()
    assert await receiver.until(lambda r: len(r.accepted()) == 1)
    data = receiver.accepted()[0].payload["data"]
    assert (data["conversation_id"], data["status"], data["seq"], data["reply_to"]) == (sid, "interrupted", 2, 1)


async def test_a_reply_cut_mid_stream_is_its_message_then_the_replacement_and_one_reply_completed(
    settings: Any, receiver: Receiver, make_endpoint: Any, running_dispatcher: Dispatcher
) -> None:
    from tests.support.fake_vendors import FakeVendor

    settings.AI_PROVIDERS = ["openai", "local"]
    settings.OPENAI_API_KEY = "test-key"
    settings.PROVIDER_MAX_RETRIES = 0
    settings.PROVIDER_IDLE_TIMEOUT_S = 0.5
    settings.TITLE_FROM_PROVIDER = False
    settings.RESPONSE_CACHE_TTL_S = 0
    await database_sync_to_async(make_endpoint)(event_types=["message.created", "reply.completed", "reply.failed"])
    with FakeVendor("openai", tokens=["The ", "primary ", "says ", "hello."]) as vendor:
        vendor.faults.append("cut:2")
        settings.OPENAI_BASE_URL = f"{vendor.base_url}/v1"
        client = await connected()
        await client.hello()
        await client.send({"type": "message", "text": "How do I embed the widget?", "client_id": "m1"})
        while (frame := await client.recv(10))["type"] != "reply.end" or frame.get("error") == "provider_interrupted":
            pass
        await client.close()

    assert await receiver.until(lambda r: len(r.accepted()) == 4)
    got = [(item.type, item.payload["data"]) for item in receiver.accepted()]
    assert [kind for kind, _ in got] == ["message.created", "message.created", "message.created", "reply.completed"]
    _, cut, replacement = (data["message"] for _, data in got[:3])
    assert (cut["seq"], cut["role"], cut["status"], cut["reply_to"]) == (2, "assistant", "interrupted", 1)
    assert cut["text"] == "The primary "
    assert (replacement["seq"], replacement["status"], replacement["reply_to"], replacement["retry_of"]) == (
        3,
        "complete",
        1,
        2,
    )
    completed = got[3][1]
    assert (completed["seq"], completed["provider"], completed["message_id"]) == (3, "local", replacement["id"])

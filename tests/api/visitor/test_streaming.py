"""Turns as Server-Sent Events, and API turns seen live by the conversation's websocket tabs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async

from api.visitor import turns
from assistant.models import ChatMessage
from tests.api.visitor.client import Exchange, SseEvent
from tests.api.visitor.conftest import Conversation, agent_claims, start_conversation
from tests.assistant.test_consumers import connected
from tests.support.chat import ChatClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends, pytest.mark.usefixtures("drain_replies")]

QUESTION = "How do I scale Parley?"
SSE = {"accept": "text/event-stream"}


@database_sync_to_async
def stored(conversation_id: str) -> list[tuple[int, str, str, str]]:
    return list(
        ChatMessage.objects.filter(session__public_id=conversation_id)
        .order_by("seq")
        .values_list("seq", "role", "status", "text")
    )


async def stream_turn(conversation: Conversation, body: dict[str, Any]) -> tuple[Exchange, list[SseEvent | str]]:
    exchange = conversation.client.begin("POST", conversation.messages, json_body=body, headers=SSE)
    await exchange.head()
    items = [item async for item in exchange.events()]
    await exchange.close()
    return exchange, items


def named(items: list[SseEvent | str]) -> list[SseEvent]:
    return [item for item in items if isinstance(item, SseEvent)]


async def tab_of(conversation: Conversation) -> ChatClient:
    """A widget tab on the conversation, past its welcome."""
    tab = await connected()
    await tab.hello(session_id=conversation.id, token=conversation.token)
    return tab


async def frames_until_reply_end(tab: ChatClient) -> list[dict[str, Any]]:
    received = []
    while True:
        frame = await tab.recv()
        received.append(frame)
        if frame["type"] == "reply.end":
            return received


# --- the event stream ---------------------------------------------------------------------------
async def test_a_streamed_turn_is_the_websocket_frames_in_order_and_ends_after_reply_end(conversation) -> None:
    exchange, items = await stream_turn(conversation, {"text": QUESTION, "client_id": "s-1"})
    assert exchange.status == 200
    assert exchange.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert (exchange.headers["cache-control"], exchange.headers["x-accel-buffering"]) == ("no-cache", "no")
    events = named(items)
    names = [event.name for event in events]
    assert names[0] == "ack" and names[1] == "reply.start" and names[-1] == "reply.end"
    assert set(names[2:-1]) == {"reply.delta"}
    assert all(event.data["type"] == event.name for event in events)
    ack, start, end = events[0].data, events[1].data, events[-1].data
    assert set(ack) == {"type", "client_id", "seq", "message_id", "created_at"} and ack["client_id"] == "s-1"
    assert start == {"type": "reply.start", "seq": 2, "message_id": start["message_id"], "reply_to": 1}
    assert set(end) == {
        "type",
        "seq",
        "message_id",
        "status",
        "provider",
        "model",
        "ttft_ms",
        "duration_ms",
        "usage",
        "cached",
        "sources",
    }
    assert (end["seq"], end["message_id"], end["status"]) == (2, start["message_id"], "complete")
    text = "".join(event.data["text"] for event in events if event.name == "reply.delta")
    assert all(set(event.data) == {"type", "seq", "text"} for event in events if event.name == "reply.delta")
    assert await stored(conversation.id) == [(1, "user", "complete", QUESTION), (2, "assistant", "complete", text)]


async def test_a_streamed_turn_matches_what_a_websocket_tab_receives(conversation: Conversation) -> None:
    tab = await tab_of(conversation)
    _, items = await stream_turn(conversation, {"text": QUESTION})
    events = named(items)
    seen = await frames_until_reply_end(tab)
    await tab.close()
    assert seen[0]["type"] == "message" and seen[0]["seq"] == 1 and seen[0]["text"] == QUESTION
    tab_reply = [frame for frame in seen if frame["type"] != "message"]
    assert tab_reply[0] == events[1].data  # reply.start
    assert tab_reply[-1] == events[-1].data  # reply.end
    stream_text = "".join(e.data["text"] for e in events if e.name == "reply.delta")
    tab_text = "".join(frame["text"] for frame in tab_reply if frame["type"] == "reply.delta")
    assert stream_text == tab_text and stream_text


async def test_an_idle_stream_sends_keepalive_comments(conversation: Conversation, settings) -> None:
    settings.LOCAL_TOKEN_DELAY_MS = 25
    settings.API_SSE_KEEPALIVE_S = 0.01
    _, items = await stream_turn(conversation, {"text": QUESTION})
    assert ": keep-alive" in items
    assert named(items)[-1].name == "reply.end"


async def test_a_client_that_hangs_up_mid_stream_still_gets_its_reply_stored(conversation, settings) -> None:
    settings.LOCAL_TOKEN_DELAY_MS = 10
    exchange = conversation.client.begin("POST", conversation.messages, json_body={"text": QUESTION}, headers=SSE)
    await exchange.head()
    async for item in exchange.events():
        if isinstance(item, SseEvent) and item.name == "reply.delta":
            break
    await exchange.close()  # the client is gone mid-reply
    assert [row[:3] for row in await stored(conversation.id)] == [
        (1, "user", "complete"),
        (2, "assistant", "streaming"),
    ]
    for _ in range(200):
        rows = await stored(conversation.id)
        if rows[1][2] != "streaming":
            break
        await asyncio.sleep(0.02)
    assert rows[1][2] == "complete" and "Sources:" in rows[1][3]


async def test_a_streamed_retry_replays_the_stored_turn(conversation: Conversation) -> None:
    _, first = await stream_turn(conversation, {"text": QUESTION, "client_id": "r-1"})
    exchange, again = await stream_turn(conversation, {"text": QUESTION, "client_id": "r-1"})
    first_events, replayed = named(first), named(again)
    assert exchange.status == 200
    assert [event.name for event in replayed] == ["ack", "reply.start", "reply.delta", "reply.end"]
    assert replayed[0].data == first_events[0].data
    assert replayed[1].data == first_events[1].data and replayed[3].data == first_events[-1].data
    assert replayed[2].data["text"] == "".join(e.data["text"] for e in first_events if e.name == "reply.delta")
    assert len(await stored(conversation.id)) == 2


async def test_errors_before_the_stream_are_json_with_their_status(conversation: Conversation) -> None:
    reply = await conversation.client.post(conversation.messages, {"text": " "}, headers=SSE)
    assert reply.status == 400 and reply.headers["content-type"] == "application/json"
    assert reply.code == "empty_message"
    listing = await conversation.client.get(conversation.messages, headers=SSE)
    assert listing.status == 406 and listing.headers["content-type"] == "application/json"


async def test_when_every_provider_fails_the_stream_ends_with_the_failed_reply(conversation, settings) -> None:
    from tests.assistant.providers.test_failover import point
    from tests.support.fake_vendors import refused_url

    settings.AI_PROVIDERS = ["openai"]
    point(settings, "openai", refused_url())
    settings.PROVIDER_MAX_RETRIES = 0
    settings.RESPONSE_CACHE_TTL_S = 0
    settings.TITLE_FROM_PROVIDER = False
    exchange, items = await stream_turn(conversation, {"text": QUESTION})
    end = named(items)[-1]
    assert exchange.status == 200 and end.name == "reply.end"
    assert (end.data["status"], end.data["error"]) == ("failed", "provider_unavailable")


async def test_while_a_person_answers_the_stream_is_the_ack_and_who_answers(conversation) -> None:
    await agent_claims(conversation.id)
    exchange, items = await stream_turn(conversation, {"text": "Are you there?"})
    events = named(items)
    assert exchange.status == 200 and [event.name for event in events] == ["ack", "handoff.status"]
    assert events[1].data == {"type": "handoff.status", "state": "assigned", "agent": {"name": "Ada"}}
    assert [row[:2] for row in await stored(conversation.id)] == [(1, "user")]


# --- timeouts -----------------------------------------------------------------------------------
async def test_a_reply_past_the_reply_timeout_is_504_with_the_turn_as_stored(conversation, settings) -> None:
    settings.CHAT_REPLY_TIMEOUT_S = 0.3
    settings.LOCAL_TOKEN_DELAY_MS = 100
    reply = await conversation.client.post(conversation.messages, {"text": QUESTION})
    assert reply.status == 504 and reply.code == "reply_timeout"
    data = reply.json()
    assert data["reply"]["error"] == "reply_timeout" and data["ai_message"]["status"] in ("interrupted", "failed")


async def test_the_request_never_waits_longer_than_its_bound(api, conversation, settings, monkeypatch) -> None:
    settings.LOCAL_TOKEN_DELAY_MS = 40
    monkeypatch.setattr(turns, "REPLY_WAIT_GRACE_S", 0.15 - settings.CHAT_REPLY_TIMEOUT_S)
    reply = await conversation.client.post(conversation.messages, {"text": QUESTION})
    assert reply.status == 504 and reply.code == "reply_timeout"
    assert reply.json()["ai_message"]["status"] == "streaming" and reply.json()["reply"] is None
    other = await start_conversation(api)
    _, items = await stream_turn(other, {"text": QUESTION})
    assert [event.name for event in named(items)][:2] == ["ack", "reply.start"]
    assert named(items)[-1].name == "error" and named(items)[-1].data["code"] == "reply_timeout"


# --- websocket tabs -----------------------------------------------------------------------------
async def test_a_websocket_tab_sees_an_api_turn_live(conversation: Conversation) -> None:
    tab = await tab_of(conversation)
    reply = await conversation.client.post(conversation.messages, {"text": QUESTION, "client_id": "live-1"})
    seen = await frames_until_reply_end(tab)
    await tab.close()
    assert reply.status == 201
    turn = reply.json()
    message, start, end = seen[0], seen[1], seen[-1]
    assert message == {"type": "message", **turn["user_message"]}
    assert start == {"type": "reply.start", "seq": 2, "message_id": turn["ai_message"]["message_id"], "reply_to": 1}
    assert end == {"type": "reply.end", **turn["reply"]}
    text = "".join(frame["text"] for frame in seen if frame["type"] == "reply.delta")
    assert text == turn["ai_message"]["text"]


async def test_the_api_reads_what_a_websocket_tab_said(conversation: Conversation) -> None:
    tab = await tab_of(conversation)
    await tab.say("Hello from the widget", "w-1")
    await tab.close()
    page = (await conversation.client.get(conversation.messages)).json()
    assert [(m["seq"], m["role"]) for m in page["results"]] == [(1, "user"), (2, "assistant")]
    assert page["results"][0]["client_id"] == "w-1"


async def test_a_client_that_hangs_up_while_its_message_is_stored_leaves_the_turn_to_finish(
    conversation, settings, monkeypatch
) -> None:
    """Django cancels a request whose client left; the turn it began must still reply, or the
    conversation would keep a reply row nobody generates (every later message: 409)."""
    settings.LOCAL_TOKEN_DELAY_MS = 10
    exchange = conversation.client.begin("POST", conversation.messages, json_body={"text": QUESTION})
    real = turns._turn_begin

    async def hang_up_meanwhile(**kwargs: Any) -> Any:
        exchange.hang_up.set()  # the client leaves while the message is being stored
        await asyncio.sleep(0.05)  # Django's disconnect listener cancels the request now
        return await real(**kwargs)

    monkeypatch.setattr(turns, "_turn_begin", hang_up_meanwhile)
    await asyncio.wait_for(asyncio.shield(exchange.task), 10)
    monkeypatch.setattr(turns, "_turn_begin", real)
    for _ in range(200):
        rows = await stored(conversation.id)
        if len(rows) == 2 and rows[1][2] != "streaming":
            break
        await asyncio.sleep(0.02)
    assert [row[:3] for row in rows] == [(1, "user", "complete"), (2, "assistant", "complete")]
    assert (await conversation.client.post(conversation.messages, {"text": "Still there?"})).status == 201

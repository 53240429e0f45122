"""`/api/v1/conversations/{id}/messages/`: blocking turns, idempotency, limits, failures, reading back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async

from assistant.models import ChatMessage
from project import runtime
from tests.api.visitor.client import ApiClient, SseEvent
from tests.api.visitor.conftest import Conversation, agent_claims, start_conversation
from tests.assistant.providers.test_failover import point
from tests.support.fake_vendors import refused_url

# The turns, idempotency, limits and reading back also run on Postgres + Redis (`backends`); the
# validation of bad input does not depend on them.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drain_replies")]

QUESTION = "How do I embed the widget on my site?"
SHORT_QUESTION = "How do I scale Parley?"
HISTORY_FIELDS = {"seq", "message_id", "role", "text", "status", "created_at"}


@database_sync_to_async
def rows(conversation_id: str) -> list[tuple[int, str, str, str | None]]:
    return list(
        ChatMessage.objects.filter(session__public_id=conversation_id)
        .order_by("seq")
        .values_list("seq", "role", "status", "client_id")
    )


@pytest.fixture
def slow_replies(settings: Any) -> Any:
    """Replies that take a moment (20 ms a word): long enough to be caught streaming."""
    settings.LOCAL_TOKEN_DELAY_MS = 20
    return settings


def address() -> str:
    """A client address of its own (rate-limit windows are per address, in Redis across tests too)."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


async def first_event(exchange: Any, name: str) -> SseEvent:
    async for item in exchange.events():
        if isinstance(item, SseEvent) and item.name == name:
            return item
    raise AssertionError(f"no {name} event")


# --- a turn -------------------------------------------------------------------------------------
@pytest.mark.backends
async def test_a_turn_answers_201_with_the_stored_pair_once_the_reply_has_ended(conversation: Conversation) -> None:
    reply = await conversation.client.post(conversation.messages, {"text": QUESTION, "client_id": "c-1"})
    assert reply.status == 201
    data = reply.json()
    assert set(data) == {"user_message", "ai_message", "reply", "asks_for_person", "handoff"}
    user, ai, end = data["user_message"], data["ai_message"], data["reply"]
    assert set(user) == HISTORY_FIELDS | {"client_id"} and set(ai) == HISTORY_FIELDS | {"reply_to"}
    assert (user["seq"], user["role"], user["text"], user["client_id"], user["status"]) == (
        1,
        "user",
        QUESTION,
        "c-1",
        "complete",
    )
    assert (ai["seq"], ai["role"], ai["status"], ai["reply_to"]) == (2, "assistant", "complete", 1)
    assert "widget.js" in ai["text"]
    assert (end["seq"], end["message_id"], end["status"], end["provider"]) == (2, ai["message_id"], "complete", "local")
    assert set(end) == {
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
    assert any("embed" in source["id"] for source in end["sources"])
    assert (data["asks_for_person"], data["handoff"]) == (False, None)
    assert await rows(conversation.id) == [(1, "user", "complete", "c-1"), (2, "assistant", "complete", None)]
    assert (await conversation.client.get(conversation.path)).json()["title"] == QUESTION


async def test_a_message_asking_for_a_person_says_so(conversation: Conversation) -> None:
    reply = await conversation.client.post(conversation.messages, {"text": "I want to talk to a human please"})
    assert reply.status == 201 and reply.json()["asks_for_person"] is True


async def test_without_a_key_each_message_gets_one_of_its_own(conversation: Conversation) -> None:
    first = await conversation.client.post(conversation.messages, {"text": SHORT_QUESTION})
    second = await conversation.client.post(conversation.messages, {"text": SHORT_QUESTION})
    assert first.status == second.status == 201
    keys = [first.json()["user_message"]["client_id"], second.json()["user_message"]["client_id"]]
    assert keys[0] != keys[1] and all(key.startswith("api-") for key in keys)
    assert [row[:2] for row in await rows(conversation.id)] == [
        (1, "user"),
        (2, "assistant"),
        (3, "user"),
        (4, "assistant"),
    ]


async def test_the_reply_uses_the_conversation_so_far(conversation: Conversation) -> None:
    await conversation.client.post(conversation.messages, {"text": QUESTION})
    second = await conversation.client.post(conversation.messages, {"text": SHORT_QUESTION})
    assert second.json()["ai_message"]["seq"] == 4 and second.json()["ai_message"]["reply_to"] == 3


# --- idempotency --------------------------------------------------------------------------------
@pytest.mark.backends
@pytest.mark.parametrize("how", ["header", "client_id", "both"])
async def test_a_retry_with_the_same_key_returns_the_same_pair_and_stores_one_message(
    conversation: Conversation, how: str
) -> None:
    body: dict[str, Any] = {"text": QUESTION}
    headers: dict[str, str] = {}
    if how in ("header", "both"):
        headers["idempotency-key"] = "key-1"
    if how in ("client_id", "both"):
        body["client_id"] = "key-1"
    first = await conversation.client.post(conversation.messages, body, headers=headers)
    retry = await conversation.client.post(conversation.messages, {**body, "text": "something else"}, headers=headers)
    assert (first.status, retry.status) == (201, 200)
    assert retry.json() == first.json()
    assert await rows(conversation.id) == [(1, "user", "complete", "key-1"), (2, "assistant", "complete", None)]


@pytest.mark.backends
async def test_a_retry_while_the_first_reply_streams_waits_for_it(conversation: Conversation, slow_replies) -> None:
    stream = conversation.client.begin(
        "POST",
        conversation.messages,
        json_body={"text": SHORT_QUESTION, "client_id": "k"},
        headers={"accept": "text/event-stream"},
    )
    await stream.head()
    await first_event(stream, "reply.start")
    retry = await conversation.client.post(conversation.messages, {"text": SHORT_QUESTION, "client_id": "k"})
    assert retry.status == 200
    assert retry.json()["ai_message"]["status"] == "complete" and retry.json()["reply"]["status"] == "complete"
    events = [item async for item in stream.events() if isinstance(item, SseEvent)]
    await stream.close()
    assert events[-1].name == "reply.end" and events[-1].data["message_id"] == retry.json()["ai_message"]["message_id"]
    assert len(await rows(conversation.id)) == 2


@pytest.mark.parametrize(
    ("headers", "body", "where"),
    [
        ({"idempotency-key": "a" * 65}, {}, ("parameter", "Idempotency-Key")),
        ({"idempotency-key": "two words"}, {}, ("parameter", "Idempotency-Key")),
        ({"idempotency-key": "desk:7:x"}, {}, ("parameter", "Idempotency-Key")),
        ({}, {"client_id": "desk:7:x"}, ("field", "client_id")),
        ({}, {"client_id": "c" * 65}, ("field", "client_id")),
        ({}, {"client_id": ""}, ("field", "client_id")),
    ],
)
async def test_a_bad_idempotency_key_is_a_400_naming_it(conversation, headers, body, where) -> None:
    reply = await conversation.client.post(conversation.messages, {"text": "Hi", **body}, headers=headers)
    assert reply.status == 400 and reply.json()[where[0]] == where[1]
    assert await rows(conversation.id) == []


async def test_a_header_and_a_client_id_that_differ_conflict(conversation: Conversation) -> None:
    reply = await conversation.client.post(
        conversation.messages, {"text": "Hi", "client_id": "two"}, headers={"idempotency-key": "one"}
    )
    assert reply.status == 409 and reply.code == "idempotency_conflict" and reply.json()["field"] == "client_id"
    assert await rows(conversation.id) == []


# --- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"text": ""}, "empty_message", "text"),
        ({"text": " \n\t "}, "empty_message", "text"),
        ({"text": "x" * 1001}, "message_too_long", "text"),
        ({"text": 12}, "invalid_field", "text"),
        ({"text": ["hi"]}, "invalid_field", "text"),
        ({"text": None}, "invalid_field", "text"),
        ({}, "invalid_field", "text"),
        ({"text": "hi", "colour": "red"}, "invalid_field", "colour"),
        ({"text": "hi\u0000"}, "invalid_field", "text"),
        ({"text": "hi", "client_id": 5}, "invalid_field", "client_id"),
    ],
)
async def test_a_bad_message_is_a_400_with_the_websockets_code(conversation, body, code, field) -> None:
    reply = await conversation.client.post(conversation.messages, body)
    assert reply.status == 400 and (reply.code, reply.json()["field"]) == (code, field)
    assert await rows(conversation.id) == []


async def test_a_lone_surrogate_is_refused(conversation: Conversation) -> None:
    reply = await conversation.client.request("POST", conversation.messages, body=b'{"text": "a\\ud800b"}')
    assert reply.status == 400 and reply.json()["field"] == "text"


async def test_the_message_limit_is_the_setting(conversation: Conversation, settings) -> None:
    settings.CHAT_MAX_MESSAGE_CHARS = 5
    reply = await conversation.client.post(conversation.messages, {"text": "abcdef"})
    assert reply.status == 400 and reply.code == "message_too_long"
    assert reply.json()["detail"] == "The message is 6 characters; the limit is 5."


async def test_someone_elses_conversation_is_403_and_nothing_is_stored(api, conversation: Conversation) -> None:
    other = await start_conversation(api)
    reply = await other.client.post(conversation.messages, {"text": "Hi"})
    assert reply.status == 403 and reply.code == "forbidden"
    anonymous = await api.post(conversation.messages, {"text": "Hi"})
    assert anonymous.status == 401
    assert await rows(conversation.id) == []


# --- conflicts, limits, load --------------------------------------------------------------------
@pytest.mark.backends
async def test_a_message_while_the_reply_streams_is_409(conversation: Conversation, slow_replies) -> None:
    stream = conversation.client.begin(
        "POST", conversation.messages, json_body={"text": SHORT_QUESTION}, headers={"accept": "text/event-stream"}
    )
    await stream.head()
    await first_event(stream, "reply.start")
    reply = await conversation.client.post(conversation.messages, {"text": "Hello?"})
    assert reply.status == 409 and reply.code == "reply_in_progress"
    _ = [item async for item in stream.events()]
    await stream.close()
    assert len(await rows(conversation.id)) == 2


@pytest.mark.backends
async def test_messages_per_conversation_are_limited_and_a_retry_of_a_stored_one_still_answers(api, settings) -> None:
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 2
    conversation = await start_conversation(ApiClient(ip=address()))
    for index in range(2):
        assert (
            await conversation.client.post(conversation.messages, {"text": "Hi", "client_id": f"m{index}"})
        ).status == 201
    refused = await conversation.client.post(conversation.messages, {"text": "Hi", "client_id": "m2"})
    assert refused.status == 429 and refused.code == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60 and refused.json()["retry_after"] >= 1
    retry = await conversation.client.post(conversation.messages, {"text": "Hi", "client_id": "m1"})
    assert retry.status == 200 and retry.json()["user_message"]["seq"] == 3
    assert len(await rows(conversation.id)) == 4


@pytest.mark.backends
async def test_messages_per_address_share_the_widgets_window(settings) -> None:
    settings.CHAT_IP_RATE_LIMIT_PER_MINUTE = 2
    api = ApiClient(ip=address())
    first, second = await start_conversation(api), await start_conversation(api)
    assert (await first.client.post(first.messages, {"text": "Hi"})).status == 201
    assert (await second.client.post(second.messages, {"text": "Hi"})).status == 201
    refused = await first.client.post(first.messages, {"text": "Hi again"})
    assert refused.status == 429 and refused.code == "rate_limited"


@pytest.mark.backends
async def test_turns_in_flight_are_bounded_per_process(api, settings, slow_replies) -> None:
    settings.API_MAX_TURNS_IN_FLIGHT = 1
    first, second = await start_conversation(api), await start_conversation(api)
    stream = first.client.begin(
        "POST", first.messages, json_body={"text": SHORT_QUESTION}, headers={"accept": "text/event-stream"}
    )
    await stream.head()
    await first_event(stream, "reply.start")
    busy = await second.client.post(second.messages, {"text": "Hi"})
    assert busy.status == 503 and busy.code == "server_busy" and busy.headers["retry-after"] == "1"
    _ = [item async for item in stream.events()]
    await stream.close()
    await asyncio.sleep(0)  # the reply's end gives its slot back
    assert (await second.client.post(second.messages, {"text": "Hi"})).status == 201


async def test_a_server_shutting_down_refuses_new_turns_with_restarting(conversation: Conversation) -> None:
    runtime.current().stopping = True
    try:
        reply = await conversation.client.post(conversation.messages, {"text": "Hi"})
    finally:
        runtime.current().stopping = False
    assert reply.status == 503 and reply.code == "restarting" and reply.headers["retry-after"] == "1"
    assert await rows(conversation.id) == []


# --- who answers --------------------------------------------------------------------------------
@pytest.mark.backends
async def test_while_a_person_answers_the_message_is_stored_without_an_ai_reply(conversation) -> None:
    await agent_claims(conversation.id)
    reply = await conversation.client.post(conversation.messages, {"text": "Are you a person?"})
    assert reply.status == 201
    data = reply.json()
    assert (data["ai_message"], data["reply"]) == (None, None) and data["user_message"]["seq"] == 1
    assert data["handoff"] == {"state": "assigned", "position": None, "agent_name": "Ada"}
    assert await rows(conversation.id) == [(1, "user", "complete", data["user_message"]["client_id"])]


@pytest.mark.backends
async def test_when_every_provider_fails_it_is_502_with_the_turn_as_stored(conversation, settings) -> None:
    settings.AI_PROVIDERS = ["openai"]  # no offline assistant to fall back on
    point(settings, "openai", refused_url())
    settings.PROVIDER_MAX_RETRIES = 1
    settings.PROVIDER_BACKOFF_BASE_S = 0.01
    settings.RESPONSE_CACHE_TTL_S = 0
    settings.TITLE_FROM_PROVIDER = False
    reply = await conversation.client.post(conversation.messages, {"text": QUESTION, "client_id": "p-1"})
    assert reply.status == 502
    data = reply.json()
    assert data["code"] == "provider_unavailable" and data["detail"]
    assert data["user_message"]["client_id"] == "p-1"
    assert (data["ai_message"]["status"], data["reply"]["status"], data["reply"]["error"]) == (
        "failed",
        "failed",
        "provider_unavailable",
    )
    assert "unavailable" in data["ai_message"]["text"]
    retry = await conversation.client.post(conversation.messages, {"text": QUESTION, "client_id": "p-1"})
    assert retry.status == 502 and retry.json()["ai_message"] == data["ai_message"]


async def test_the_local_assistant_answers_when_the_others_fail(conversation, settings) -> None:
    settings.AI_PROVIDERS = ["openai", "local"]
    point(settings, "openai", refused_url())
    settings.PROVIDER_MAX_RETRIES = 0
    settings.RESPONSE_CACHE_TTL_S = 0
    settings.TITLE_FROM_PROVIDER = False
    reply = await conversation.client.post(conversation.messages, {"text": QUESTION})
    assert reply.status == 201 and reply.json()["reply"]["provider"] == "local"


# --- reading back -------------------------------------------------------------------------------
@pytest.mark.backends
async def test_messages_since_a_seq_come_oldest_first_in_pages(conversation: Conversation) -> None:
    for text in ("One", "Two", "Three"):
        await conversation.client.post(conversation.messages, {"text": text})
    everything = await conversation.client.get(conversation.messages)
    assert everything.status == 200
    data = everything.json()
    assert set(data) == {"results", "next_since", "has_more"}
    assert [m["seq"] for m in data["results"]] == [1, 2, 3, 4, 5, 6] and (data["next_since"], data["has_more"]) == (
        6,
        False,
    )
    page = (await conversation.client.get(conversation.messages, query={"since": 2, "limit": 3})).json()
    assert [m["seq"] for m in page["results"]] == [3, 4, 5] and (page["next_since"], page["has_more"]) == (5, True)
    rest = (await conversation.client.get(conversation.messages, query={"since": 5})).json()
    assert [m["seq"] for m in rest["results"]] == [6] and rest["has_more"] is False
    none = (await conversation.client.get(conversation.messages, query={"since": 6})).json()
    assert none == {"results": [], "next_since": 6, "has_more": False}
    assert data["results"][0]["text"] == "One" and data["results"][1]["reply_to"] == 1


@pytest.mark.backends
async def test_next_since_stops_before_a_reply_still_streaming(conversation: Conversation, slow_replies) -> None:
    stream = conversation.client.begin(
        "POST", conversation.messages, json_body={"text": SHORT_QUESTION}, headers={"accept": "text/event-stream"}
    )
    await stream.head()
    await first_event(stream, "reply.start")
    during = (await conversation.client.get(conversation.messages)).json()
    assert [(m["seq"], m["status"]) for m in during["results"]] == [(1, "complete"), (2, "streaming")]
    assert during["next_since"] == 1
    _ = [item async for item in stream.events()]
    await stream.close()
    after = (await conversation.client.get(conversation.messages, query={"since": during["next_since"]})).json()
    assert [(m["seq"], m["status"]) for m in after["results"]] == [(2, "complete")] and after["next_since"] == 2


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"since": "-1"}, "since"),
        ({"since": "abc"}, "since"),
        ({"since": "1.5"}, "since"),
        ({"since": "99999999999"}, "since"),
        ({"since": "٣"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": ""}, "limit"),
        ([("since", "1"), ("since", "2")], "since"),
        ({"after": "1"}, "after"),
        ({"format": "json"}, "format"),
    ],
)
async def test_a_bad_query_parameter_is_a_400_naming_it(conversation: Conversation, query, parameter) -> None:
    reply = await conversation.client.get(conversation.messages, query=query)
    assert reply.status == 400 and reply.code == "invalid_parameter" and reply.json()["parameter"] == parameter


async def test_reading_another_conversation_is_403(api, conversation: Conversation) -> None:
    other = await start_conversation(api)
    assert (await other.client.get(conversation.messages)).status == 403
    assert (await api.get(conversation.messages)).status == 401

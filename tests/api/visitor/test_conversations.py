"""`/api/v1/conversations/`: starting one, reading one, ending one; tokens, origins and bad input."""

from __future__ import annotations

import time
import uuid

import pytest
from channels.db import database_sync_to_async

from assistant.access import identity_signature
from assistant.models import ChatSession
from tests.api.visitor.client import ApiClient
from tests.api.visitor.conftest import BASE, Conversation, start_conversation
from tests.assistant.test_consumers import connected
from tests.support.chat import open_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drain_replies")]

CREATE = f"{BASE}/conversations/"


@database_sync_to_async
def stored(conversation_id: str) -> ChatSession:
    return ChatSession.objects.get(public_id=conversation_id)


def signed(secret: str, **fields: object) -> dict[str, object]:
    identity: dict[str, object] = {
        "user_id": "u-42",
        "user_type": "client",
        "name": "Ann",
        "email": "ann@example.com",
        "issued_at": int(time.time()),
    }
    identity.update(fields)
    identity["signature"] = identity_signature(secret, **identity)  # type: ignore[arg-type]
    return identity


# --- starting one -------------------------------------------------------------------------------
async def test_start_answers_exactly_the_contract_fields_and_writes_the_row_as_an_api_conversation(api) -> None:
    reply = await api.post(
        CREATE,
        {
            "page": {"url": "https://shop.example/help", "title": "Help", "referrer": "https://r.example/"},
            "locale": "en-GB",
        },
        headers={"user-agent": "curl/8.5"},
    )
    assert reply.status == 201
    data = reply.json()
    assert set(data) == {"id", "token", "title", "status", "created_at", "user_type"}
    assert (data["title"], data["status"], data["user_type"]) == ("", "active", "anonymous")
    assert len(data["token"]) == 43 and data["created_at"].endswith("Z")
    session = await stored(data["id"])
    assert (session.source, session.page_url, session.page_title, session.referrer, session.locale) == (
        "api",
        "https://shop.example/help",
        "Help",
        "https://r.example/",
        "en-GB",
    )
    assert session.user_agent == "curl/8.5" and session.token_hash != data["token"]


async def test_an_empty_body_starts_an_anonymous_conversation(api) -> None:
    reply = await api.request("POST", CREATE)
    assert reply.status == 201 and reply.json()["user_type"] == "anonymous"


async def test_a_valid_signed_identity_identifies_the_visitor_and_a_forged_one_is_ignored(api, settings) -> None:
    settings.WIDGET_IDENTITY_SECRET = "s3cret"
    good = await api.post(CREATE, {"identity": signed("s3cret")})
    assert good.status == 201 and good.json()["user_type"] == "client"
    session = await stored(good.json()["id"])
    assert (session.external_user_id, session.external_user_name, session.external_user_email) == (
        "u-42",
        "Ann",
        "ann@example.com",
    )
    forged = await api.post(CREATE, {"identity": signed("other-secret")})
    assert forged.status == 201 and forged.json()["user_type"] == "anonymous"


async def test_an_identity_is_required_when_the_server_says_so(api, settings) -> None:
    settings.WIDGET_IDENTITY_SECRET = "s3cret"
    settings.WIDGET_IDENTITY_REQUIRED = True
    refused = await api.post(CREATE, {"identity": signed("nope")})
    assert refused.status == 403 and refused.json() == {
        "code": "forbidden",
        "detail": "A valid signed identity is required (WIDGET_IDENTITY_REQUIRED).",
        "field": "identity",
    }
    assert (await api.post(CREATE, {})).status == 403
    assert (await api.post(CREATE, {"identity": signed("s3cret")})).status == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"locale": 5}, "locale"),
        ({"locale": "x" * 36}, "locale"),
        ({"page": {"url": "u" * 2001}}, "page.url"),
        ({"page": {"colour": "red"}}, "page.colour"),
        ({"page": "https://x.example"}, "page"),
        ({"identity": {"user_id": "u"}}, "identity.issued_at"),
        ({"identity": {"user_id": "u", "issued_at": "1", "signature": "ab"}}, "identity.issued_at"),
        ({"identity": {"user_id": "u", "issued_at": 1, "signature": "ab", "role": "admin"}}, "identity.role"),
        ({"token": "abc"}, "token"),
        ({"locale": "en\u0000"}, "locale"),
    ],
)
async def test_a_bad_field_is_a_400_naming_it(api, body, field) -> None:
    reply = await api.post(CREATE, body)
    assert reply.status == 400 and reply.json()["code"] == "invalid_field" and reply.json()["field"] == field


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_field"),
        (b'{"locale": NaN}', "invalid_json"),
        (b"[" * 60_000, "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_a_400(api, raw, code) -> None:
    reply = await api.request("POST", CREATE, body=raw)
    assert reply.status == 400 and reply.code == code


async def test_a_body_of_another_type_is_415_and_an_oversized_one_413(api) -> None:
    reply = await api.request("POST", CREATE, body=b"locale=en", headers={"content-type": "text/plain"})
    assert reply.status == 415 and reply.code == "unsupported_media_type"
    reply = await api.request("POST", CREATE, body=b" " * 200_000)
    assert reply.status == 413 and reply.code == "payload_too_large"


async def test_new_conversations_per_address_share_the_widgets_hourly_limit(settings) -> None:
    settings.CHAT_SESSIONS_PER_IP_PER_HOUR = 2
    api = ApiClient(ip=f"10.9.{uuid.uuid4().int % 250}.7")
    await start_conversation(api)
    # the widget's first message writes a conversation too, counted in the same window
    client, ok, _ = await open_client(ip=api.ip)
    assert ok
    await client.hello()
    await client.say("Hello", "c-1")
    await client.close()
    refused = await api.post(CREATE, {})
    assert refused.status == 429 and refused.code == "rate_limited"
    assert 0 < int(refused.headers["retry-after"]) <= 3600 and refused.json()["retry_after"] > 0
    assert (await ApiClient(ip="10.200.0.1").post(CREATE, {})).status == 201  # another address


# --- reading one --------------------------------------------------------------------------------
async def test_read_gives_the_conversation_with_its_handoff_and_the_widget_config(conversation: Conversation) -> None:
    reply = await conversation.client.get(conversation.path)
    assert reply.status == 200
    data = reply.json()
    assert set(data) == {
        "id",
        "title",
        "status",
        "source",
        "user_type",
        "created_at",
        "closed_at",
        "last_seq",
        "handoff",
        "config",
    }
    assert (data["id"], data["status"], data["source"], data["last_seq"], data["closed_at"]) == (
        conversation.id,
        "active",
        "api",
        0,
        None,
    )
    assert data["handoff"] == {"state": "ai", "position": None, "agent_name": None}
    assert data["config"]["max_chars"] == 1000 and data["config"]["ask_contact"] == "off"


async def test_without_a_token_it_is_401_with_the_bearer_scheme(api, conversation: Conversation) -> None:
    reply = await api.get(conversation.path)
    assert reply.status == 401 and reply.code == "unauthorized"
    assert reply.headers["www-authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer short", "Bearer " + "é" * 43, "Bearer a b c", "Token " + "a" * 43],
)
async def test_a_malformed_authorization_is_401(api, conversation: Conversation, header: str) -> None:
    reply = await api.get(conversation.path, headers={"authorization": header})
    assert reply.status == 401 and reply.code == "unauthorized"


async def test_another_conversations_token_or_an_unknown_id_is_the_same_403(api, conversation) -> None:
    other = await start_conversation(api)
    wrong = await other.client.get(conversation.path)
    unknown = await conversation.client.get(f"{BASE}/conversations/{uuid.uuid4()}/")
    forged = await api.get(conversation.path, token="A" * 43)
    for malformed_id in ("not-a-uuid", conversation.id.replace("-", ""), f"{{{conversation.id}}}"):
        malformed = await conversation.client.get(f"{BASE}/conversations/{malformed_id}/")
        assert malformed.status == 403 and malformed.headers["content-type"] == "application/json"
    assert (await conversation.client.get(f"{BASE}/conversations/{conversation.id.upper()}/")).status == 200
    assert wrong.status == unknown.status == forged.status == 403
    assert (
        wrong.json()
        == unknown.json()
        == forged.json()
        == {"code": "forbidden", "detail": "This token does not open that conversation."}
    )


async def test_the_widgets_resume_token_opens_its_conversation_once_it_has_a_row(api) -> None:
    client = await connected()
    welcome = await client.hello()
    pending = await api.get(f"{BASE}/conversations/{welcome['session_id']}/", token=welcome["token"])
    assert pending.status == 403  # nothing stored yet: no conversation
    await client.say("Hello", "c-1")
    await client.close()
    reply = await api.get(f"{BASE}/conversations/{welcome['session_id']}/", token=welcome["token"])
    assert reply.status == 200 and (reply.json()["source"], reply.json()["last_seq"]) == ("widget", 2)


async def test_an_unsupported_method_is_405_with_allow(conversation: Conversation) -> None:
    reply = await conversation.client.request("DELETE", conversation.path)
    assert reply.status == 405 and reply.code == "method_not_allowed"
    assert "GET" in reply.headers["allow"]


async def test_an_accept_the_api_cannot_answer_is_406(conversation: Conversation) -> None:
    reply = await conversation.client.get(conversation.path, headers={"accept": "text/html"})
    assert reply.status == 406 and reply.code == "not_acceptable"


# --- browser origins ----------------------------------------------------------------------------
async def test_a_browser_from_a_disallowed_origin_is_403(conversation: Conversation, settings) -> None:
    settings.WIDGET_ALLOWED_ORIGINS = ["https://shop.example"]
    reply = await conversation.client.get(conversation.path, headers={"origin": "https://evil.example"})
    assert reply.status == 403 and reply.code == "forbidden"
    assert "access-control-allow-origin" not in reply.headers
    created = await ApiClient().post(CREATE, {}, headers={"origin": "null"})
    assert created.status == 403


async def test_an_allowed_origin_gets_cors_headers_and_its_preflight_is_answered(conversation, settings) -> None:
    settings.WIDGET_ALLOWED_ORIGINS = ["https://shop.example"]
    origin = {"origin": "https://shop.example"}
    reply = await conversation.client.get(conversation.path, headers=origin)
    assert reply.status == 200 and reply.headers["access-control-allow-origin"] == "https://shop.example"
    assert "Origin" in reply.headers["vary"] and "Retry-After" in reply.headers["access-control-expose-headers"]
    preflight = await ApiClient().request(
        "OPTIONS",
        conversation.messages,
        headers={**origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization"},
    )
    assert preflight.status == 204
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    assert "Idempotency-Key" in preflight.headers["access-control-allow-headers"]
    assert "POST" in preflight.headers["access-control-allow-methods"]


async def test_requests_without_an_origin_are_not_browsers_and_pass(conversation, settings) -> None:
    settings.WIDGET_ALLOWED_ORIGINS = ["https://shop.example"]
    assert (await conversation.client.get(conversation.path)).status == 200
    same_site = await conversation.client.get(conversation.path, headers={"origin": "http://testserver"})
    assert same_site.status == 200


async def test_every_address_is_held_to_its_request_rate(settings, conversation: Conversation) -> None:
    settings.API_REQUESTS_PER_IP_PER_MINUTE = 3
    client = ApiClient(ip=f"10.8.{uuid.uuid4().int % 250}.1", token=conversation.token)
    for _ in range(3):
        assert (await client.get(conversation.path)).status == 200
    refused = await client.get(conversation.path)
    assert refused.status == 429 and refused.code == "rate_limited" and int(refused.headers["retry-after"]) >= 1


# --- ending one ---------------------------------------------------------------------------------
async def test_end_closes_it_tells_the_widget_tabs_and_a_new_message_reopens_it(conversation: Conversation) -> None:
    tab = await connected()
    await tab.hello(session_id=conversation.id, token=conversation.token)
    reply = await conversation.client.post(f"{conversation.path}end/")
    assert reply.status == 200 and reply.json()["status"] == "closed" and reply.json()["closed_at"]
    assert (await tab.recv_type("ended")) == {"type": "ended"}
    session = await stored(conversation.id)
    assert session.status == "closed"
    assert (await conversation.client.get(conversation.path)).json()["status"] == "closed"  # the token still works
    turn = await conversation.client.post(conversation.messages, {"text": "One more thing"})
    assert turn.status == 201
    assert (await conversation.client.get(conversation.path)).json()["status"] == "active"
    await tab.close()


async def test_end_takes_no_fields(conversation: Conversation) -> None:
    reply = await conversation.client.post(f"{conversation.path}end/", {"now": True})
    assert reply.status == 400 and reply.json()["field"] == "now"

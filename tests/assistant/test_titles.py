"""Session titles: from the first message at once, then from a short provider call if configured."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from assistant import titles
from assistant.models import ChatSession, ProviderCall
from assistant.replies import registry
from assistant.services import make_title
from tests.support.chat import open_client
from tests.support.fake_vendors import FakeVendor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drain_replies")]
QUESTION = "Hi there, how can I put your chat widget on my Shopify store?"


async def chat_once() -> str:
    client, ok, _ = await open_client()
    assert ok
    welcome = await client.hello()
    await client.say(QUESTION, "t1")
    await client.close()
    await registry.drain()  # the title call runs in the background
    return welcome["session_id"]


@database_sync_to_async
def session_and_calls(session_id: str) -> tuple[ChatSession, list[tuple[str, str, str]]]:
    session = ChatSession.objects.get(public_id=session_id)
    calls = list(
        ProviderCall.objects.filter(session=session).order_by("id").values_list("feature", "provider", "outcome")
    )
    return session, calls


async def test_a_cloud_provider_writes_the_title_without_delaying_the_reply(settings: Any) -> None:
    with FakeVendor("anthropic", tokens=['"Embedding ', "the widget ", 'on Shopify."']) as vendor:
        settings.AI_PROVIDERS = ["anthropic", "local"]
        settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL = "k", vendor.base_url
        session_id = await chat_once()
    session, calls = await session_and_calls(session_id)
    assert session.title == "Embedding the widget on Shopify"
    assert sorted(calls) == [("chat_reply", "anthropic", "ok"), ("title", "anthropic", "ok")]
    title_request = next(r for r in vendor.requests if r.json["system"].startswith(titles.TITLE_PROMPT[:30]))
    assert title_request.json["system"] == titles.TITLE_PROMPT  # no knowledge base excerpts
    assert title_request.json["messages"] == [{"role": "user", "content": QUESTION}]


async def test_a_failed_title_call_keeps_the_title_from_the_first_message(settings: Any) -> None:
    settings.PROVIDER_MAX_RETRIES = 0
    with FakeVendor("openai") as vendor:
        vendor.faults.extend(["ok", "status:503"])  # the reply, then the title call (after the reply)
        settings.AI_PROVIDERS = ["openai", "local"]
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", f"{vendor.base_url}/v1"
        session_id = await chat_once()
    session, calls = await session_and_calls(session_id)
    assert session.title == make_title(QUESTION)
    assert calls == [("chat_reply", "openai", "ok"), ("title", "openai", "error")]


async def test_without_a_cloud_provider_no_title_call_is_made() -> None:
    session_id = await chat_once()
    session, calls = await session_and_calls(session_id)
    assert session.title == make_title(QUESTION)
    assert calls == [("chat_reply", "local", "ok")]


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ('"Embedding the widget."', "Embedding the widget"),
        ("Title: Password reset help\nExtra line", "Password reset help"),
        ("**Billing question**", "Billing question"),
        ("   \n", ""),
    ],
)
def test_clean_title(raw: str, title: str) -> None:
    assert titles.clean_title(raw) == title

"""Repeated first questions come from the cache: on for the local assistant, opt-in for cloud."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from assistant import response_cache
from assistant.models import ChatMessage, ProviderCall
from tests.support.chat import open_client
from tests.support.fake_vendors import FakeVendor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends, pytest.mark.usefixtures("drain_replies")]


async def first_turn(text: str, client_id: str = "c1") -> tuple[str, dict[str, Any], str]:
    client, ok, _ = await open_client()
    assert ok
    welcome = await client.hello()
    _, reply, end = await client.say(text, client_id)
    await client.close()
    return reply, end, welcome["session_id"]


async def test_a_repeated_first_question_is_answered_from_the_cache() -> None:
    text, end, _ = await first_turn("How do I embed the widget?")
    assert end["cached"] is False and end["provider"] == "local"
    again, cached_end, session_id = await first_turn("  how do I EMBED the widget  ")
    assert again == text
    assert (cached_end["cached"], cached_end["provider"], cached_end["status"]) == (True, "local", "complete")
    assert cached_end["sources"] == end["sources"]
    stored = await database_sync_to_async(
        lambda: ChatMessage.objects.get(session__public_id=session_id, role="assistant")
    )()
    assert stored.cached and stored.text == text
    calls = await database_sync_to_async(ProviderCall.objects.filter(session__public_id=session_id).count)()
    assert calls == 0  # nothing was called


async def test_later_questions_are_never_cached(settings: Any) -> None:
    client, ok, _ = await open_client()
    assert ok
    await client.hello()
    await client.say("How do I scale Parley?", "a")
    _, _, end = await client.say("How do I embed the widget?", "b")  # not first: depends on the chat
    await client.close()
    assert end["cached"] is False
    _, first_end, _ = await first_turn("How do I embed the widget?")
    assert first_end["cached"] is False  # the earlier answer was a follow-up, so it was not stored


async def test_the_cache_can_be_turned_off(settings: Any) -> None:
    settings.RESPONSE_CACHE_LOCAL_TTL_S = 0
    await first_turn("How do I embed the widget?")
    _, end, _ = await first_turn("How do I embed the widget?")
    assert end["cached"] is False


@pytest.mark.parametrize(("ttl", "vendor_calls"), [(0, 2), (60, 1)])
async def test_cloud_answers_are_cached_only_when_opted_in(settings: Any, ttl: int, vendor_calls: int) -> None:
    settings.RESPONSE_CACHE_TTL_S = ttl
    settings.TITLE_FROM_PROVIDER = False
    with FakeVendor("openai", tokens=["Add ", "one ", "tag."]) as vendor:
        settings.AI_PROVIDERS = ["openai", "local"]
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", f"{vendor.base_url}/v1"
        first, _, _ = await first_turn("How do I embed the widget?")
        second, end, _ = await first_turn("How do I embed the widget?")
        assert len(vendor.requests) == vendor_calls
    assert first == second == "Add one tag."
    assert (end["cached"], end["provider"]) == (ttl > 0, "openai")


def test_the_key_changes_with_the_knowledge_base_and_the_provider_chain() -> None:
    key = response_cache.cache_key("How do I embed the widget?", "v1", ["local"])
    assert key == response_cache.cache_key("how do i embed the widget", "v1", ["local"])
    assert key != response_cache.cache_key("How do I embed the widget?", "v2", ["local"])
    assert key != response_cache.cache_key("How do I embed the widget?", "v1", ["openai", "local"])

"""Provider edge cases of issue 13, black-box: websocket → router → real SDKs → fake vendors.

The chain is the one the issue was observed with (Gemini → OpenAI → Anthropic → local). These
tests are marked `backends`, so they run twice: with the per-process breaker and the
local-memory cache on the embedded defaults, and with the shared Redis breaker (Lua scripts,
probe key with a TTL) and the Redis cache in the services pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from assistant import titles
from assistant.providers.breaker import breaker
from tests.assistant.providers.test_failover import ask, point, stored
from tests.support.chat import open_client
from tests.support.fake_vendors import FakeVendor, refused_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends, pytest.mark.usefixtures("drain_replies")]

CHAIN = ["gemini", "openai", "anthropic", "local"]
CLOUD = CHAIN[:-1]
QUESTION = "How do I embed the widget?"
COOLDOWN_S = 0.5


@pytest.fixture
def edge(settings: Any) -> Any:
    """Small timeouts and breaker values, the issue's chain, titles and caches off unless asked."""
    settings.PROVIDER_CONNECT_TIMEOUT_S = 0.5
    settings.PROVIDER_FIRST_TOKEN_TIMEOUT_S = 0.6
    settings.PROVIDER_IDLE_TIMEOUT_S = 0.6
    settings.PROVIDER_BACKOFF_BASE_S = 0.02
    settings.PROVIDER_MAX_RETRIES = 0
    settings.PROVIDER_BREAKER_THRESHOLD = 3
    settings.PROVIDER_BREAKER_COOLDOWN_S = COOLDOWN_S
    settings.CHAT_REPLY_TIMEOUT_S = 15
    settings.TITLE_FROM_PROVIDER = False
    settings.RESPONSE_CACHE_TTL_S = 0
    settings.CHAT_DELTA_INTERVAL_MS = 0
    settings.AI_PROVIDERS = CHAIN
    return settings


@pytest.fixture
def vendors() -> Iterator[dict[str, FakeVendor]]:
    servers = {name: FakeVendor(name, tokens=[f"{name} ", "answers ", "this."]).start() for name in CLOUD}
    yield servers
    for server in servers.values():
        server.stop()


def answer_of(vendor: str) -> str:
    return f"{vendor} answers this."


def end_of(turn: Any) -> dict[str, Any]:
    [end] = turn.of("reply.end")
    return end


# --- 1. A stand-in answer is never served from the cache once a better provider is back ---------


@pytest.mark.parametrize(
    ("down", "stand_in"),
    [(CLOUD, "local"), (["gemini"], "openai")],
    ids=["every cloud provider down", "primary down"],
)
async def test_a_fallback_answer_is_not_served_from_the_cache_once_the_primary_is_back(
    edge: Any, vendors: dict[str, FakeVendor], down: list[str], stand_in: str
) -> None:
    edge.RESPONSE_CACHE_TTL_S = 60  # cloud answers may be cached too: the rule must hold for both
    for name in CLOUD:
        point(edge, name, refused_url() if name in down else vendors[name].base_url)
    outage = await ask(QUESTION)
    assert (end_of(outage)["provider"], end_of(outage)["cached"]) == (stand_in, False)

    for name in down:  # the outage is over
        point(edge, name, vendors[name].base_url)
    recovered = await ask(QUESTION)
    assert (end_of(recovered)["provider"], end_of(recovered)["cached"]) == ("gemini", False)
    assert recovered.text_of(end_of(recovered)["seq"]) == answer_of("gemini")

    # The primary's own answer is cached as before.
    again = await ask(QUESTION)
    assert (end_of(again)["provider"], end_of(again)["cached"]) == ("gemini", True)
    assert len(vendors["gemini"].requests) == 1


# --- 2. A bad key or model takes the provider out at once -----------------------------------------


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_bad_key_or_model_takes_the_provider_out_at_once_so_the_title_does_not_reuse_it(
    edge: Any, vendors: dict[str, FakeVendor], status: int, caplog: pytest.LogCaptureFixture
) -> None:
    edge.TITLE_FROM_PROVIDER = True
    edge.PROVIDER_BREAKER_COOLDOWN_S = 30
    for name in CLOUD:
        point(edge, name, vendors[name].base_url)
    vendors["gemini"].faults.extend([f"status:{status}"] * 5)
    with caplog.at_level(logging.WARNING):
        first = await ask(QUESTION)
        await titles.drain()
        second = await ask("And how do I scale Parley?")
        await titles.drain()
    assert end_of(first)["provider"] == end_of(second)["provider"] == "openai"
    assert len(vendors["gemini"].requests) == 1  # not the title's, not the next visitor's

    _, calls = await stored(first.session_id)
    gemini_calls = [(c["feature"], c["outcome"], c["status_code"]) for c in calls if c["provider"] == "gemini"]
    assert sorted(gemini_calls) == [("chat_reply", "error", status), ("title", "skipped", None)]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # one line for the operator, not one per request
    assert "gemini" in errors[0].getMessage() and "key" in errors[0].getMessage()
    assert errors[0].exc_info is None


async def test_a_bad_request_400_is_not_taken_for_a_bad_key(edge: Any, vendors: dict[str, FakeVendor]) -> None:
    """A 400 may come from one request's content: it counts as one failure, nothing more."""
    for name in CLOUD:
        point(edge, name, vendors[name].base_url)
    vendors["gemini"].faults.append("status:400")
    assert end_of(await ask(QUESTION))["provider"] == "openai"
    assert end_of(await ask("And how do I scale Parley?"))["provider"] == "gemini"


# --- 3. A half-open probe is always settled ---------------------------------------------------


async def open_breaker_of_gemini(edge: Any, vendors: dict[str, FakeVendor]) -> None:
    """Fail the primary past the threshold through the chain (503s: counted, not fatal), then heal it."""
    for name in CLOUD:
        point(edge, name, vendors[name].base_url)
    vendors["gemini"].faults.extend(["status:503"] * edge.PROVIDER_BREAKER_THRESHOLD)
    for number in range(edge.PROVIDER_BREAKER_THRESHOLD + 1):
        assert end_of(await ask(f"Question {number}"))["provider"] == "openai"
    assert len(vendors["gemini"].requests) == edge.PROVIDER_BREAKER_THRESHOLD  # the last one skipped it
    await asyncio.sleep(COOLDOWN_S + 0.1)  # half-open now, and the primary is healthy again


async def test_a_stopped_probe_releases_the_half_open_breaker(edge: Any, vendors: dict[str, FakeVendor]) -> None:
    await open_breaker_of_gemini(edge, vendors)
    before = len(vendors["gemini"].requests)
    vendors["gemini"].tokens = [f"w{i} " for i in range(40)]
    vendors["gemini"].token_interval_s = 0.05
    client, ok, _ = await open_client()
    assert ok
    await client.hello()
    await client.send({"type": "message", "text": "Tell me everything", "client_id": "s"})
    first = await client.recv_type("reply.delta")
    await client.send({"type": "stop"})
    _, end = await client.read_reply()
    await client.close()
    assert (end["status"], end["provider"]) == ("stopped", "gemini") and first["text"].startswith("w0")

    vendors["gemini"].tokens, vendors["gemini"].token_interval_s = ["gemini ", "answers ", "this."], 0.0
    healed = await ask("Is it back?")  # at once: the stopped probe gave its slot back
    assert end_of(healed)["provider"] == "gemini"
    assert len(vendors["gemini"].requests) == before + 2


async def test_a_probe_cut_short_by_the_reply_deadline_is_released(edge: Any, vendors: dict[str, FakeVendor]) -> None:
    """The deadline passed between the breaker's yes and the call: no request, so no probe held."""
    await open_breaker_of_gemini(edge, vendors)
    before = len(vendors["gemini"].requests)
    edge.AI_PROVIDERS = ["anthropic", "gemini", "local"]
    edge.CHAT_REPLY_TIMEOUT_S = 1
    edge.PROVIDER_FIRST_TOKEN_TIMEOUT_S = 3  # anthropic's wait is cut by the reply deadline
    vendors["anthropic"].faults.append("hang")
    timed_out = await ask("Anyone there?")
    assert (end_of(timed_out)["status"], end_of(timed_out)["error"]) == ("failed", "reply_timeout")
    assert len(vendors["gemini"].requests) == before  # never called: no time was left

    edge.CHAT_REPLY_TIMEOUT_S = 15
    edge.AI_PROVIDERS = CHAIN
    healed = await ask("Is it back?")
    assert end_of(healed)["provider"] == "gemini"


async def test_the_title_call_never_takes_the_half_open_probe_from_the_reply(
    edge: Any, vendors: dict[str, FakeVendor]
) -> None:
    await open_breaker_of_gemini(edge, vendors)
    edge.TITLE_FROM_PROVIDER = True
    healed = await ask("Is it back?")
    await titles.drain()
    assert end_of(healed)["provider"] == "gemini"  # the visitor's reply was the probe
    _, calls = await stored(healed.session_id)
    assert sorted((c["feature"], c["provider"], c["outcome"]) for c in calls) == [
        ("chat_reply", "gemini", "ok"),
        ("title", "gemini", "ok"),  # after the probe closed the breaker
    ]


async def test_a_failed_probe_is_not_retried(edge: Any, vendors: dict[str, FakeVendor]) -> None:
    """The probe's failure opens the breaker again: the same reply must not call it twice more."""
    await open_breaker_of_gemini(edge, vendors)
    before = len(vendors["gemini"].requests)
    edge.PROVIDER_MAX_RETRIES = 2
    vendors["gemini"].faults.extend(["status:503"] * 3)
    assert end_of(await ask("Is it back?"))["provider"] == "openai"
    assert len(vendors["gemini"].requests) == before + 1
    assert not await breaker.allow("gemini")  # open again for a cooldown

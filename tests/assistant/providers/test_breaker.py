"""The circuit breaker: closed → open → half-open (one probe) → closed, per process and shared."""

from __future__ import annotations

import asyncio

import pytest

from assistant.providers.breaker import CircuitBreaker


@pytest.fixture
def fast_breaker(settings) -> CircuitBreaker:
    settings.PROVIDER_BREAKER_THRESHOLD = 2
    settings.PROVIDER_BREAKER_COOLDOWN_S = 0.2
    return CircuitBreaker()


async def fail(breaker: CircuitBreaker, provider: str, times: int) -> None:
    for _ in range(times):
        await breaker.record(provider, ok=False)


async def test_opens_after_threshold_then_lets_one_probe_through(fast_breaker: CircuitBreaker) -> None:
    assert await fast_breaker.allow("openai")
    await fail(fast_breaker, "openai", 1)
    assert await fast_breaker.allow("openai")  # one failure is below the threshold
    await fail(fast_breaker, "openai", 1)
    assert not await fast_breaker.allow("openai")
    assert await fast_breaker.allow("gemini")  # breakers are per provider
    await asyncio.sleep(0.25)
    assert await fast_breaker.allow("openai")  # half-open: the probe
    assert not await fast_breaker.allow("openai")  # …and only one
    await fast_breaker.record("openai", ok=True)
    assert await fast_breaker.allow("openai") and await fast_breaker.allow("openai")  # closed again


async def test_a_failed_probe_opens_it_again(fast_breaker: CircuitBreaker) -> None:
    await fail(fast_breaker, "anthropic", 2)
    await asyncio.sleep(0.25)
    assert await fast_breaker.allow("anthropic")
    await fail(fast_breaker, "anthropic", 1)
    assert not await fast_breaker.allow("anthropic")
    await asyncio.sleep(0.25)
    assert await fast_breaker.allow("anthropic")


async def test_a_success_resets_the_failure_count(fast_breaker: CircuitBreaker) -> None:
    await fail(fast_breaker, "openai", 1)
    await fast_breaker.record("openai", ok=True)
    await fail(fast_breaker, "openai", 1)
    assert await fast_breaker.allow("openai")


@pytest.mark.services
async def test_state_is_shared_through_redis_by_every_process(fast_breaker: CircuitBreaker) -> None:
    """Two breaker objects stand for two server processes: they share nothing but Redis."""
    from django.core.cache import cache

    from assistant import shared_redis

    cache.clear()
    other_process = CircuitBreaker()
    try:
        await fail(fast_breaker, "gemini", 2)
        assert not await other_process.allow("gemini")
        await asyncio.sleep(0.25)
        assert await other_process.allow("gemini")  # the probe, taken by the other process…
        assert not await fast_breaker.allow("gemini")  # …so this one may not probe too
        await other_process.record("gemini", ok=True)
        assert await fast_breaker.allow("gemini")
    finally:
        await shared_redis.close()

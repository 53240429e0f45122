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


# --- Issue 13: every probe is settled; a bad key opens the breaker at once --------------------
# Marked `backends`: in-process on the embedded run, the Redis scripts in the services pass.


@pytest.fixture
async def either_breaker(fast_breaker: CircuitBreaker):
    """The breaker as configured by the run: per process, or shared through Redis."""
    from assistant import shared_redis

    yield fast_breaker
    await shared_redis.close()


@pytest.mark.backends
async def test_a_released_probe_lets_the_next_call_probe(either_breaker: CircuitBreaker) -> None:
    await fail(either_breaker, "openai", 2)
    await asyncio.sleep(0.25)
    probe = await either_breaker.allow("openai")
    assert probe is not None and probe.probe
    assert await either_breaker.allow("openai") is None  # one probe at a time
    await either_breaker.release(probe)  # the call was stopped: nothing counted, slot free
    again = await either_breaker.allow("openai")
    assert again is not None and again.probe
    await either_breaker.record("openai", ok=True)
    closed = await either_breaker.allow("openai")
    assert closed is not None and not closed.probe


@pytest.mark.backends
async def test_a_stale_release_does_not_free_another_callers_probe(either_breaker: CircuitBreaker) -> None:
    await fail(either_breaker, "gemini", 2)
    await asyncio.sleep(0.25)
    first = await either_breaker.allow("gemini")
    assert first is not None
    await fail(either_breaker, "gemini", 1)  # the probe failed: open again
    await asyncio.sleep(0.25)
    second = await either_breaker.allow("gemini")
    assert second is not None and second.probe
    await either_breaker.release(first)  # late: must not free the probe of `second`
    assert await either_breaker.allow("gemini") is None


@pytest.mark.backends
async def test_a_bad_key_opens_the_breaker_at_once_and_counts_as_one_opening(either_breaker: CircuitBreaker) -> None:
    assert await either_breaker.record("anthropic", ok=False, fatal=True)  # threshold is 2
    assert await either_breaker.allow("anthropic") is None
    assert not await either_breaker.record("anthropic", ok=False, fatal=True)  # already open: not reported again
    await asyncio.sleep(0.25)
    probe = await either_breaker.allow("anthropic")
    assert probe is not None and probe.probe
    assert await either_breaker.record("anthropic", ok=False, fatal=True)  # the probe found it bad again


@pytest.mark.backends
async def test_a_side_call_never_takes_the_half_open_probe(either_breaker: CircuitBreaker) -> None:
    await fail(either_breaker, "openai", 2)
    await asyncio.sleep(0.25)
    assert await either_breaker.allow("openai", probe=False) is None
    probe = await either_breaker.allow("openai")
    assert probe is not None and probe.probe
    await either_breaker.record("openai", ok=True)
    assert await either_breaker.allow("openai", probe=False) is not None

"""Shared fixtures.

The suite runs twice under `make test`: on the embedded defaults (SQLite + in-memory layer), and
with DATABASE_URL/REDIS_URL set (real Postgres + Redis) for the tests marked `backends` or
`services`. Service-backed tests skip without those services unless REQUIRE_SERVICES=1, in
which case they fail.
"""

from __future__ import annotations

import os

import pytest
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings
from django.core.cache import cache

from assistant import shared_redis
from assistant.providers.breaker import breaker
from assistant.providers.registry import close_chain
from assistant.replies import registry
from project.logs import client_warnings

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def services_configured() -> bool:
    """This run talks to real Postgres and Redis."""
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql") and bool(settings.REDIS_URL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if services_configured():
        return
    reason = "needs Postgres and Redis: runs in make test's services pass (DATABASE_URL and REDIS_URL set)"
    for item in items:
        if item.get_closest_marker("services"):
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_sessionstart(session: pytest.Session) -> None:
    if REQUIRE_SERVICES and os.environ.get("DATABASE_URL") and not services_configured():
        raise pytest.UsageError("REQUIRE_SERVICES=1 but DATABASE_URL/REDIS_URL do not configure Postgres and Redis")


@pytest.fixture(autouse=True)
def _fast_defaults(settings) -> None:
    """Instant replies and no shared rate limit unless a test asks for them."""
    settings.LOCAL_TOKEN_DELAY_MS = 0
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 10_000
    settings.CHAT_RATE_LIMIT_BURST = 10_000
    settings.CHAT_IP_RATE_LIMIT_PER_MINUTE = 10_000
    settings.CHAT_DELTA_INTERVAL_MS = 50
    settings.WIDGET_ALLOWED_ORIGINS = []
    settings.WIDGET_IDENTITY_SECRET = None
    settings.WIDGET_IDENTITY_REQUIRED = False
    # Only the offline assistant, whatever keys the machine running the tests has.
    settings.AI_PROVIDERS = ["local"]
    settings.OPENAI_API_KEY = settings.ANTHROPIC_API_KEY = settings.GEMINI_API_KEY = None
    settings.OPENAI_BASE_URL = settings.ANTHROPIC_BASE_URL = settings.GEMINI_BASE_URL = None
    # The periodic analytics sweep is driven explicitly by the tests that need it.
    settings.ANALYTICS_RECOVERY_INTERVAL_S = 0
    settings.ALERTS_INTERVAL_S = 0  # the alert sweep too (tests/alerts drive it)
    # No background analysis of closed sessions (it would send a second request to a test's
    # fake vendor); tests/analytics/intelligence turns it on where it is the subject.
    settings.ANALYSIS_ON_CLOSE = "false"
    cache.clear()  # also the response cache and, on Redis, the shared breaker state
    breaker.reset()
    client_warnings.reset()  # one WARNING per client a minute: each test starts with none held back
    channel_layers.backends.clear()


@pytest.fixture
async def drain_replies():
    """Let reply tasks started by a test finish before its database is flushed.

    Then close the Redis layer's connections: a pending 30 s BZPOPMIN must not outlive the
    test's event loop.
    """
    yield
    await registry.drain()
    await shared_redis.close()
    await close_chain()
    close_pools = getattr(get_channel_layer(), "close_pools", None)
    if close_pools is not None:
        await close_pools()

"""The asyncio Redis client for state shared by all server processes (rate limits, breakers).

Only used when REDIS_URL is set. redis.asyncio clients belong to the event loop that created
them, so there is one per loop (a server has one; the test suite runs many).
"""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio
from django.conf import settings
from django.core.cache import cache

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = weakref.WeakKeyDictionary()


def enabled() -> bool:
    """Whether state is shared through Redis (REDIS_URL set) rather than kept per process."""
    return settings.REDIS_URL is not None


def client() -> redis.asyncio.Redis:
    """This event loop's client (created on first use)."""
    loop = asyncio.get_running_loop()
    existing = _clients.get(loop)
    if existing is None:
        assert settings.REDIS_URL is not None
        existing = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        _clients[loop] = existing
    return existing


def key(name: str) -> str:
    """`name` under the deployment's cache key prefix, so several installs can share one Redis."""
    return cache.make_key(name)


async def close() -> None:
    """Close this event loop's client (tests and shutdown)."""
    existing = _clients.pop(asyncio.get_running_loop(), None)
    if existing is not None:
        await existing.aclose()

"""Cached answers to a session's first question (a FAQ is asked the same way again and again).

The key is the normalised question, the knowledge base version and the provider chain, so an
edit to the knowledge base or to AI_PROVIDERS never serves a stale answer. Only first questions
are cached: later ones depend on the conversation. Replies of the local assistant are cached by
default (RESPONSE_CACHE_LOCAL_TTL_S); cloud replies only when RESPONSE_CACHE_TTL_S is set,
because operators may not want a model's answer reused for other visitors.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import asdict, dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class CachedReply:
    """A complete reply as it was first given."""

    text: str
    provider: str
    model: str
    sources: list[dict[str, Any]]


def enabled() -> bool:
    """Whether any reply can be cached with the current settings."""
    return settings.RESPONSE_CACHE_LOCAL_TTL_S > 0 or settings.RESPONSE_CACHE_TTL_S > 0


def cache_key(question: str, knowledge_version: str, chain: list[str]) -> str:
    """Case, spacing and trailing punctuation do not make a question different."""
    normalised = _SPACE.sub(" ", question.casefold()).strip().rstrip("?!. ")
    digest = hashlib.sha256(f"{normalised}\x00{knowledge_version}\x00{','.join(chain)}".encode()).hexdigest()
    return f"reply-cache:{digest}"


def ttl_for(provider: str) -> int:
    """How long a reply of `provider` may be reused (0: not at all)."""
    return settings.RESPONSE_CACHE_LOCAL_TTL_S if provider == "local" else settings.RESPONSE_CACHE_TTL_S


async def lookup(key: str) -> CachedReply | None:
    """The cached reply, if any; a cache outage is logged and treated as a miss."""
    try:
        value = await _get(key)
    except Exception:
        logger.exception("Response cache unavailable; answering without it")
        return None
    if not isinstance(value, dict):
        return None
    try:
        return CachedReply(**value)
    except TypeError:
        return None  # written by another version


async def store(key: str, reply: CachedReply) -> None:
    """Keep a complete reply for its provider's TTL."""
    ttl = ttl_for(reply.provider)
    if ttl <= 0:
        return
    try:
        await _set(key, asdict(reply), ttl)
    except Exception:
        logger.exception("Response cache unavailable; reply not cached")


def _get(key: str) -> Any:
    # The local-memory cache is in-process (no I/O); Redis is a network call: off the loop.
    if settings.REDIS_URL is None:
        return _immediate(cache.get(key))
    return sync_to_async(cache.get, thread_sensitive=False)(key)


def _set(key: str, value: dict[str, Any], ttl: int) -> Any:
    if settings.REDIS_URL is None:
        return _immediate(cache.set(key, value, timeout=ttl))
    return sync_to_async(cache.set, thread_sensitive=False)(key, value, timeout=ttl)


async def _immediate(value: Any) -> Any:
    return value

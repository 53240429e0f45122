"""Cached answers to a session's first question (a FAQ is asked the same way again and again).

The key is the normalised question, the knowledge base version and the provider chain, so an
edit to the knowledge base or to AI_PROVIDERS never serves a stale answer. Only first questions
are cached: later ones depend on the conversation. Replies of the local assistant are cached by
default (RESPONSE_CACHE_LOCAL_TTL_S); cloud replies only when RESPONSE_CACHE_TTL_S is set,
because operators may not want a model's answer reused for other visitors.

Only an answer of the chain's first provider (same name and model) is stored or served. A
fallback's answer is a stand-in, given because a better provider failed for this one request
(a local knowledge-base answer while every cloud provider was down, a secondary vendor's while
the primary was): reusing it would keep serving the stand-in to later visitors, for the whole
TTL, after the primary is back. Deciding by rank at lookup instead (serve a fallback entry only
while every provider before it is refused by its breaker) would need a breaker read per lookup
and would still serve stand-ins while a failing provider's breaker is closed; a fallback answer
is cheap to produce again (the local assistant) or rare (an outage), so it is simply not kept.
The check on lookup also ignores entries written before this rule, and answers of a model the
operator has since replaced.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache

from assistant.providers.base import AIProvider

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


def from_primary(reply: CachedReply, chain: Sequence[AIProvider]) -> bool:
    """Whether `reply` was given by the first provider of `chain` (not by a fallback)."""
    return bool(chain) and (reply.provider, reply.model) == (chain[0].name, chain[0].model)


async def lookup(key: str, chain: Sequence[AIProvider]) -> CachedReply | None:
    """The cached reply of the chain's first provider, if any; a cache outage is treated as a miss."""
    try:
        value = await _get(key)
    except Exception:
        logger.exception("Response cache unavailable; answering without it")
        return None
    if not isinstance(value, dict):
        return None
    try:
        reply = CachedReply(**value)
    except TypeError:
        return None  # written by another version
    return reply if from_primary(reply, chain) else None


async def store(key: str, reply: CachedReply, chain: Sequence[AIProvider]) -> None:
    """Keep a complete reply of the chain's first provider for its TTL (a fallback's: never)."""
    ttl = ttl_for(reply.provider)
    if ttl <= 0 or not from_primary(reply, chain):
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

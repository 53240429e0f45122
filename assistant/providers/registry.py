"""Which provider answers. The failover router (next issue) replaces this single choice."""

from __future__ import annotations

from django.conf import settings

from assistant.providers.base import AIProvider
from assistant.providers.local import LocalProvider


def get_provider() -> AIProvider:
    """The provider for the next reply, built from current settings."""
    return LocalProvider(token_delay_ms=settings.LOCAL_TOKEN_DELAY_MS, chunk_words=settings.LOCAL_CHUNK_WORDS)

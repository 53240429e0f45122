"""Requests per API key: a fixed one-minute window per key (API_KEY_RATE_LIMIT_PER_MINUTE).

The count lives in Django's cache, which is Redis when REDIS_URL is set: every server process
counts against the same number. If the cache cannot be reached the request is allowed and the
outage logged (the limit is a guard, not the data). Staff sessions are not limited here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from api.keys import Principal

logger = logging.getLogger(__name__)
WINDOW_S = 60


def window_take(identity: str, limit: int, *, window_s: int = WINDOW_S) -> float | None:
    """Count one request of `identity` in the current window; None when allowed, else seconds to wait."""
    now = time.time()
    key = f"api:rate:{identity}:{int(now // window_s)}"
    try:
        count = 1 if cache.add(key, 1, timeout=2 * window_s) else cache.incr(key)
    except ValueError:  # expired between add and incr: this request opens the window again
        cache.add(key, 1, timeout=2 * window_s)
        count = 1
    except Exception:
        logger.exception("API key rate limit unavailable (cache); allowing the request")
        return None
    if count > limit:
        return window_s - (now % window_s)
    return None


class ApiKeyRateThrottle(BaseThrottle):
    """At most API_KEY_RATE_LIMIT_PER_MINUTE requests a minute per key (0: no limit)."""

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        """Count the request against its key."""
        user = request.user
        limit = settings.API_KEY_RATE_LIMIT_PER_MINUTE
        if not isinstance(user, Principal) or limit <= 0:
            return True
        self.retry_after = window_take(user.pk, limit)
        return self.retry_after is None

    def wait(self) -> float | None:
        """Seconds until the key's window opens again."""
        return self.retry_after

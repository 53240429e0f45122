"""Rate limits: a token bucket per connection, a shared per-IP window, connections per IP.

The per-IP message window is a counter in the cache: with REDIS_URL set it lives in Redis, so
every server process counts against the same number; otherwise in the local-memory cache.
Connection counts are per process.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.conf import settings
from django.core.cache import cache

from assistant import shared_redis

logger = logging.getLogger(__name__)
WINDOW_S = 60


class TokenBucket:
    """`burst` messages at once, refilled at `per_minute` a minute."""

    def __init__(self, *, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> float | None:
        """Spend one token; None when allowed, else seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate

    def refund(self) -> None:
        """Give back a token spent on a message that turned out not to start a turn."""
        self.tokens = min(self.capacity, self.tokens + 1)


async def ip_window_take(ip: str, limit: int, *, kind: str = "messages", window_s: int = WINDOW_S) -> float | None:
    """Count one `kind` (messages, sessions) for `ip` in a shared fixed window; None or seconds to wait.

    On Redis this is one pipelined round trip from the event loop (INCR, then EXPIRE NX so
    the key outlives its window by one more), not a thread hop per cache call. If Redis
    cannot be reached the message is allowed and the outage logged: the limit is a guard,
    and the message itself is about to be stored in the database.
    """
    now = time.time()
    prefix = "chat:ip" if kind == "messages" else f"chat:ip:{kind}"
    key = f"{prefix}:{ip}:{int(now // window_s)}"
    if settings.REDIS_URL is None:
        count = _local_incr(key, window_s)
    else:
        full_key = shared_redis.key(key)
        try:
            async with shared_redis.client().pipeline(transaction=False) as pipe:
                pipe.incr(full_key)
                pipe.expire(full_key, 2 * window_s, nx=True)
                count, _ = await pipe.execute()
        except redis.RedisError:
            logger.exception("Per-IP %s limit unavailable (Redis); allowing it", kind)
            return None
    if count > limit:
        return window_s - (now % window_s)
    return None


def _local_incr(key: str, window_s: int) -> int:
    """The local-memory cache: in-process, so calling it from the event loop blocks nothing."""
    try:
        return cache.incr(key)
    except ValueError:
        return 1 if cache.add(key, 1, timeout=2 * window_s) else cache.incr(key)


class ConnectionCounter:
    """Open websockets per client IP in this process."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, ip: str, limit: int) -> bool:
        """Count a new connection; False (and nothing counted) when `ip` is at the limit."""
        with self._lock:
            current = self._counts.get(ip, 0)
            if current >= limit:
                return False
            self._counts[ip] = current + 1
            return True

    def total(self) -> int:
        """Open connections counted in this process (tests and benchmarks check it returns to 0)."""
        with self._lock:
            return sum(self._counts.values())

    def release(self, ip: str) -> None:
        """Forget one connection of `ip`."""
        with self._lock:
            remaining = self._counts.get(ip, 0) - 1
            if remaining > 0:
                self._counts[ip] = remaining
            else:
                self._counts.pop(ip, None)


connections = ConnectionCounter()

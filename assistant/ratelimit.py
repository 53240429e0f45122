"""Rate limits: a token bucket per connection, a shared per-IP window, connections per IP.

The per-IP message window lives in the Django cache, so with REDIS_URL set every server
process counts against the same number. Connection counts are per process.
"""

from __future__ import annotations

import threading
import time

from django.core.cache import cache


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


def ip_window_take(ip: str, per_minute: int) -> float | None:
    """Count one message for `ip` in the shared one-minute window; None or seconds to wait.

    Blocking (cache round trips): call through sync_to_async(thread_sensitive=False).
    """
    now = time.time()
    window = int(now // 60)
    key = f"chat:ip:{ip}:{window}"
    try:
        count = cache.incr(key)
    except ValueError:
        count = 1 if cache.add(key, 1, timeout=120) else cache.incr(key)
    if count > per_minute:
        return 60 - (now % 60)
    return None


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

    def release(self, ip: str) -> None:
        """Forget one connection of `ip`."""
        with self._lock:
            remaining = self._counts.get(ip, 0) - 1
            if remaining > 0:
                self._counts[ip] = remaining
            else:
                self._counts.pop(ip, None)

connections = ConnectionCounter()

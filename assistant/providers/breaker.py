"""Circuit breaker per provider: stop calling a vendor that keeps failing, probe it later.

closed → (THRESHOLD consecutive failed attempts) → open for COOLDOWN → half-open: exactly one
probe request is let through; its success closes the breaker, its failure opens it again.
With REDIS_URL the state lives in Redis (two small Lua scripts, atomic), so every server
process sees the same breaker; otherwise it is kept in this process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from assistant import shared_redis

logger = logging.getLogger(__name__)

# KEYS: failures, open_until, probe.  ARGV: now, probe_ttl_ms.  Returns 1 when a call may go.
_ALLOW = """
local open_until = tonumber(redis.call('GET', KEYS[2]))
if not open_until then return 1 end
if tonumber(ARGV[1]) < open_until then return 0 end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
# KEYS: failures, open_until, probe.  ARGV: ok (1/0), now, threshold, cooldown_s.
# Returns 1 when this failure opened (or re-opened) the breaker.
_RECORD = """
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return 0
end
local failures = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 86400)
local probing = redis.call('DEL', KEYS[3]) == 1
if probing or failures == tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], tostring(tonumber(ARGV[2]) + tonumber(ARGV[4])), 'EX', 86400)
  return 1
end
return 0
"""


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: float | None = None
    probing: bool = False


class CircuitBreaker:
    """Shared (Redis) or per-process breaker state for every provider."""

    def __init__(self) -> None:
        self._local: dict[str, _State] = {}

    async def allow(self, provider: str) -> bool:
        """True when `provider` may be called now (closed, or the one half-open probe)."""
        now = time.time()
        if shared_redis.enabled():
            try:
                client = shared_redis.client()
                probe_ms = int(max(settings.PROVIDER_FIRST_TOKEN_TIMEOUT_S, settings.PROVIDER_IDLE_TIMEOUT_S) * 2000)
                return bool(await client.eval(_ALLOW, 3, *self._keys(provider), now, probe_ms))
            except redis.RedisError:
                logger.exception("Circuit breaker state unavailable (Redis); calling %s", provider)
                return True
        state = self._local.setdefault(provider, _State())
        if state.open_until is None:
            return True
        if now < state.open_until or state.probing:
            return False
        state.probing = True
        return True

    async def record(self, provider: str, *, ok: bool) -> None:
        """Count an attempt's result; a success closes the breaker."""
        now = time.time()
        threshold, cooldown = settings.PROVIDER_BREAKER_THRESHOLD, settings.PROVIDER_BREAKER_COOLDOWN_S
        if shared_redis.enabled():
            try:
                client = shared_redis.client()
                opened = await client.eval(_RECORD, 3, *self._keys(provider), int(ok), now, threshold, cooldown)
            except redis.RedisError:
                logger.exception("Circuit breaker state unavailable (Redis); %s not counted", provider)
                return
        else:
            state = self._local.setdefault(provider, _State())
            if ok:
                self._local[provider] = _State()
                return
            state.failures += 1
            opened = state.probing or state.failures == threshold
            if opened:
                state.open_until, state.probing = now + cooldown, False
        if opened:
            logger.warning("Circuit breaker for %s opened: skipped for %.0f s, then one probe", provider, cooldown)

    def reset(self) -> None:
        """Forget the per-process state (tests)."""
        self._local.clear()

    @staticmethod
    def _keys(provider: str) -> tuple[str, str, str]:
        return tuple(shared_redis.key(f"breaker:{provider}:{part}") for part in ("failures", "open", "probe"))  # type: ignore[return-value]


breaker = CircuitBreaker()

"""Circuit breaker per provider: stop calling a vendor that keeps failing, probe it later.

closed → (THRESHOLD consecutive failed attempts, or at once for a bad key or model: 401, 403,
404) → open for COOLDOWN → half-open: exactly one probe request is let through; its success
closes the breaker, its failure opens it again.

The probe is a `Permit` with `probe=True`, and whoever holds one must settle it: `record()` the
call's result, or `release()` it when the call was never made or never finished (stopped by the
visitor, cancelled at shutdown, cut by the reply's deadline, an exception in between). A release
counts nothing; it only frees the slot so the next call can probe. Without it a lost probe kept
the per-process breaker open for good (nothing else clears its probe flag) and the shared one
for the probe key's TTL. The router settles its permits in a `finally`.

Side calls (titles) ask with `probe=False`: they run only while the breaker is closed, so they
never take the probe from a visitor's reply, and their result does not decide whether the
provider is back.

With REDIS_URL the state lives in Redis (small Lua scripts, atomic), so every server process
sees the same breaker; the probe key holds the prober's token (a release frees only its own
probe) and a TTL, the backstop for a process that died while probing. Otherwise the state is
kept in this process.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import redis
from django.conf import settings

from assistant import shared_redis

logger = logging.getLogger(__name__)

# KEYS: failures, open_until, probe.  ARGV: now, probe_ttl_ms, token, may_probe (1/0).
# Returns 1 when closed, 2 when this call is the half-open probe, 0 when refused.
_ALLOW = """
local open_until = tonumber(redis.call('GET', KEYS[2]))
if not open_until then return 1 end
if ARGV[4] ~= '1' or tonumber(ARGV[1]) < open_until then return 0 end
if redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', ARGV[2]) then return 2 end
return 0
"""
# KEYS: failures, open_until, probe.  ARGV: ok (1/0), now, threshold, cooldown_s, fatal (1/0).
# Returns 1 when this failure opened (or re-opened) the breaker, 0 otherwise (also when it only
# extended an open breaker: a burst of bad-key answers is one opening).
_RECORD = """
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return 0
end
local failures = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 86400)
local probing = redis.call('DEL', KEYS[3]) == 1
if ARGV[5] == '1' or probing or failures == tonumber(ARGV[3]) then
  local open_until = tonumber(redis.call('GET', KEYS[2]))
  local was_open = open_until and tonumber(ARGV[2]) < open_until and not probing
  redis.call('SET', KEYS[2], tostring(tonumber(ARGV[2]) + tonumber(ARGV[4])), 'EX', 86400)
  if was_open then return 0 end
  return 1
end
return 0
"""
# KEYS: probe.  ARGV: token.  Frees the probe slot only if it is still this caller's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Permit:
    """The breaker's yes for one call; a `probe` permit must be recorded or released."""

    provider: str
    probe: bool = False
    token: str = ""


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: float | None = None
    probe: str = ""  # the token of the probe in flight, "" when none


class CircuitBreaker:
    """Shared (Redis) or per-process breaker state for every provider."""

    def __init__(self) -> None:
        self._local: dict[str, _State] = {}

    async def allow(self, provider: str, *, probe: bool = True) -> Permit | None:
        """A permit when `provider` may be called now (closed, or the one half-open probe), else None.

        With `probe=False` the caller only calls a closed breaker and never takes the probe.
        """
        now = time.time()
        token = uuid.uuid4().hex
        if shared_redis.enabled():
            try:
                client = shared_redis.client()
                probe_ms = int(max(settings.PROVIDER_FIRST_TOKEN_TIMEOUT_S, settings.PROVIDER_IDLE_TIMEOUT_S) * 2000)
                verdict = await client.eval(_ALLOW, 3, *self._keys(provider), now, probe_ms, token, int(probe))
            except redis.RedisError:
                logger.exception("Circuit breaker state unavailable (Redis); calling %s", provider)
                return Permit(provider)
            if verdict == 2:
                return Permit(provider, probe=True, token=token)
            return Permit(provider) if verdict == 1 else None
        state = self._local.setdefault(provider, _State())
        if state.open_until is None:
            return Permit(provider)
        if not probe or now < state.open_until or state.probe:
            return None
        state.probe = token
        return Permit(provider, probe=True, token=token)

    async def record(self, provider: str, *, ok: bool, fatal: bool = False) -> bool:
        """Count an attempt's result; a success closes the breaker, a `fatal` failure opens it at once.

        Returns True when this failure opened (or re-opened) the breaker, so that the caller
        stops calling the provider and logs the opening once, not once per request.
        """
        now = time.time()
        threshold, cooldown = settings.PROVIDER_BREAKER_THRESHOLD, settings.PROVIDER_BREAKER_COOLDOWN_S
        if shared_redis.enabled():
            try:
                client = shared_redis.client()
                args = (int(ok), now, threshold, cooldown, int(fatal))
                opened = bool(await client.eval(_RECORD, 3, *self._keys(provider), *args))
            except redis.RedisError:
                logger.exception("Circuit breaker state unavailable (Redis); %s not counted", provider)
                return False
        else:
            state = self._local.setdefault(provider, _State())
            if ok:
                self._local[provider] = _State()
                return False
            state.failures += 1
            probing = bool(state.probe)
            opened = fatal or probing or state.failures == threshold
            if opened:
                was_open = state.open_until is not None and now < state.open_until and not probing
                state.open_until, state.probe = now + cooldown, ""
                opened = not was_open
        if opened and not fatal:
            logger.warning("Circuit breaker for %s opened: skipped for %.0f s, then one probe", provider, cooldown)
        return opened

    async def release(self, permit: Permit) -> None:
        """Give back a probe whose call was never made or never finished; counts nothing."""
        if not permit.probe:
            return
        if shared_redis.enabled():
            try:
                client = shared_redis.client()
                await client.eval(_RELEASE, 1, self._keys(permit.provider)[2], permit.token)
            except redis.RedisError:
                logger.exception("Circuit breaker state unavailable (Redis); the %s probe expires", permit.provider)
            return
        state = self._local.get(permit.provider)
        if state is not None and state.probe == permit.token:
            state.probe = ""

    def reset(self) -> None:
        """Forget the per-process state (tests)."""
        self._local.clear()

    @staticmethod
    def _keys(provider: str) -> tuple[str, str, str]:
        return tuple(shared_redis.key(f"breaker:{provider}:{part}") for part in ("failures", "open", "probe"))  # type: ignore[return-value]


breaker = CircuitBreaker()

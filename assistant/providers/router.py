"""The one retry loop: retries, timeouts, circuit breaker and failover across providers.

For each provider of the chain, in order (skipping one whose breaker is open):
- wait at most PROVIDER_FIRST_TOKEN_TIMEOUT_S for the first text and PROVIDER_IDLE_TIMEOUT_S
  between chunks, never past the reply's deadline;
- before any text: connection errors, timeouts, 429 and 5xx are retried up to
  PROVIDER_MAX_RETRIES times with exponential backoff and jitter, or after `Retry-After` when
  the vendor sends one no longer than PROVIDER_RETRY_AFTER_CAP_S (a refused connection is
  retried at once: waiting cannot revive a closed port); 400/401/403/404 fail over at once;
- a bad key or model (401, 403, 404) takes the provider out for the breaker's cooldown at once,
  with one ERROR line for the operator per opening (not per request): the title call and the
  next visitors do not send more requests with a key known to be bad. A failure that opens the
  breaker (a failed probe, the THRESHOLD-th failure) also ends the retries of that provider;
- after text began, any failure (cut connection, malformed or error event, idle timeout) is a
  mid-stream failure: the router yields `Broken` (the caller keeps the partial reply as
  interrupted) and the next provider answers from the start.
Every breaker permit is settled in a `finally`: recorded as a success or failure when the call
ended that way, released otherwise (stopped, cancelled, deadline passed, generator abandoned), so
a half-open probe is never lost. Every attempt is kept in `attempts` for the `ProviderCall` rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from assistant.providers.base import (
    AIProvider,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderInterrupted,
    ProviderRefused,
    ProviderTimeout,
    ReplyRequest,
    TextChunk,
    UsageReport,
    estimate_tokens,
)
from assistant.providers.breaker import CircuitBreaker, Permit, breaker
from assistant.providers.prompt import conversation, system_text

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Attempt:
    """One call to one provider, as it will be stored in `ProviderCall`."""

    provider: str
    model: str
    attempt: int
    segment: int  # which assistant message it fed: 0, then 1 after a mid-stream failover…
    fallback_from: str
    started_at: datetime
    started: float
    ttft_ms: int | None = None
    latency_ms: int | None = None
    usage: UsageReport | None = None
    outcome: str = "ok"  # ok, error, interrupted, stopped, skipped
    error: ProviderError | None = None
    chars: int = 0

    def end(self, outcome: str, error: ProviderError | None = None) -> None:
        """Close the record."""
        self.outcome, self.error = outcome, error
        self.latency_ms = int((time.monotonic() - self.started) * 1000)


@dataclass(frozen=True, slots=True)
class Broken:
    """The answering provider failed after its text began; another provider answers next."""

    provider: str
    model: str
    error: ProviderError
    usage: UsageReport


RouterEvent = TextChunk | UsageReport | Broken


class AllProvidersFailed(Exception):
    """No provider of the chain produced a complete reply before the deadline."""

    def __init__(self, last: ProviderError | None) -> None:
        super().__init__(str(last) if last else "no provider available")
        self.last = last


@dataclass(slots=True)
class Router:
    """Stream one reply through the provider chain."""

    providers: Sequence[AIProvider]
    breaker: CircuitBreaker = breaker
    attempts: list[Attempt] = field(default_factory=list)
    answered_by: tuple[str, str] = ("", "")
    segment: int = 0
    #: False for side calls (titles): they use a closed breaker only, never the half-open probe.
    probe: bool = True

    async def stream(self, request: ReplyRequest, *, deadline: float) -> AsyncIterator[RouterEvent]:
        """Text chunks and finally usage of the provider that answered; `Broken` between segments.

        Raises AllProvidersFailed when the chain is exhausted or the deadline passes.
        """
        last_error: ProviderError | None = None
        failed_before = ""
        for provider in self.providers:
            if deadline - time.monotonic() <= 0:  # before asking the breaker: a probe must be used
                raise AllProvidersFailed(last_error or ProviderTimeout("reply deadline passed", provider.name))
            permit = await self._admit(provider)
            if permit is None:
                skipped = self._start(provider, 1, failed_before)
                skipped.end("skipped")
                failed_before = failed_before or provider.name
                continue
            settled = False
            try:
                for number in range(1, settings.PROVIDER_MAX_RETRIES + 2):
                    if deadline - time.monotonic() <= 0:
                        raise AllProvidersFailed(last_error or ProviderTimeout("reply deadline passed", provider.name))
                    record = self._start(provider, number, failed_before)
                    text: list[str] = []
                    try:
                        async for event in self._attempt(provider, request, record, text, deadline):
                            yield event
                    except ProviderError as error:
                        last_error = error
                        opened = await self._record_breaker(provider, error)
                        settled = True
                        if record.ttft_ms is not None:  # text had begun: a mid-stream failure
                            broken = error if isinstance(error, ProviderInterrupted) else _interrupted(error)
                            record.usage = self._usage(request, "".join(text), record.usage)
                            record.end("interrupted", broken)
                            if deadline - time.monotonic() <= 0:
                                raise AllProvidersFailed(error) from None  # no time left for a replacement
                            logger.warning("%s broke mid-reply (%s); failing over", provider.name, error)
                            self.segment += 1
                            yield Broken(provider.name, provider.model, broken, record.usage)
                            break
                        record.end("error", error)
                        self._log_refusal(provider, error, opened=opened)
                        wait = None if opened else self._retry_wait(error, number, deadline)
                        if wait is None:
                            break
                        await asyncio.sleep(wait)
                        continue
                    except asyncio.CancelledError:
                        record.usage = self._usage(request, "".join(text), record.usage)
                        record.end("stopped")
                        raise
                    record.usage = self._usage(request, "".join(text), record.usage)
                    record.end("ok")
                    await self._record_breaker(provider, None)
                    settled = True
                    self.answered_by = (provider.name, provider.model)
                    yield record.usage
                    return
            finally:
                if permit.probe and not settled:
                    # Stopped, cancelled, deadline passed or abandoned before a result: give the
                    # probe back uncounted (shielded: a second cancel must not lose it either).
                    await asyncio.shield(self.breaker.release(permit))
            failed_before = provider.name
        raise AllProvidersFailed(last_error)

    async def _attempt(
        self, provider: AIProvider, request: ReplyRequest, record: Attempt, text: list[str], deadline: float
    ) -> AsyncIterator[TextChunk]:
        """One call: text chunks, with the first-token and idle timeouts enforced here."""
        events = provider.stream(request)
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            while True:
                waited = settings.PROVIDER_IDLE_TIMEOUT_S if text else settings.PROVIDER_FIRST_TOKEN_TIMEOUT_S
                budget = min(waited, deadline - time.monotonic())
                try:
                    async with asyncio.timeout(max(budget, 0)):
                        event = await anext(events)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    what = "no text" if not text else "no next chunk"
                    raise ProviderTimeout(f"{what} within {budget:.1f} s", provider.name) from None
                if isinstance(event, TextChunk):
                    if not event.text:
                        continue
                    if record.ttft_ms is None:
                        record.ttft_ms = int((time.monotonic() - record.started) * 1000)
                    text.append(event.text)
                    record.chars += len(event.text)
                    yield event
                elif isinstance(event, UsageReport):
                    record.usage = event

    def _start(self, provider: AIProvider, number: int, failed_before: str) -> Attempt:
        record = Attempt(
            provider=provider.name,
            model=provider.model,
            attempt=number,
            segment=self.segment,
            fallback_from=failed_before,
            started_at=timezone.now(),
            started=time.monotonic(),
        )
        self.attempts.append(record)
        return record

    async def _admit(self, provider: AIProvider) -> Permit | None:
        """The breaker's permit for `provider` (the local assistant has no breaker)."""
        if provider.name == "local":
            return Permit(provider.name)
        return await self.breaker.allow(provider.name, probe=self.probe)

    async def _record_breaker(self, provider: AIProvider, error: ProviderError | None) -> bool:
        """Count the attempt's result; True when this failure opened the provider's breaker."""
        if provider.name == "local":
            return False
        # A refusal is the model judging this content: the vendor is healthy, and a batch of
        # sensitive conversations must not open the breaker the visitors' replies depend on.
        healthy = error is None or isinstance(error, ProviderRefused)
        return await self.breaker.record(provider.name, ok=healthy, fatal=takes_provider_out(error))

    @staticmethod
    def _log_refusal(provider: AIProvider, error: ProviderError, *, opened: bool) -> None:
        """One ERROR line for the operator when the vendor refuses Parley's key, model or request."""
        if takes_provider_out(error):
            if opened:  # once per opening of the breaker, not once per request
                logger.error(
                    "AI provider %s (model %s) refused the request: %s. Check its key and model; "
                    "it is skipped for %.0f s, then tried again.",
                    provider.name,
                    provider.model,
                    error.detail,
                    settings.PROVIDER_BREAKER_COOLDOWN_S,
                )
        elif isinstance(error, ProviderBadRequest):
            logger.error(
                "AI provider %s (model %s) refused the request: %s. Check its key and model.",
                provider.name,
                provider.model,
                error.detail,
            )

    @staticmethod
    def _retry_wait(error: ProviderError, number: int, deadline: float) -> float | None:
        """Seconds to wait before retrying the same provider, or None to fail over now."""
        if not error.retryable or number > settings.PROVIDER_MAX_RETRIES:
            return None
        if error.retry_after is not None:
            if error.retry_after > settings.PROVIDER_RETRY_AFTER_CAP_S:
                return None  # the vendor asks for longer than we will make a visitor wait
            wait = error.retry_after
        else:
            wait = settings.PROVIDER_BACKOFF_BASE_S * 2 ** (number - 1) * (0.5 + random.random())
        if time.monotonic() + wait >= deadline:
            return None
        return wait

    @staticmethod
    def _usage(request: ReplyRequest, text: str, reported: UsageReport | None) -> UsageReport:
        """The vendor's usage, or an estimate (flagged) when it reported none."""
        if reported is not None and (reported.input_tokens is not None or reported.output_tokens is not None):
            return reported
        prompt = system_text(request) + "".join(message.text for message in conversation(request))
        return UsageReport(input_tokens=estimate_tokens(prompt), output_tokens=estimate_tokens(text), estimated=True)


def takes_provider_out(error: ProviderError | None) -> bool:
    """A bad key (401/403) or unknown model (404): every request fails the same until an operator acts."""
    return isinstance(error, ProviderAuthError) or (isinstance(error, ProviderBadRequest) and error.status_code == 404)


def _interrupted(error: ProviderError) -> ProviderInterrupted:
    return ProviderInterrupted(error.detail, error.provider, status_code=error.status_code)

"""One conversation's analysis by the model: a structured-output call through the provider chain.

The cloud providers of AI_PROVIDERS are asked in order (`Router`, `probe=False` as for titles:
a visitor's reply always comes first, and takes the half-open probe). An answer that is not
valid JSON, breaks the schema, or is a refusal gets one more call, with the problem named;
after that the caller falls back to the offline analysis. Every attempt of both calls is kept
for the `ProviderCall` rows.

Retry-After: the chat's router fails over when a vendor asks for a longer wait than
PROVIDER_RETRY_AFTER_CAP_S, because a visitor is waiting. Nobody waits for a batch, and a
batch that fails over on every 429 spends its whole quota on the second vendor, so the
analysis honours any Retry-After that fits ANALYSIS_TIMEOUT_S (`BatchRouter`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from analytics.intelligence import prompt
from analytics.intelligence.schema import Answer, InvalidAnswer, parse, vendor_schema
from assistant.providers.base import AIProvider, ProviderError, ProviderRefused, ReplyRequest, TextChunk
from assistant.providers.registry import provider_chain
from assistant.providers.router import AllProvidersFailed, Attempt, Broken, Router

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class BatchRouter(Router):
    """The router, honouring a vendor's Retry-After up to the call's own deadline."""

    @staticmethod
    def _retry_wait(error: ProviderError, number: int, deadline: float) -> float | None:
        if error.retryable and error.retry_after is not None and number <= settings.PROVIDER_MAX_RETRIES:
            return error.retry_after if time.monotonic() + error.retry_after < deadline else None
        return Router._retry_wait(error, number, deadline)


@dataclass(slots=True)
class Outcome:
    """The model's answer (None when unusable), who gave it, and every attempt made."""

    answer: Answer | None = None
    provider: str = ""
    model: str = ""
    error: str = ""
    attempts: list[Attempt] = field(default_factory=list)


def cloud_providers() -> list[AIProvider]:
    """The chain's providers that are a model (the local assistant cannot analyse)."""
    return [provider for provider in provider_chain() if provider.name != "local"]


async def analyse(transcript: str, *, topics: list[str]) -> Outcome:
    """Ask the chain for the analysis of `transcript`; one retry on an invalid answer or refusal."""
    providers = cloud_providers()
    outcome = Outcome()
    if not providers:
        outcome.error = "no cloud provider configured"
        return outcome
    deadline = time.monotonic() + settings.ANALYSIS_TIMEOUT_S
    system = prompt.system_prompt(topics)
    for call in (1, 2):
        request = ReplyRequest(
            query=transcript,
            system_prompt=system if call == 1 else system + prompt.RETRY_NOTE.format(error=outcome.error),
            history_tokens=0,
            with_knowledge=False,
            response_schema=vendor_schema(),
            response_name="conversation_analysis",
        )
        router = BatchRouter(providers, probe=False)
        parts: list[str] = []
        try:
            async for event in router.stream(request, deadline=deadline):
                if isinstance(event, TextChunk):
                    parts.append(event.text)
                elif isinstance(event, Broken):
                    parts = []  # the next provider answers from the start
        except AllProvidersFailed as exc:
            outcome.attempts += router.attempts
            outcome.error = str(exc)[:300]
            if isinstance(exc.last, ProviderRefused) and call == 1:
                continue  # a refusal is an invalid answer: asked once more
            return outcome
        outcome.attempts += router.attempts
        try:
            outcome.answer = parse("".join(parts))
        except InvalidAnswer as exc:
            outcome.error = str(exc)
            logger.info("Invalid analysis answer from %s (call %d): %s", router.answered_by[0], call, exc)
            continue
        outcome.provider, outcome.model = router.answered_by
        outcome.error = ""
        return outcome
    return outcome

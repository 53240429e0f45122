"""Better session titles from a short provider call, off the reply's path.

`turn_begin` already titles a session from its first message (deterministic, instant). When a
cloud provider is configured, this asks it for a short summary instead, and replaces the
automatic title only if nobody changed it meanwhile. Failures keep the automatic title; the
attempt is recorded as a `ProviderCall` with feature `title`.

The call waits for the session's reply to end, then asks the first cloud provider with
`probe=False`. The visitor's reply comes first in every sense: it is never slowed by a second
request to the same vendor, it is the one that probes a half-open breaker (a title call would
otherwise win that race and push the reply to a fallback), and when the reply found the key bad
(401/403/404 open the breaker at once) the title call is skipped instead of sending the same bad
key again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels.db import database_sync_to_async
from django.conf import settings

from assistant import services
from assistant.models import ProviderCall
from assistant.providers.base import ReplyRequest, TextChunk
from assistant.providers.registry import provider_chain
from assistant.providers.router import AllProvidersFailed, Router
from assistant.replies.runtime import registry
from project import runtime

logger = logging.getLogger(__name__)

TITLE_PROMPT = (
    "Write a title of at most six words for a customer-support chat that starts with the visitor's "
    "message below. Use the visitor's language. Reply with the title only: no quotes, no final period."
)
TITLE_TIMEOUT_S = 10.0


def schedule(*, session_pk: int, message_pk: int, first_message: str, current_title: str) -> None:
    """Start the title call in the background when a cloud provider is configured."""
    if not settings.TITLE_FROM_PROVIDER or not any(p.name != "local" for p in provider_chain()):
        return
    runtime.current().spawn(
        _improve(session_pk=session_pk, message_pk=message_pk, first_message=first_message, current=current_title),
        name=f"title-{session_pk}",
        kind=runtime.TITLES,
    )


async def drain() -> None:
    """Wait for title calls in flight (tests and shutdown)."""
    await runtime.current().wait(runtime.TITLES)


async def _improve(*, session_pk: int, message_pk: int, first_message: str, current: str) -> None:
    await _reply_ended(session_pk)
    cloud = [provider for provider in provider_chain() if provider.name != "local"]
    router = Router(cloud[:1], probe=False)  # the first cloud provider; no failover for a cosmetic call
    request = ReplyRequest(query=first_message, system_prompt=TITLE_PROMPT, history_tokens=0, with_knowledge=False)
    parts: list[str] = []
    try:
        async for event in router.stream(request, deadline=time.monotonic() + TITLE_TIMEOUT_S):
            if isinstance(event, TextChunk):
                parts.append(event.text)
    except AllProvidersFailed as exc:
        logger.info("No provider title for session %s (%s); keeping %r", session_pk, exc, current)
        parts = []
    except Exception:
        logger.exception("Title call for session %s failed", session_pk)
        parts = []
    title = clean_title("".join(parts))
    calls = [
        services.call_record(attempt, message_id=message_pk, feature=ProviderCall.Feature.TITLE)
        for attempt in router.attempts
    ]
    try:
        await database_sync_to_async(_store)(session_pk, current, title, calls)
    except Exception:
        logger.exception("Could not store the title of session %s", session_pk)


async def _reply_ended(session_pk: int) -> None:
    """Wait (without cancelling it) for the reply this process is generating for the session."""
    job = registry.get(session_pk)
    if job is not None and job.task is not None:
        await asyncio.wait({job.task})


def _store(session_pk: int, current: str, title: str, calls: list[services.ProviderCallRecord]) -> None:
    services.provider_calls_record(session_pk=session_pk, calls=calls)
    if title and title != current:
        services.session_retitle(session_pk=session_pk, expected=current, title=title)


def clean_title(text: str) -> str:
    """One line, no wrapping quotes or trailing period, at most TITLE_CHARS."""
    line = next((line for line in text.strip().splitlines() if line.strip()), "")
    line = line.strip().strip("\"'“”«»*#").strip().rstrip(".")
    if line.lower().startswith("title:"):
        line = line[6:].strip()
    return services.make_title(line) if line else ""

"""Sessions to analyse, and the fake vendor wired into settings."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from channels.db import database_sync_to_async

from analytics.models import ConversationAnalysis
from assistant.models import ChatMessage, ChatSession, ProviderCall

GOOD = {
    "sentiment": -0.6,
    "sentiment_label": "negative",
    "satisfaction": 2,
    "resolved": False,
    "topics": ["Billing", "double charge"],
    "language": "en",
    "summary": "The visitor was charged twice and is waiting for a refund.",
    "needs_follow_up": True,
}
COMPLAINT = [
    ("user", "I was charged twice for my subscription, this is terrible and I am really angry."),
    ("assistant", "Sorry about that. I have asked billing to refund the second charge."),
    ("user", "ok thanks, bye"),
]


def json_tokens(data: dict[str, Any] | str, pieces: int = 5) -> list[str]:
    """The document split into stream chunks, as a model streams it."""
    text = data if isinstance(data, str) else json.dumps(data)
    size = -(-len(text) // pieces)
    return [text[i : i + size] for i in range(0, len(text), size)]


def make_session(
    lines: list[tuple[str, str]] = COMPLAINT,
    *,
    source: str = "widget",
    closed: bool = True,
    created_at: datetime | None = None,
    locale: str = "",
) -> int:
    """A session with `lines` as its messages (closed unless told)."""
    session = ChatSession.objects.create(
        token_hash="x" * 64,
        source=source,
        locale=locale,
        status=ChatSession.Status.CLOSED if closed else ChatSession.Status.ACTIVE,
        last_seq=len(lines),
    )
    if created_at is not None:
        ChatSession.objects.filter(pk=session.pk).update(created_at=created_at)
    for seq, (role, text) in enumerate(lines, start=1):
        ChatMessage.objects.create(session=session, seq=seq, role=role, text=text)
    return session.pk


asession = database_sync_to_async(make_session)


@database_sync_to_async
def analysis_of(session_pk: int) -> ConversationAnalysis | None:
    return ConversationAnalysis.objects.filter(session_id=session_pk).first()


@database_sync_to_async
def calls_of(session_pk: int | None = None) -> list[tuple[str, str, str, str, int | None]]:
    """(feature, provider, outcome, error_kind, message_id) of the analysis attempts, in order."""
    rows = ProviderCall.objects.filter(feature=ProviderCall.Feature.ANALYSIS).order_by("id")
    if session_pk is not None:
        rows = rows.filter(session_id=session_pk)
    return list(rows.values_list("feature", "provider", "outcome", "error_kind", "message_id"))


@pytest.fixture
def use_vendor(settings: Any) -> Callable[[Any], None]:
    """Point AI_PROVIDERS at one started FakeVendor (and the local assistant after it)."""

    def use(vendor: Any) -> None:
        name = vendor.vendor
        settings.AI_PROVIDERS = [name, "local"]
        setattr(settings, f"{name.upper()}_API_KEY", "k")
        setattr(settings, f"{name.upper()}_BASE_URL", f"{vendor.base_url}/v1" if name == "openai" else vendor.base_url)

    return use

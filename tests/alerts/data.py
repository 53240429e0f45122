"""Hand-built chat data for the alert tests: conversations, provider calls, waiting visitors.

Rows are written the way tests/analytics/conftest.py writes its fixture (times travelled to,
analytics rebuilt with `analytics_recover`), so a rule reads them through the dashboard's own
selectors. Each test states its numbers by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from django.utils import timezone

from alerts import services
from alerts.models import AlertRule
from analytics import services as analytics_services
from assistant.models import ChatMessage, ChatSession, Feedback, Handoff, ProviderCall

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def at(when: datetime) -> Any:
    return time_machine.travel(when, tick=False)


def conversation(
    when: datetime, *, reply_ms: int = 1000, provider: str = "openai", model: str = "gpt-4.1-mini",
    rating: str | None = None, user_type: str = "anonymous", input_tokens: int = 100, output_tokens: int = 50,
) -> ChatSession:  # fmt: skip
    """A session started at `when`: a visitor message, a reply of `reply_ms` from one ok call, maybe a thumb."""
    with at(when):
        session = ChatSession.objects.create(token_hash="x" * 64, user_type=user_type, last_seen_at=when)
        ChatMessage.objects.create(session=session, seq=1, role="user", text="hello")
    reply_at = when + timedelta(seconds=1)
    with at(reply_at):
        reply = ChatMessage.objects.create(
            session=session, seq=2, role="assistant", text="Hi.", provider=provider, model=model, ttft_ms=100,
            duration_ms=reply_ms,
        )  # fmt: skip
    ChatMessage.objects.filter(pk=reply.pk).update(finished_at=reply_at + timedelta(milliseconds=reply_ms))
    ChatSession.objects.filter(pk=session.pk).update(last_seq=2, last_seen_at=reply_at)
    ProviderCall.objects.create(
        session=session, message=reply, provider=provider, model=model, attempt=1, started_at=reply_at,
        latency_ms=reply_ms, outcome="ok", input_tokens=input_tokens, output_tokens=output_tokens,
    )  # fmt: skip
    if rating is not None:
        with at(reply_at + timedelta(seconds=30)):
            Feedback.objects.create(message=reply, session=session, rating=rating)
    return session


def calls(when: datetime, *, ok: int = 0, failed: int = 0, provider: str = "openai") -> None:
    """`ok` answered and `failed` failed provider calls (no session: titles, say) started at `when`."""
    outcomes = ["ok"] * ok + ["error"] * failed
    ProviderCall.objects.bulk_create(
        ProviderCall(provider=provider, model="gpt-4.1-mini", attempt=1, started_at=when, latency_ms=500,
                     outcome=outcome, feature="title", error_kind="server" if outcome == "error" else "")
        for outcome in outcomes
    )  # fmt: skip


def rebuild(now: datetime) -> None:
    """The analytics rows of every session, as the sweep would write them at `now`."""
    with at(now):
        analytics_services.analytics_recover(grace=timedelta(0), idle=timedelta(minutes=30), all_sessions=True)


def waiting_visitor(requested_at: datetime) -> ChatSession:
    """A visitor who asked for a person at `requested_at` and is still waiting."""
    with at(requested_at - MINUTE):
        session = ChatSession.objects.create(token_hash="x" * 64, last_seen_at=requested_at)
        ChatMessage.objects.create(session=session, seq=1, role="user", text="a person please")
    ChatSession.objects.filter(pk=session.pk).update(handoff_state="waiting", last_seq=1)
    Handoff.objects.create(session=session, requested_at=requested_at, reason="asked")
    return session


def claim(session: ChatSession, when: datetime) -> None:
    """A person took the waiting visitor."""
    ChatSession.objects.filter(pk=session.pk).update(handoff_state="assigned")
    Handoff.objects.filter(session=session, outcome="open").update(assigned_at=when)


def rule(**fields: Any) -> AlertRule:
    """An active rule, checked as the admin checks it."""
    values: dict[str, Any] = {
        "name": "Rule",
        "active": True,
        "kind": "metric",
        "metric": "",
        "window_minutes": 60,
        "comparison": ">",
        "threshold": 0.0,
        "cooldown_minutes": 0,
    }
    values.update(fields)
    made = AlertRule(**values)
    made.full_clean()
    made.save()
    return made


def evaluate(now: datetime, *, deliver: bool = True) -> services.Pass:
    """One pass at `now` (the clock travelled there, as the sweep would run it)."""
    with at(now):
        return services.alerts_evaluate(now=timezone.now(), deliver=deliver)

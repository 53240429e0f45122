"""A hand-computed analytics fixture: one week in Europe/Paris, and the week before it.

Every number the tests expect is worked out by hand in `EXPECTED` from the rows below, not by
calling the code under test. Times are UTC; the period is 2026-03-02 to 2026-03-08, Paris time.

Sessions (created at, UTC → Paris):
  S0  2026-02-25 09:00 → Wed 10:00, previous week. "Which widget colour?" → cached local reply
      (500 ms, TTFT 100). Idle → assumed resolved.
  S1  2026-03-01 23:30 → Mon 03-02 00:30 (in the period only in Paris time). "I need a refund
      for my invoice" → openai gpt-4.1-mini, 1000 ms, TTFT 200, used "Billing › Refunds";
      thumbs up; rating 5, resolved → confirmed; ended.
  S2  2026-03-04 10:00 → Wed 11:00, client. "hello" → openai 2000 ms, TTFT 300; "talk to a
      human please" → anthropic error, then openai (fallback) 3000 ms, TTFT 100; thumbs down on
      it; rating 2 → escalated, unresolved.
  S3  2026-03-06 15:00 → Fri 16:00. "how do I install with docker" → openai llama3.1:8b error
      (50 input tokens, no price), then gemini error → failed reply: unanswered, unresolved.
  S4  2026-03-08 23:30 → Mon 03-09 00:30: after the period in Paris time.
"Now" is 2026-03-10 12:00 UTC: every session is idle past the 30-minute window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine

from analytics import services
from analytics.selectors import Period
from assistant.models import ChatMessage, ChatSession, Feedback, ProviderCall, SessionRating

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PERIOD = Period(start=date(2026, 3, 2), end=date(2026, 3, 8))

# Hand-computed from the docstring's rows.
EXPECTED: dict[str, Any] = {
    "sessions": 3,
    "active_sessions": 0,
    "closed_sessions": 3,
    "messages": 8,
    "user_messages": 4,
    "assistant_messages": 4,
    "messages_per_session": 2.67,  # 8 / 3
    "avg_response_time_ms": 2000.0,  # (1000 + 2000 + 3000) / 3
    "p50_response_time_ms": 2000,
    "p95_response_time_ms": 3000,
    "p99_response_time_ms": 3000,
    "avg_ttft_ms": 200.0,  # (200 + 300 + 100) / 3
    "p50_ttft_ms": 200,
    "p95_ttft_ms": 300,
    "feedback_rate": 50.0,  # 2 rated of 4 replies
    "thumbs_up": 1,
    "thumbs_down": 1,
    "satisfaction_rate": 50.0,  # 1 up of 2 rated
    "ratings": 2,
    "avg_rating": 3.5,  # (5 + 2) / 2
    "csat": 50.0,  # one of two ratings is ≥ 4
    "resolution_rate": 33.33,  # S1 confirmed; S2, S3 unresolved
    "confirmed_resolution_rate": 33.33,
    "assumed_resolution_rate": 0.0,
    "escalation_rate": 33.33,  # S2
    "engagement_rate": 33.33,  # S2 is the only one with 2 visitor messages
    "avg_engagement_score": 33.33,  # S1 10+15+15, S2 20+15+15, S3 10 → 100 / 3
    "input_tokens": 4050,  # 1000 + 2000 + 1000 + 50
    "output_tokens": 1600,  # 500 + 100 + 1000
    "tokens": 5650,
    # gpt-4.1-mini at 0.40 / 1.60 / 0.10 per million:
    # S1 (800x0.40 + 200x0.10 + 500x1.60) = 1140; S2 (2000x0.40 + 100x1.60) = 960;
    # S2 fallback (1000x0.40 + 1000x1.60) = 2000 → 4100 / 1e6.
    "cost_usd": 0.0041,
    "cost_per_session": 0.001367,  # 0.0041 / 3
    "price_unknown_calls": 1,  # llama3.1:8b used 50 tokens and has no price
    "cache_hit_rate": 0.0,
    "provider_success_rate": 50.0,  # 3 ok of 6 attempted
    "failover_rate": 33.33,  # 2 calls (anthropic in S2, openai in S3) handed over, of 6
    "failovers": 2,
    "handoff_rate": 0.0,  # nobody asked for a person through the widget (S2 only typed it)
    "human_sessions": 0,
    "containment_rate": 33.33,  # S1 resolved with no person, of 3 finished
    "avg_human_first_response_ms": None,
    "fcr_rate": None,  # no identified visitor (no external_user_id)
}
EXPECTED_PREVIOUS = {"sessions": 1, "messages": 2, "avg_response_time_ms": 500.0, "resolution_rate": 100.0}


@dataclass
class Week:
    """The sessions of the fixture, by name."""

    sessions: dict[str, ChatSession]
    period: Period = PERIOD


def _at(when: datetime) -> Any:
    return time_machine.travel(when, tick=False)


def _session(when: datetime, *, user_type: str = "anonymous") -> ChatSession:
    with _at(when):
        return ChatSession.objects.create(token_hash="x" * 64, user_type=user_type, last_seen_at=when)


def _message(session: ChatSession, seq: int, role: str, when: datetime, **fields: Any) -> ChatMessage:
    with _at(when):
        message = ChatMessage.objects.create(session=session, seq=seq, role=role, **fields)
    if role == ChatMessage.Role.ASSISTANT:
        ChatMessage.objects.filter(pk=message.pk).update(finished_at=when + timedelta(seconds=3))
    ChatSession.objects.filter(pk=session.pk).update(last_seq=seq, last_seen_at=when)
    return message


def _call(session: ChatSession, message: ChatMessage, when: datetime, provider: str, model: str, **fields: Any) -> None:
    ProviderCall.objects.create(
        session=session,
        message=message,
        provider=provider,
        model=model,
        attempt=1,
        started_at=when,
        latency_ms=fields.pop("latency_ms", 1000),
        **fields,
    )


def build_week() -> Week:
    """Create the docstring's rows, then the analytics rows and rollups, as of NOW."""
    t0 = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
    s0 = _session(t0)
    _message(s0, 1, "user", t0, text="Which widget colour?")
    _message(s0, 2, "assistant", t0 + timedelta(seconds=1), text="Blue.", provider="local", model="local",
             ttft_ms=100, duration_ms=500, cached=True)  # fmt: skip

    t1 = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    s1 = _session(t1)
    _message(s1, 1, "user", t1, text="I need a refund for my invoice")
    refunds = [{"id": "billing-refunds", "title": "Billing › Refunds", "score": 3.2}]
    r1 = _message(s1, 2, "assistant", t1 + timedelta(seconds=5), text="Here is how.", provider="openai",
                  model="gpt-4.1-mini", ttft_ms=200, duration_ms=1000, knowledge_sections=refunds)  # fmt: skip
    _call(s1, r1, t1 + timedelta(seconds=5), "openai", "gpt-4.1-mini", outcome="ok", ttft_ms=200,
          input_tokens=1000, output_tokens=500, cached_tokens=200)  # fmt: skip
    with _at(t1 + timedelta(minutes=1)):
        Feedback.objects.create(message=r1, session=s1, rating="up")
        SessionRating.objects.create(session=s1, score=5, resolved=True)
    ended = t1 + timedelta(minutes=2)
    ChatSession.objects.filter(pk=s1.pk).update(status="closed", closed_at=ended, last_seen_at=ended)

    t2 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    s2 = _session(t2, user_type="client")
    _message(s2, 1, "user", t2, text="hello")
    r21 = _message(s2, 2, "assistant", t2 + timedelta(seconds=2), text="Hi!", provider="openai",
                   model="gpt-4.1-mini", ttft_ms=300, duration_ms=2000)  # fmt: skip
    _call(s2, r21, t2 + timedelta(seconds=2), "openai", "gpt-4.1-mini", outcome="ok", input_tokens=2000,
          output_tokens=100, cached_tokens=0)  # fmt: skip
    _message(s2, 3, "user", t2 + timedelta(minutes=1), text="talk to a human please")
    r22 = _message(s2, 4, "assistant", t2 + timedelta(minutes=1, seconds=3), text="Sure.", provider="openai",
                   model="gpt-4.1-mini", ttft_ms=100, duration_ms=3000)  # fmt: skip
    _call(s2, r22, t2 + timedelta(minutes=1), "anthropic", "claude-mystery", outcome="error", error_kind="server")
    _call(s2, r22, t2 + timedelta(minutes=1, seconds=1), "openai", "gpt-4.1-mini", outcome="ok",
          input_tokens=1000, output_tokens=1000, cached_tokens=0, fallback_from="anthropic")  # fmt: skip
    with _at(t2 + timedelta(minutes=2)):
        Feedback.objects.create(message=r22, session=s2, rating="down", comment="not helpful")
        SessionRating.objects.create(session=s2, score=2, resolved=None)

    t3 = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
    s3 = _session(t3)
    _message(s3, 1, "user", t3, text="how do I install with docker")
    r3 = _message(s3, 2, "assistant", t3 + timedelta(seconds=4), text="Sorry.", status="failed",
                  provider="gemini", model="gemini-2.5-flash", error_code="provider_unavailable")  # fmt: skip
    _call(s3, r3, t3, "openai", "llama3.1:8b", outcome="error", input_tokens=50, output_tokens=0)
    _call(s3, r3, t3 + timedelta(seconds=2), "gemini", "gemini-2.5-flash", outcome="error", fallback_from="openai")

    t4 = datetime(2026, 3, 8, 23, 30, tzinfo=UTC)
    s4 = _session(t4)
    _message(s4, 1, "user", t4, text="are you there?")
    r4 = _message(s4, 2, "assistant", t4 + timedelta(seconds=1), text="Yes.", provider="openai",
                  model="gpt-4.1-mini", ttft_ms=50, duration_ms=400)  # fmt: skip
    _call(s4, r4, t4, "openai", "gpt-4.1-mini", outcome="ok", input_tokens=10, output_tokens=10)

    with _at(NOW):
        services.analytics_recover(grace=timedelta(0), idle=timedelta(minutes=30), all_sessions=True)
        services.rollups_rebuild()
    return Week(sessions={"S0": s0, "S1": s1, "S2": s2, "S3": s3, "S4": s4})


def move_to_source(session: ChatSession, source: str, **fields: Any) -> None:
    """Say `session` came from `source` (an API conversation, an import), then rebuild as of NOW.

    A session's source is set when it begins; the fixture's sessions began in the widget.
    """
    ChatSession.objects.filter(pk=session.pk).update(source=source, **fields)
    with _at(NOW):
        services.rollups_rebuild()


@pytest.fixture
def week(db, settings) -> Week:
    """The fixture, in Europe/Paris."""
    settings.TIME_ZONE = "Europe/Paris"
    settings.RESOLUTION_IDLE_MINUTES = 30
    return build_week()


@pytest.fixture
def human_week(db, settings) -> Any:
    """The human-support fixture (tests/analytics/human_fixture.py), in UTC."""
    from tests.analytics.human_fixture import build_human_week

    settings.TIME_ZONE = "UTC"
    settings.RESOLUTION_IDLE_MINUTES = 30
    settings.FCR_WINDOW_DAYS = 7
    return build_human_week()

"""A hand-computed fixture of human support: one week in UTC, two agents, five sessions.

Every number in `EXPECTED_HUMAN` and `EXPECTED_AGENTS` is worked out by hand from the rows
below, not by calling the code under test. The period is 2026-03-02 to 2026-03-08 (UTC); "now"
is 2026-03-10 12:00, so every session is finished (ended, or idle past 30 minutes).

  H1  03-02 10:00, client "u1". 10:00:00 visitor; 10:00:05 assistant (complete, 1000 ms);
      10:01:00 visitor asks for a person (request A, 10:01:00); Alice claims at 10:02:00;
      10:03:00 Alice writes (first response: 120 s after the request, 120 s after the visitor);
      10:05:00 visitor; 10:05:30 Alice (30 s) → agent response mean 75 s; Alice resolves at
      10:21:00 (20 min = 1,200 s after the request). Rating 5 (no "resolved" answer). Ended.
  H2  03-03 09:00, client "u2". 09:00:00 visitor; 09:00:02 assistant (complete); request B at
      09:01:00, Bob claims 09:06:00, writes 09:11:00 (first response 600 s; agent response
      660 s after the visitor's 09:00:00 message), hands back at 09:20:00. Rating 2.
  H3  03-04 12:00, anonymous. Visitor, assistant (complete); request C at 12:01:00 while
      nobody is available (outcome unavailable). No person involved.
  H4  03-05 08:00, client "u2" again (2 days after H2: H2's visitor came back). Visitor,
      assistant (complete), rating 5 resolved → confirmed. No handoff: contained.
  H5  03-06 15:00, anonymous. 15:00:00 visitor; Alice takes over unasked at 15:00:30 (request
      and claim one timestamp: a takeover, not a request), writes at 15:01:00 (agent response
      60 s), resolves at 15:10:00.
  W1, W2  03-10 11:50 and 11:52, waiting for a person since 11:55 and 11:58 (after the period):
      at "now" 2 visitors wait, the longest for 5 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import time_machine
from django.contrib.auth import get_user_model

from analytics import services
from analytics.selectors import Period
from assistant.models import ChatMessage, ChatSession, Handoff, SessionRating

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PERIOD = Period(start=date(2026, 3, 2), end=date(2026, 3, 8))

EXPECTED_HUMAN: dict[str, Any] = {
    "sessions": 5,
    "handoff_rate": 60.0,  # H1, H2, H3 asked (H5 was a takeover) of 5
    "human_sessions": 3,  # H1, H2, H5
    "agent_messages": 4,  # H1 2, H2 1, H5 1
    "containment_rate": 20.0,  # H4 of 5 finished
    "avg_human_first_response_ms": 360_000.0,  # (120 s + 600 s) / 2; H3 unanswered, H5 a takeover
    "p50_human_first_response_ms": 120_000,
    "p90_human_first_response_ms": 600_000,
    "avg_agent_response_ms": 265_000.0,  # (75 s + 660 s + 60 s) / 3 conversations
    "avg_human_resolution_ms": 1_200_000.0,  # H1 only (H2 handed back, H5 a takeover)
    "fcr_rate": 66.67,  # identified: H1 (resolved by Alice), H4 (confirmed); H2 came back (H4) → 2 / 3
    "escalation_rate": 80.0,  # H1, H2, H3, H5
    "resolution_rate": 20.0,  # H4 confirmed; the others escalated
    "csat": 66.67,  # ratings 5, 2, 5
}
#: Conversations a person held last; requests answered and resolved; CSAT of their conversations.
EXPECTED_AGENTS = [
    {"agent": "Alice", "conversations": 2, "first_responses": 1, "avg_human_first_response_ms": 120_000.0,
     "resolved": 1, "avg_human_resolution_ms": 1_200_000.0, "ratings": 1, "csat": 100.0},
    {"agent": "Bob", "conversations": 1, "first_responses": 1, "avg_human_first_response_ms": 600_000.0,
     "resolved": 0, "avg_human_resolution_ms": None, "ratings": 1, "csat": 0.0},
]  # fmt: skip
EXPECTED_LIVE = {"waiting_now": 2, "longest_wait_ms": 300_000}


@dataclass
class HumanWeek:
    """The fixture's sessions and agents, by name."""

    sessions: dict[str, ChatSession]
    agents: dict[str, Any]


def _session(when: datetime, *, user_type: str = "anonymous", external: str = "") -> ChatSession:
    with time_machine.travel(when, tick=False):
        return ChatSession.objects.create(
            token_hash="x" * 64, user_type=user_type, external_user_id=external, last_seen_at=when
        )


def _message(session: ChatSession, seq: int, role: str, when: datetime, *, agent: Any = None, **fields: Any) -> None:
    with time_machine.travel(when, tick=False):
        ChatMessage.objects.create(
            session=session, seq=seq, role=role, text=fields.pop("text", f"{role} {seq}"), author=agent,
            author_name=agent.first_name if agent is not None else "", **fields,
        )  # fmt: skip
    if role == ChatMessage.Role.ASSISTANT:
        ChatMessage.objects.filter(session=session, seq=seq).update(finished_at=when)
    ChatSession.objects.filter(pk=session.pk).update(last_seq=seq, last_seen_at=when)


def _turn(session: ChatSession, when: datetime) -> None:
    """A visitor question and a complete assistant answer."""
    _message(session, 1, "user", when, text="How do I change my plan?")
    _message(session, 2, "assistant", when + timedelta(seconds=2), text="Like this.", provider="local",
             model="local", ttft_ms=100, duration_ms=1000)  # fmt: skip


def _rate(session: ChatSession, when: datetime, score: int, resolved: bool | None) -> None:
    with time_machine.travel(when, tick=False):
        SessionRating.objects.create(session=session, score=score, resolved=resolved)


def _handoff(session: ChatSession, requested: datetime, **fields: Any) -> None:
    Handoff.objects.create(session=session, requested_at=requested, reason="asked", **fields)


def build_human_week() -> HumanWeek:
    """Create the docstring's rows, then the analytics rows and rollups, as of NOW."""
    users = get_user_model()
    alice = users.objects.create_user("alice", first_name="Alice")
    bob = users.objects.create_user("bob", first_name="Bob")

    t1 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    h1 = _session(t1, user_type="client", external="u1")
    _turn(h1, t1)
    _message(h1, 3, "user", t1 + timedelta(minutes=1), text="Can someone look at my account?")
    _message(h1, 4, "agent", t1 + timedelta(minutes=3), agent=alice)
    _message(h1, 5, "user", t1 + timedelta(minutes=5))
    _message(h1, 6, "agent", t1 + timedelta(minutes=5, seconds=30), agent=alice)
    _handoff(h1, t1 + timedelta(minutes=1), agent=alice, assigned_at=t1 + timedelta(minutes=2),
             first_response_at=t1 + timedelta(minutes=3), ended_at=t1 + timedelta(minutes=21),
             outcome="resolved")  # fmt: skip
    _rate(h1, t1 + timedelta(minutes=22), 5, None)
    ended = t1 + timedelta(minutes=22)
    ChatSession.objects.filter(pk=h1.pk).update(status="closed", closed_at=ended, last_seen_at=ended)

    t2 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    h2 = _session(t2, user_type="client", external="u2")
    _turn(h2, t2)
    _message(h2, 3, "agent", t2 + timedelta(minutes=11), agent=bob)
    _handoff(h2, t2 + timedelta(minutes=1), agent=bob, assigned_at=t2 + timedelta(minutes=6),
             first_response_at=t2 + timedelta(minutes=11), ended_at=t2 + timedelta(minutes=20),
             outcome="handed_back")  # fmt: skip
    _rate(h2, t2 + timedelta(minutes=21), 2, None)

    t3 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    h3 = _session(t3)
    _turn(h3, t3)
    _handoff(h3, t3 + timedelta(minutes=1), ended_at=t3 + timedelta(minutes=1), outcome="unavailable")

    t4 = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
    h4 = _session(t4, user_type="client", external="u2")
    _turn(h4, t4)
    _rate(h4, t4 + timedelta(minutes=1), 5, True)

    t5 = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
    h5 = _session(t5)
    _message(h5, 1, "user", t5, text="Hello?")
    _message(h5, 2, "agent", t5 + timedelta(minutes=1), agent=alice)
    taken = t5 + timedelta(seconds=30)
    _handoff(h5, taken, agent=alice, assigned_at=taken, first_response_at=t5 + timedelta(minutes=1),
             ended_at=t5 + timedelta(minutes=10), outcome="resolved")  # fmt: skip

    waiting = {}
    for name, created, asked in (("W1", (11, 50), (11, 55)), ("W2", (11, 52), (11, 58))):
        start = datetime(2026, 3, 10, *created, tzinfo=UTC)
        session = _session(start)
        _message(session, 1, "user", start)
        ChatSession.objects.filter(pk=session.pk).update(handoff_state="waiting")
        _handoff(session, datetime(2026, 3, 10, *asked, tzinfo=UTC))
        waiting[name] = session

    with time_machine.travel(NOW, tick=False):
        services.analytics_recover(grace=timedelta(0), idle=timedelta(minutes=30), all_sessions=True)
        services.rollups_rebuild()
    return HumanWeek(
        sessions={"H1": h1, "H2": h2, "H3": h3, "H4": h4, "H5": h5, **waiting}, agents={"alice": alice, "bob": bob}
    )

"""`manage.py seed_demo_data`: a plausible, reproducible history with its analytics built.

Small runs (tens of sessions over a week, "now" pinned) on the test database; the `backends`
ones also run in the services pass, where rows go in with Postgres `COPY`.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count, Max, Sum

from analytics import demo, taxonomy
from analytics.models import ChatAnalytics, DailyProviderRollup, DailySessionRollup
from assistant.models import ChatEvent, ChatMessage, ChatSession, Feedback, ProviderCall, SessionRating

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MESSAGE_FIELDS = (
    "seq", "role", "text", "status", "provider", "model", "ttft_ms", "duration_ms", "input_tokens", "output_tokens",
    "cached", "error_code", "knowledge_sections", "created_at", "finished_at", "reply_to__seq", "retry_of__seq",
)  # fmt: skip


def seed(*options: str) -> str:
    """Run the command quietly with "now" pinned; its summary line."""
    out = StringIO()
    call_command("seed_demo_data", "--no-progress", "--now", NOW.isoformat(), *options, stdout=out, stderr=StringIO())
    return out.getvalue()


def fingerprint() -> dict[str, Any]:
    """Everything drawn from the seed (public ids and client ids are random on purpose)."""
    return {
        "sessions": list(
            ChatSession.objects.order_by("created_at", "pk").values_list(
                "created_at", "status", "title", "last_seq", "user_type", "external_user_id", "token_hash", "closed_at"
            )
        ),
        "messages": list(
            ChatMessage.objects.order_by("session__created_at", "session_id", "seq").values_list(*MESSAGE_FIELDS)
        ),
        "calls": Counter(
            ProviderCall.objects.values_list("feature", "provider", "model", "attempt", "outcome", "fallback_from")
        ),
        "call_numbers": ProviderCall.objects.aggregate(Sum("latency_ms"), Sum("input_tokens"), Sum("output_tokens")),
        "feedback": Counter(Feedback.objects.values_list("rating", "reason", "created_at")),
        "ratings": Counter(SessionRating.objects.values_list("score", "resolved", "created_at")),
        "events": Counter(ChatEvent.objects.values_list("name", "created_at")),
    }


def wipe() -> None:
    """An empty database again (the rows cascade from their sessions)."""
    ChatSession.objects.all().delete()
    DailySessionRollup.objects.all().delete()
    DailyProviderRollup.objects.all().delete()


@pytest.mark.backends
@pytest.mark.django_db
def test_seed_builds_sessions_messages_analytics_and_rollups() -> None:
    summary = seed("--sessions", "40", "--days", "7", "--seed", "3")

    sessions = ChatSession.objects.count()
    messages = ChatMessage.objects.count()
    assert sessions == 40
    assert 40 * 4 <= messages <= 40 * 20  # ~10 a session on average
    assert f"Seeded 40 sessions, {messages:,} messages" in summary
    # Every session is a conversation: seqs 1..last_seq with no gap, a visitor message first.
    for session in ChatSession.objects.annotate(top=Max("messages__seq"), n=Count("messages")):
        assert session.last_seq == session.top == session.n
        assert session.messages.get(seq=1).role == ChatMessage.Role.USER
        assert NOW - timedelta(days=7, hours=1) <= session.created_at <= session.last_seen_at <= NOW
    assert not ChatMessage.objects.filter(created_at__gt=NOW).exists()
    assert not ChatMessage.objects.filter(role=ChatMessage.Role.ASSISTANT, reply_to__isnull=True).exists()

    # One analytics row per session, agreeing with its messages.
    roles = Counter(ChatMessage.objects.values_list("session_id", "role"))
    rows = {row.session_id: row for row in ChatAnalytics.objects.all()}
    assert set(rows) == set(ChatSession.objects.values_list("pk", flat=True))
    for session_pk, row in rows.items():
        assert row.user_messages == roles[(session_pk, "user")]
        assert row.assistant_messages == roles[(session_pk, "assistant")]
        assert row.total_messages == row.user_messages + row.assistant_messages + roles[(session_pk, "agent")]
    totals = DailySessionRollup.objects.aggregate(sessions=Sum("sessions"), messages=Sum("total_messages"))
    assert totals == {"sessions": 40, "messages": messages}
    calls = DailyProviderRollup.objects.aggregate(calls=Sum("calls"))["calls"]
    assert calls == ProviderCall.objects.count() > 40  # a title call per session and at least a reply each


@pytest.mark.django_db
def test_seed_history_has_every_kind_of_row_the_analytics_count() -> None:
    seed("--sessions", "250", "--days", "14", "--seed", "5")

    replies = ChatMessage.objects.filter(role=ChatMessage.Role.ASSISTANT)
    statuses = Counter(replies.values_list("status", flat=True))
    assert statuses["complete"] > 0.9 * replies.count()
    assert statuses["failed"] + statuses["interrupted"] + statuses["stopped"] > 0
    assert replies.filter(cached=True, provider="local").exists()
    assert ProviderCall.objects.exclude(fallback_from="").exists()  # failovers
    assert ProviderCall.objects.filter(outcome=ProviderCall.Outcome.ERROR).exists()
    assert ProviderCall.objects.filter(model="llama3.1:8b").exists()  # no price: "price unknown"
    assert DailyProviderRollup.objects.filter(price_unknown_calls__gt=0).exists()
    assert replies.exclude(knowledge_sections=[]).exists()
    thumbs = Counter(Feedback.objects.values_list("rating", flat=True))
    assert thumbs["up"] > thumbs["down"] > 0
    assert 0.1 * replies.count() < sum(thumbs.values()) < 0.3 * replies.count()
    assert 0.05 * 250 < SessionRating.objects.count() < 0.3 * 250
    assert {"widget_open", "quick_reply", "link_click"} <= set(ChatEvent.objects.values_list("name", flat=True))
    assert ChatAnalytics.objects.filter(escalated_to_human=True).exists()
    assert ChatSession.objects.filter(status=ChatSession.Status.CLOSED).exclude(closed_at=None).exists()
    assert {"anonymous", "client"} <= set(ChatSession.objects.values_list("user_type", flat=True))
    topics = Counter(topic for row in ChatAnalytics.objects.all() for topic in row.topics_discussed)
    assert {"billing", "account", "installation", "widget"} <= set(topics)
    assert any("›" in topic for topic in topics)  # knowledge sections, labelled "Document › Heading"  # noqa: RUF003


@pytest.mark.backends
@pytest.mark.django_db
def test_same_seed_gives_the_same_history_and_another_seed_does_not() -> None:
    seed("--sessions", "30", "--days", "7", "--seed", "3")
    first = fingerprint()
    wipe()
    seed("--sessions", "30", "--days", "7", "--seed", "3")
    assert fingerprint() == first
    wipe()
    seed("--sessions", "30", "--days", "7", "--seed", "4")
    assert fingerprint() != first


@pytest.mark.django_db
def test_seed_refuses_a_database_that_has_chat_sessions() -> None:
    ChatSession.objects.create(token_hash="x" * 64)

    with pytest.raises(CommandError, match="already has 1 chat session") as refused:
        seed("--sessions", "5")

    assert refused.value.returncode == demo.REFUSED_EXIT_STATUS == 3
    assert ChatSession.objects.count() == 1
    assert not ChatMessage.objects.exists()


@pytest.mark.django_db
def test_seed_with_append_adds_sessions_and_their_analytics() -> None:
    seed("--sessions", "10", "--days", "3")
    messages = ChatMessage.objects.count()

    seed("--sessions", "10", "--days", "3", "--append")

    assert ChatSession.objects.count() == 20
    assert ChatMessage.objects.count() == 2 * messages  # same seed, same conversations
    assert ChatAnalytics.objects.count() == 20
    assert DailySessionRollup.objects.aggregate(n=Sum("sessions"))["n"] == 20


def test_seed_refuses_a_time_in_the_future() -> None:
    with pytest.raises(CommandError, match="in the future"):
        call_command("seed_demo_data", "--now", "2999-01-01T00:00:00+00:00", stdout=StringIO())


@pytest.mark.parametrize("topic", [name for name in demo.TOPIC_QUESTIONS if name])
def test_visitor_questions_mention_their_topic(topic: str) -> None:
    rules = taxonomy.get()
    for text in demo.TOPIC_QUESTIONS[topic]:
        assert topic in rules.topics_of(text), text


def test_requests_for_a_human_are_escalations() -> None:
    rules = taxonomy.get()
    assert all(rules.asks_for_human(text) for text in demo.HUMAN)
    assert not any(rules.asks_for_human(text) for text in demo.GLAD + demo.ANNOYED)

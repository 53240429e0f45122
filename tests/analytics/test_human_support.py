"""The analytics of human support, on the hand-computed fixture of tests/analytics/human_fixture.py:
each metric of the registry's "Human support" section, the per-agent table, the live queue,
the tracker's handling of agent messages and handoff requests, the report and the exports."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import AsyncClient, Client
from django.utils import timezone

from analytics import metrics, reports, selectors, services, tracker
from analytics.models import ChatAnalytics
from analytics.session_stats import SessionStats
from assistant import events
from assistant.models import ChatMessage, ChatSession, Handoff
from tests.analytics.human_fixture import EXPECTED_AGENTS, EXPECTED_HUMAN, EXPECTED_LIVE, NOW, PERIOD, HumanWeek

WEEK = f"start_date={PERIOD.start}&end_date={PERIOD.end}"


def _report(fmt: str) -> str:
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("generate_chat_weekly_report", "--format", fmt, "--end-date", PERIOD.end.isoformat(),
                     "--no-progress", stdout=out, stderr=StringIO())  # fmt: skip
    return out.getvalue()


@pytest.fixture
def staff(db) -> Client:
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


# --- The period's numbers ---------------------------------------------------------------------
@pytest.mark.backends
@pytest.mark.django_db
def test_every_human_support_metric_is_the_hand_computed_number(human_week: HumanWeek) -> None:
    values = selectors.summary(PERIOD)["metrics"]
    for key, expected in EXPECTED_HUMAN.items():
        assert values[key] == expected, key


@pytest.mark.backends
@pytest.mark.django_db
def test_per_session_fields_follow_the_handoff_rows_and_agent_messages(human_week: HumanWeek) -> None:
    rows = {
        name: ChatAnalytics.objects.get(session=session) for name, session in human_week.sessions.items()
        if name.startswith("H")
    }  # fmt: skip
    h1, h2, h3, h4, h5 = (rows[f"H{n}"] for n in range(1, 6))
    assert (h1.handoff_requests, h1.human_involved, h1.human_resolved, h1.agent_messages) == (1, True, True, 2)
    assert (h1.human_first_response_ms, h1.human_resolution_ms, h1.avg_agent_response_ms) == ([120_000], [1_200_000],
                                                                                                75_000)  # fmt: skip
    assert (h2.human_first_response_ms, h2.human_resolution_ms, h2.avg_agent_response_ms) == ([600_000], [], 660_000)
    assert (h3.handoff_requests, h3.human_involved, h3.escalated_to_human) == (1, False, True)
    assert (h4.handoff_requests, h4.human_involved, h4.resolution) == (0, False, "confirmed")
    # A takeover: a person involved, no request, no request times.
    assert (h5.handoff_requests, h5.human_involved, h5.human_resolved, h5.escalated_to_human) == (0, True, True, True)
    assert (h5.human_first_response_ms, h5.human_resolution_ms, h5.avg_agent_response_ms) == ([], [], 60_000)
    # First-contact resolution: identified visitors only; u2 came back 2 days after H2.
    assert [rows[name].visitor_returned for name in ("H1", "H2", "H3", "H4", "H5")] == [False, True, None, False, None]


@pytest.mark.backends
@pytest.mark.django_db
def test_a_new_session_within_the_window_marks_the_earlier_one_returned_at_the_next_refresh(
    human_week: HumanWeek, settings
) -> None:
    h1 = human_week.sessions["H1"]
    later = datetime(2026, 3, 8, 10, 0, tzinfo=UTC)  # 6 days after H1, same visitor
    with time_machine.travel(later, tick=False):
        again = ChatSession.objects.create(token_hash="x" * 64, user_type="client", external_user_id="u1")
        ChatMessage.objects.create(session=again, seq=1, role="user", text="me again")
    ChatSession.objects.filter(pk=again.pk).update(last_seq=1)
    with time_machine.travel(NOW, tick=False):
        services.session_analytics_rebuild(session_pk=again.pk)
        services.rollups_refresh()
    assert ChatAnalytics.objects.get(session=h1).visitor_returned is True
    # H1 came back: no longer resolved at first contact. The new session (idle: finished, no
    # answer) counts too: H4 alone of H1, H2, H4 and the new one.
    assert selectors.summary(PERIOD)["metrics"]["fcr_rate"] == 25.0
    settings.FCR_WINDOW_DAYS = 5  # 6 days is outside a 5-day window
    with time_machine.travel(NOW, tick=False):
        services.rollups_rebuild()
    assert ChatAnalytics.objects.get(session=h1).visitor_returned is False


@pytest.mark.backends
@pytest.mark.django_db
def test_the_per_agent_table_is_hand_computed_and_adds_up_to_the_period(human_week: HumanWeek) -> None:
    rows = selectors.agent_table(PERIOD)
    assert [{key: value for key, value in row.items() if key != "agent_id"} for row in rows] == EXPECTED_AGENTS
    assert rows[0]["agent_id"] == human_week.agents["alice"].pk
    # Its columns add up to the period's numbers (requests answered: 1 + 1 of the 2 answered).
    assert sum(row["first_responses"] for row in rows) == 2
    assert selectors.agent_table(PERIOD, selectors.Filters(user_type="anonymous"))[0]["conversations"] == 1  # H5


@pytest.mark.django_db
def test_the_live_queue_counts_waiting_visitors_and_the_longest_wait(human_week: HumanWeek) -> None:
    with time_machine.travel(NOW, tick=False):
        live = selectors.live_numbers()
    assert {key: live[key] for key in EXPECTED_LIVE} == EXPECTED_LIVE
    assert set(live) == set(metrics.LIVE)
    Handoff.objects.filter(outcome="open").update(outcome="abandoned")
    ChatSession.objects.filter(handoff_state="waiting").update(handoff_state="ai")
    assert {key: selectors.live_numbers(NOW)[key] for key in EXPECTED_LIVE} == {"waiting_now": 0, "longest_wait_ms": 0}


# --- The surfaces -----------------------------------------------------------------------------
@pytest.mark.backends
@pytest.mark.django_db
def test_the_report_has_a_human_support_section_and_the_agents_table(human_week: HumanWeek) -> None:
    text = _report("text")
    section = text[text.index("HUMAN SUPPORT\n") : text.index("AI USAGE AND COST")]
    assert "Handoff rate" in section and "60%" in section
    assert "First human response (avg)" in section and "6 min 00 s" in section  # 360 s
    assert "Human resolution time" in section and "20 min 00 s" in section
    assert "Agent response time" in section and "4 min 25 s" in section  # 265 s
    assert "First-contact resolution" in section and "66.67%" in section
    agents = text[text.index("HUMAN SUPPORT BY AGENT") : text.index("DAILY")].splitlines()
    assert agents[3].split() == ["Alice", "2", "2", "min", "00", "s", "1", "20", "min", "00", "s", "100%"]
    assert agents[4].split() == ["Bob", "1", "10", "min", "00", "s", "0", "no", "data", "0%"]
    markdown = _report("markdown")
    assert "## Human support\n" in markdown and "## Human support by agent\n" in markdown
    html = _report("html")
    assert ">Human support</h2>" in html and ">Human support by agent</h2>" in html


def test_durations_read_as_people_say_them() -> None:
    assert [reports.format_unit("duration", value) for value in (850, 42_500, 245_000, 7_620_000, None)] == [
        "850 ms", "42.5 s", "4 min 05 s", "2 h 07 min", "no data"
    ]  # fmt: skip


@pytest.mark.backends
@pytest.mark.django_db
def test_dashboard_api_shows_the_agents_table_and_the_live_queue(human_week: HumanWeek, staff: Client) -> None:
    with time_machine.travel(NOW, tick=False):
        tables = staff.get(f"/admin/chat-analytics/api/tables/?{WEEK}").json()
        snapshot = staff.get(f"/admin/chat-analytics/api/?{WEEK}").json()
        page = staff.get("/admin/chat-analytics/").content.decode()
    assert [row["agent"] for row in tables["agents"]] == ["Alice", "Bob"]
    assert tables["agents"] == selectors.agent_table(PERIOD)
    assert snapshot["live"]["waiting_now"] == 2 and snapshot["live"]["longest_wait_ms"] == 300_000
    assert 'id="ca-agents"' in page


async def _csv(client: AsyncClient, name: str) -> list[dict[str, str]]:
    response = await client.get(f"/admin/chat-analytics/export/{name}/", {"start_date": str(PERIOD.start),
                                                                          "end_date": str(PERIOD.end)})  # fmt: skip
    assert response.status_code == 200
    body = b"".join([chunk async for chunk in response.streaming_content])
    return list(csv.DictReader(io.StringIO(body.decode(), newline="")))


@pytest.mark.backends
@pytest.mark.django_db(transaction=True)
async def test_export_columns_give_the_human_support_metrics(human_week: HumanWeek) -> None:
    user = await get_user_model().objects.acreate(username="exporter", is_staff=True)
    staff = AsyncClient()
    await staff.aforce_login(user)
    analytics = await _csv(staff, "analytics")
    sessions = await _csv(staff, "sessions")
    messages = await _csv(staff, "messages")
    assert len(analytics) == len(sessions) == EXPECTED_HUMAN["sessions"]
    asked = sum(int(row["handoff_requests"]) > 0 for row in analytics)
    assert 100 * asked / len(analytics) == EXPECTED_HUMAN["handoff_rate"]
    assert sum(row["human_involved"] == "true" for row in sessions) == EXPECTED_HUMAN["human_sessions"]
    assert sum(int(row["agent_messages"]) for row in sessions) == EXPECTED_HUMAN["agent_messages"]
    first = [value for row in analytics for value in _list(row["human_first_response_ms"])]
    assert sum(first) / len(first) == EXPECTED_HUMAN["avg_human_first_response_ms"]
    agent = [int(row["avg_agent_response_ms"]) for row in analytics if row["avg_agent_response_ms"]]
    assert sum(agent) / len(agent) == EXPECTED_HUMAN["avg_agent_response_ms"]
    resolution = [value for row in analytics for value in _list(row["human_resolution_ms"])]
    assert sum(resolution) / len(resolution) == EXPECTED_HUMAN["avg_human_resolution_ms"]
    assert [row["visitor_returned"] for row in sessions] == ["false", "true", "", "false", ""]
    agents = [row["author_name"] for row in messages if row["role"] == "agent"]
    assert agents == ["Alice", "Alice", "Bob", "Alice"]


def _list(text: str) -> list[int]:
    """A list column of the CSV (JSON text)."""
    return list(json.loads(text)) if text else []


# --- The tracker ------------------------------------------------------------------------------
def test_an_agent_reply_answers_the_visitor_but_is_not_an_ai_answer() -> None:
    at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    stats = SessionStats(session_pk=1, started_at=at, user_type="anonymous")
    stats.observe_user_message(seq=1, text="Where is my order?", at=at)
    assert stats.row(at)["unanswered"] is True
    stats.observe_agent_message(seq=2, at=at + timedelta(seconds=45))
    row = stats.row(at + timedelta(hours=1))
    assert row["unanswered"] is False  # answered, by a person
    assert (row["assistant_messages"], row["response_times_ms"], row["total_messages"]) == (0, [], 2)
    assert row["resolution"] == "unresolved"  # no AI answer to assume it resolved; a person stepped in
    assert (row["agent_messages"], row["avg_agent_response_ms"], row["escalated_to_human"]) == (1, 45_000, True)
    # A second visitor message after the agent's is unanswered again.
    stats.observe_user_message(seq=3, text="Thanks, and the invoice?", at=at + timedelta(minutes=1))
    assert stats.row(at + timedelta(minutes=2))["unanswered"] is True


def test_agent_response_time_is_timed_from_the_latest_visitor_message_before_it() -> None:
    at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    conversation = [
        ("agent", at),  # before any visitor message: not timed
        ("user", at + timedelta(seconds=10)),
        ("user", at + timedelta(seconds=20)),
        ("agent", at + timedelta(seconds=50)),  # 30 s after the latest visitor message
        ("agent", at + timedelta(seconds=80)),  # 60 s: the visitor still waits from 00:20
    ]
    assert metrics.agent_response_times(conversation) == [30_000, 60_000]


@database_sync_to_async
def _new_session() -> ChatSession:
    return ChatSession.objects.create(public_id=uuid.uuid4(), last_seq=0)


@database_sync_to_async
def _store(session: ChatSession, *, handoff: bool = False) -> None:
    ChatMessage.objects.create(session=session, seq=1, role="user", text="My parcel is lost")
    ChatMessage.objects.create(session=session, seq=2, role="agent", text="Let me check.", author_name="Alice")
    ChatSession.objects.filter(pk=session.pk).update(last_seq=2)
    if handoff:
        Handoff.objects.create(session=session, requested_at=timezone.now(), reason="asked")


@database_sync_to_async
def _row(session: ChatSession) -> dict[str, Any] | None:
    return ChatAnalytics.objects.filter(session=session).values().first()


@pytest.mark.django_db(transaction=True)
async def test_live_agent_message_and_handoff_request_reach_the_session_row() -> None:
    session = await _new_session()
    sid = session.public_id.hex
    events.publish(events.SessionOpened(session_pk=session.pk, session_id=sid, connection="c1", created=True,
                                        started_at=timezone.now().isoformat(), user_type="anonymous"))  # fmt: skip
    await _store(session, handoff=True)
    events.publish(events.MessageStored(session_pk=session.pk, session_id=sid, seq=1, message_id="u1", role="user",
                                        text="My parcel is lost"))  # fmt: skip
    # HandoffRequested sets the escalated flag (it did not) and reads the request's row.
    events.publish(events.HandoffRequested(session_pk=session.pk, session_id=sid, reason="asked", state="waiting",
                                           requested_at=timezone.now().isoformat()))  # fmt: skip
    events.publish(events.AgentMessageStored(session_pk=session.pk, session_id=sid, seq=2, message_id="a1",
                                             agent_id=1, agent_name="Alice", text="Let me check."))  # fmt: skip
    events.publish(events.ConnectionClosed(session_pk=session.pk, session_id=sid, connection="c1"))
    await tracker.drain()
    await tracker.drain()
    row = await _row(session)
    assert row is not None
    assert (row["escalated_to_human"], row["handoff_requests"], row["unanswered"]) == (True, 1, False)
    assert (row["agent_messages"], row["assistant_messages"], row["total_messages"]) == (1, 0, 2)
    assert row["human_involved"] is True


@pytest.mark.django_db(transaction=True)
async def test_a_handoff_request_alone_marks_the_session_escalated() -> None:
    session = await _new_session()
    sid = session.public_id.hex
    events.publish(events.SessionOpened(session_pk=session.pk, session_id=sid, connection="c1", created=True,
                                        started_at=timezone.now().isoformat(), user_type="anonymous"))  # fmt: skip
    events.publish(events.MessageStored(session_pk=session.pk, session_id=sid, seq=1, message_id="u1", role="user",
                                        text="Where is my parcel?"))  # fmt: skip
    events.publish(events.HandoffRequested(session_pk=session.pk, session_id=sid, reason="", state="unavailable",
                                           requested_at=timezone.now().isoformat()))  # fmt: skip
    events.publish(events.ConnectionClosed(session_pk=session.pk, session_id=sid, connection="c1"))
    await tracker.drain()
    await tracker.drain()
    row = await _row(session)
    assert row is not None and row["escalated_to_human"] is True

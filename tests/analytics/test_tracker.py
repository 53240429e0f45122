"""The analytics tracker, driven through the real chat consumer: the `ChatAnalytics` row each
conversation leaves, when checkpoints are written, and that chat survives analytics failures.

Expected numbers are worked out by hand from the conversation and the documented formulas:
engagement score = 10 per visitor message (up to 50) + 5 per widget action (up to 20) + 15 for
any feedback + 15 for a rating (`analytics.metrics.engagement_score`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from analytics import recovery, tracker
from analytics.models import ChatAnalytics
from analytics.services import session_stats_load
from assistant.models import ChatMessage, ChatSession
from assistant.replies import registry
from tests.support.chat import ChatClient, open_client
from tests.support.fake_vendors import FakeVendor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends, pytest.mark.usefixtures("drain_replies")]

Row = dict[str, Any]

# Visitor messages whose taxonomy topics and knowledge-base answers are known (docs/knowledge,
# analytics/data/topics.toml): "charged"/"refund" are billing keywords and the knowledge base has
# no answer; "dashboard"/"export" are analytics keywords and one section answers it.
REFUND = "I was charged twice, can I get a refund?"
EXPORT = "Where is the dashboard export?"
EXPORT_SECTION = "Analytics and reports › How do I export chat data as CSV?"
HUMAN = "I want to speak to a human"  # an escalation phrase; no topic, no answer
EMBED = "How do I embed the widget?"  # a long answer: 157 words


async def connected() -> ChatClient:
    client, ok, code = await open_client()
    assert ok, f"connection refused with {code}"
    return client


async def settle() -> None:
    """Let replies finish, then the analytics writes they and the disconnects started."""
    await registry.drain()
    await asyncio.sleep(0)
    await tracker.drain()


@database_sync_to_async
def row_of(session_id: str) -> Row | None:
    return ChatAnalytics.objects.filter(session__public_id=session_id).values().first()


@database_sync_to_async
def session_pk(session_id: str) -> int:
    return ChatSession.objects.get(public_id=session_id).pk


async def row_appears(session_id: str, *, within: float, where: Callable[[Row], bool] = lambda _: True) -> Row:
    """Poll the database until the session's row exists (and satisfies `where`)."""
    deadline = time.monotonic() + within
    while True:
        row = await row_of(session_id)
        if row is not None and where(row):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching analytics row within {within} s; last seen: {row}")
        await asyncio.sleep(0.02)


async def frames_to_reply_end(client: ChatClient) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every frame up to the next `reply.end`: (frames, reply.end)."""
    frames = []
    while True:
        frame = await client.recv()
        frames.append(frame)
        if frame["type"] == "reply.end":
            return frames, frame


async def turn(client: ChatClient, text: str, client_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Send a message and read every frame up to its reply's end: (frames, reply.end)."""
    await client.send({"type": "message", "text": text, "client_id": client_id})
    return await frames_to_reply_end(client)


# --- what a conversation writes -------------------------------------------------------------
async def test_conversation_with_feedback_events_rating_and_end_writes_the_hand_computed_row() -> None:
    client = await connected()
    welcome = await client.hello()
    _, _, first = await client.say(REFUND, "c1")
    await client.send({"type": "feedback", "message_id": first["message_id"], "rating": "up"})
    await client.recv_type("feedback.ack")
    _, _, second = await client.say(EXPORT, "c2")
    await client.send({"type": "feedback", "message_id": second["message_id"], "rating": "down"})
    await client.recv_type("feedback.ack")
    await client.send({"type": "event", "name": "link_click", "data": {"href": "https://example.com"}})
    await client.send({"type": "event", "name": "escalate"})
    _, _, third = await client.say(HUMAN, "c3")
    await client.send({"type": "rating", "score": 2, "resolved": False})
    await client.recv_type("rating.ack")
    await client.send({"type": "end"})
    await client.recv_type("ended")
    await settle()

    row = await row_of(welcome["session_id"])
    assert row is not None
    assert (row["user_messages"], row["assistant_messages"], row["total_messages"], row["last_seq"]) == (3, 3, 6, 6)
    assert row["topics_discussed"] == ["billing", "analytics", EXPORT_SECTION]
    assert [action["name"] for action in row["actions_taken"]] == ["link_click", "escalate"]
    assert row["escalated_to_human"] is True
    # The visitor said "not resolved" in the survey: that decides it, escalation or not.
    assert (row["resolution"], row["resolved"], row["closed"], row["unanswered"]) == ("unresolved", False, True, False)
    # 3 messages x 10 + 2 actions x 5 + 15 (feedback) + 15 (rating)
    assert row["engagement_score"] == 70
    assert (row["satisfaction_rating"], row["feedback_up"], row["feedback_down"]) == (2, 1, 1)
    durations = [first["duration_ms"], second["duration_ms"], third["duration_ms"]]
    assert row["response_times_ms"] == durations
    assert row["ttfts_ms"] == [first["ttft_ms"], second["ttft_ms"], third["ttft_ms"]]
    assert row["provider"] == "local" and row["failed_replies"] == 0 and row["failovers"] == 0
    await client.close()


RESOLUTIONS = [
    # texts, rating frame, resolution, escalated, engagement (10/message + 15 if rated)
    pytest.param([EXPORT], {"score": 5, "resolved": True}, "confirmed", False, 10 + 15, id="rated-resolved"),
    pytest.param([EXPORT, HUMAN], None, "unresolved", True, 20, id="asked-for-a-human-then-ended"),
    pytest.param([EXPORT], None, "assumed", False, 10, id="answered-then-ended"),
]


@pytest.mark.parametrize(("texts", "rating", "resolution", "escalated", "engagement"), RESOLUTIONS)
async def test_ended_conversation_resolution_follows_the_rating_or_the_escalation(
    texts: list[str], rating: dict[str, Any] | None, resolution: str, escalated: bool, engagement: int
) -> None:
    client = await connected()
    welcome = await client.hello()
    for index, text in enumerate(texts):
        await client.say(text, f"r{index}")
    if rating is not None:
        await client.send({"type": "rating", **rating})
        await client.recv_type("rating.ack")
    await client.send({"type": "end"})
    await client.recv_type("ended")
    await settle()

    row = await row_of(welcome["session_id"])
    assert row is not None
    assert (row["resolution"], row["escalated_to_human"]) == (resolution, escalated)
    assert row["engagement_score"] == engagement
    assert row["resolved"] is (resolution in {"confirmed", "assumed"})
    assert row["user_messages"] == len(texts) and row["assistant_messages"] == len(texts)
    await client.close()


# --- checkpoints ----------------------------------------------------------------------------
async def test_checkpoint_is_written_after_the_nth_message_while_the_visitor_stays_connected(settings) -> None:
    settings.ANALYTICS_CHECKPOINT_MESSAGES = 2
    settings.ANALYTICS_CHECKPOINT_SECONDS = 60
    settings.LOCAL_TOKEN_DELAY_MS = 20
    client = await connected()
    welcome = await client.hello()
    await client.send({"type": "message", "text": EMBED, "client_id": "n1"})
    await client.recv_type("reply.delta")
    await tracker.drain()
    assert await row_of(welcome["session_id"]) is None  # one message observed: below the threshold
    await client.send({"type": "stop"})
    _, end = await client.read_reply()
    assert end["status"] == "stopped"
    await tracker.drain()

    row = await row_of(welcome["session_id"])
    assert row is not None, "the second message (the reply) should have written a checkpoint"
    assert (row["user_messages"], row["assistant_messages"], row["total_messages"], row["last_seq"]) == (1, 1, 2, 2)
    assert row["resolution"] == "pending" and row["closed"] is False
    await client.send({"type": "ping"})
    assert await client.recv() == {"type": "pong"}
    await client.close()


async def test_checkpoint_is_written_seconds_after_a_change_while_the_visitor_stays_connected(settings) -> None:
    settings.ANALYTICS_CHECKPOINT_MESSAGES = 1000
    settings.ANALYTICS_CHECKPOINT_SECONDS = 0.2
    client = await connected()
    welcome = await client.hello()
    await client.say(REFUND, "t1")
    assert await row_of(welcome["session_id"]) is None  # the 0.2 s timer has not fired yet
    row = await row_appears(welcome["session_id"], within=2, where=lambda row: row["last_seq"] == 2)
    assert (row["user_messages"], row["assistant_messages"], row["topics_discussed"]) == (1, 1, ["billing"])

    # A later change gets its own checkpoint, still without disconnecting.
    await client.send({"type": "event", "name": "link_click"})
    row = await row_appears(welcome["session_id"], within=2, where=lambda row: len(row["actions_taken"]) == 1)
    assert row["engagement_score"] == 10 + 5
    await client.send({"type": "ping"})
    assert await client.recv() == {"type": "pong"}
    await client.close()


async def test_checkpoint_from_memory_equals_the_row_rebuilt_from_the_stored_messages(settings) -> None:
    settings.ANALYTICS_CHECKPOINT_MESSAGES = 1000
    settings.ANALYTICS_CHECKPOINT_SECONDS = 0.2
    client = await connected()
    welcome = await client.hello()
    _, _, first = await client.say(REFUND, "m1")
    await client.send({"type": "feedback", "message_id": first["message_id"], "rating": "down"})
    await client.recv_type("feedback.ack")
    await client.say(EXPORT, "m2")
    await client.send({"type": "event", "name": "quick_reply"})
    await client.send({"type": "rating", "score": 4})
    await client.recv_type("rating.ack")

    stored = await row_appears(
        welcome["session_id"], within=2, where=lambda row: row["satisfaction_rating"] == 4 and row["actions_taken"]
    )
    stats = await database_sync_to_async(session_stats_load)(session_pk=await session_pk(welcome["session_id"]))
    assert stats is not None
    rebuilt = stats.row(timezone.now())
    # The tracker stamps activity when it sees it, the rebuild with the rows' own timestamps:
    # those differ by milliseconds. Everything else is the same number.
    approximate = {"last_activity_at", "duration_s", "actions_taken"}
    assert {key: stored[key] for key in rebuilt if key not in approximate} == {
        key: value for key, value in rebuilt.items() if key not in approximate
    }
    assert abs(stored["last_activity_at"] - rebuilt["last_activity_at"]) < timedelta(seconds=1)
    assert [action["name"] for action in stored["actions_taken"]] == ["quick_reply"]
    assert [action["name"] for action in rebuilt["actions_taken"]] == ["quick_reply"]
    assert (stored["user_messages"], stored["feedback_down"], stored["resolution"]) == (2, 1, "pending")
    await client.close()


async def test_failovers_and_provider_errors_are_counted_alike_from_memory_and_from_the_calls(settings) -> None:
    settings.ANALYTICS_CHECKPOINT_MESSAGES = 1000
    settings.ANALYTICS_CHECKPOINT_SECONDS = 0.2
    settings.PROVIDER_BACKOFF_BASE_S = 0.02
    settings.PROVIDER_BREAKER_THRESHOLD = 100
    settings.TITLE_FROM_PROVIDER = False
    settings.RESPONSE_CACHE_TTL_S = 0
    with FakeVendor("openai") as primary, FakeVendor("anthropic", tokens=["Backup ", "answer."]) as backup:
        # Turn 1: a refused request before any text (one error, no retry; a 400, not a 401, which
        # would take openai out for the breaker's cooldown); turn 2: cut mid-stream.
        primary.faults.extend(["status:400", "cut:2"])
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "test-key", f"{primary.base_url}/v1"
        settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL = "test-key", backup.base_url
        settings.AI_PROVIDERS = ["openai", "anthropic", "local"]
        client = await connected()
        welcome = await client.hello()
        _, first = await turn(client, REFUND, "p1")
        frames, _ = await turn(client, "My invoice is wrong", "p2")
        if frames[-1]["status"] == "interrupted":
            frames += (await frames_to_reply_end(client))[0]
        ends = [(f["seq"], f["status"], f["provider"]) for f in frames if f["type"] == "reply.end"]
        assert (first["seq"], first["status"], first["provider"]) == (2, "complete", "anthropic")
        assert ends == [(4, "interrupted", "openai"), (5, "complete", "anthropic")]

        stored = await row_appears(welcome["session_id"], within=2, where=lambda row: row["last_seq"] == 5)
        stats = await database_sync_to_async(session_stats_load)(session_pk=await session_pk(welcome["session_id"]))
        await client.close()
    assert stats is not None
    rebuilt = stats.row(timezone.now())
    # 2 visitor messages; 3 assistant messages (the cut one is kept as interrupted, not failed);
    # each turn: one failed openai call and one failover to anthropic.
    expected = (2, 3, 5, 2, 2, 0, "anthropic")
    keys = ("user_messages", "assistant_messages", "total_messages", "failovers", "provider_errors", "failed_replies")
    assert (*(stored[key] for key in keys), stored["provider"]) == expected
    assert (*(rebuilt[key] for key in keys), rebuilt["provider"]) == expected
    assert len(stored["response_times_ms"]) == 2 and stored["response_times_ms"] == rebuilt["response_times_ms"]
    assert stored["topics_discussed"] == rebuilt["topics_discussed"] == ["billing"]


async def test_feedback_on_one_reply_under_two_spellings_of_its_id_counts_once_as_in_the_database(settings) -> None:
    settings.ANALYTICS_CHECKPOINT_MESSAGES = 1000
    settings.ANALYTICS_CHECKPOINT_SECONDS = 0.2
    client = await connected()
    welcome = await client.hello()
    _, _, end = await client.say(REFUND, "u1")
    # The same UUID in two spellings: the server stores one Feedback row, then replaces it.
    await client.send({"type": "feedback", "message_id": end["message_id"].upper(), "rating": "up"})
    await client.recv_type("feedback.ack")
    await client.send({"type": "feedback", "message_id": end["message_id"].replace("-", ""), "rating": "down"})
    await client.recv_type("feedback.ack")

    await row_appears(welcome["session_id"], within=2, where=lambda row: row["feedback_down"] == 1)
    await asyncio.sleep(0.3)  # any later checkpoint too
    stored = await row_of(welcome["session_id"])
    await client.close()
    assert stored is not None
    assert (stored["feedback_up"], stored["feedback_down"]) == (0, 1)


# --- connections ----------------------------------------------------------------------------
async def test_disconnect_while_a_reply_streams_writes_the_row_with_that_reply_once_it_ends(settings) -> None:
    settings.ANALYTICS_CHECKPOINT_SECONDS = 60
    settings.LOCAL_TOKEN_DELAY_MS = 5
    client = await connected()
    welcome = await client.hello()
    await client.send({"type": "message", "text": EMBED, "client_id": "d1"})
    await client.recv_type("reply.delta")
    await client.close()
    await tracker.drain()
    assert await row_of(welcome["session_id"]) is None  # the final write waits for the reply

    await settle()
    row = await row_of(welcome["session_id"])
    assert row is not None
    assert (row["user_messages"], row["assistant_messages"], row["total_messages"], row["last_seq"]) == (1, 1, 2, 2)
    assert len(row["response_times_ms"]) == 1 and row["unanswered"] is False
    reply = await database_sync_to_async(ChatMessage.objects.get)(session__public_id=welcome["session_id"], seq=2)
    assert reply.status == "complete" and row["response_times_ms"] == [reply.duration_ms]


async def test_two_tabs_of_one_session_count_each_message_once(settings) -> None:
    settings.ANALYTICS_CHECKPOINT_MESSAGES = 1000
    settings.ANALYTICS_CHECKPOINT_SECONDS = 0.2
    tab1 = await connected()
    welcome = await tab1.hello()
    tab2 = await connected()
    await tab2.hello(session_id=welcome["session_id"], token=welcome["token"])
    _, _, first = await tab1.say(REFUND, "a1")
    await tab2.read_reply()
    await tab2.say(EXPORT, "b1")
    await tab1.read_reply()
    await tab2.send({"type": "feedback", "message_id": first["message_id"], "rating": "up"})
    await tab1.recv_type("feedback.ack")

    # Both trackers checkpoint while both tabs are open; neither doubles anything.
    await row_appears(welcome["session_id"], within=2, where=lambda row: row["feedback_up"] > 0)
    await asyncio.sleep(0.3)  # the other tab's checkpoint too
    row = await row_of(welcome["session_id"])
    assert row is not None
    assert (row["user_messages"], row["assistant_messages"], row["total_messages"], row["last_seq"]) == (2, 2, 4, 4)
    assert (row["feedback_up"], row["engagement_score"]) == (1, 2 * 10 + 15)
    assert row["topics_discussed"] == ["billing", "analytics", EXPORT_SECTION]

    await tab1.close()
    await tab2.close()
    await settle()
    row = await row_of(welcome["session_id"])
    assert row is not None
    assert (row["user_messages"], row["assistant_messages"], row["total_messages"], row["feedback_up"]) == (2, 2, 4, 1)


async def test_a_rating_and_an_event_from_one_tab_survive_the_other_tabs_later_checkpoint(settings) -> None:
    settings.ANALYTICS_CHECKPOINT_MESSAGES = 1000
    settings.ANALYTICS_CHECKPOINT_SECONDS = 0.2
    tab1 = await connected()
    welcome = await tab1.hello()
    tab2 = await connected()
    await tab2.hello(session_id=welcome["session_id"], token=welcome["token"])
    await tab1.say(REFUND, "a1")
    await tab2.read_reply()
    await tab1.send({"type": "event", "name": "link_click"})
    await tab1.send({"type": "rating", "score": 5, "resolved": True})
    await tab1.recv_type("rating.ack")
    await tab1.close()
    await settle()
    row = await row_of(welcome["session_id"])
    assert row is not None and (row["satisfaction_rating"], row["resolution"]) == (5, "confirmed")

    # The other tab carries on; its checkpoint must not drop what the first tab did.
    await tab2.say(EXPORT, "b1")
    row = await row_appears(welcome["session_id"], within=2, where=lambda row: row["last_seq"] == 4)
    assert (row["satisfaction_rating"], row["resolution"]) == (5, "confirmed")
    assert [action["name"] for action in row["actions_taken"]] == ["link_click"]
    # 2 messages x 10 + 1 action x 5 + 15 (rating)
    assert row["engagement_score"] == 40
    await tab2.close()


# --- failures and switches ------------------------------------------------------------------
@database_sync_to_async
def rename_table(old: str, new: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {connection.ops.quote_name(old)} RENAME TO {connection.ops.quote_name(new)}")


async def test_failed_analytics_writes_are_logged_chat_goes_on_and_recovery_rebuilds_the_row(
    settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.ANALYTICS_CHECKPOINT_MESSAGES = 1  # every message tries a write
    table = ChatAnalytics._meta.db_table
    await rename_table(table, f"{table}_away")
    try:
        with caplog.at_level(logging.ERROR, logger="analytics"):
            client = await connected()
            welcome = await client.hello()
            frames, first = await turn(client, REFUND, "f1")
            more, second = await turn(client, EXPORT, "f2")
            await client.send({"type": "feedback", "message_id": second["message_id"], "rating": "up"})
            assert await client.recv() == {"type": "feedback.ack", "message_id": second["message_id"], "rating": "up"}
            await client.send({"type": "end"})
            assert await client.recv() == {"type": "ended"}
            assert await client.nothing_more(0.2)
            await client.close()
            await settle()
    finally:
        await rename_table(f"{table}_away", table)

    kinds = [frame["type"] for frame in frames + more]
    assert "error" not in kinds
    assert kinds.count("ack") == 2 and kinds.count("reply.end") == 2
    assert first["status"] == second["status"] == "complete"
    failures = [r for r in caplog.records if r.name == "analytics.tracker" and r.levelno == logging.ERROR]
    assert any("checkpoint" in r.getMessage() for r in failures)
    assert await row_of(welcome["session_id"]) is None

    await database_sync_to_async(call_command)("recover_chat_analytics", "--grace", "0", "--no-progress")
    row = await row_of(welcome["session_id"])
    assert row is not None
    assert (row["user_messages"], row["assistant_messages"], row["last_seq"], row["feedback_up"]) == (2, 2, 4, 1)
    assert (row["closed"], row["resolution"]) == (True, "assumed")


async def test_tracker_switched_off_writes_no_row_and_chat_works(settings) -> None:
    settings.ANALYTICS_TRACKER = False
    settings.ANALYTICS_CHECKPOINT_MESSAGES = 1
    client = await connected()
    welcome = await client.hello()
    _, text, end = await client.say(EXPORT, "o1")
    assert end["status"] == "complete" and "Sources:" in text
    await client.send({"type": "end"})
    await client.recv_type("ended")
    await client.close()
    await settle()
    assert await row_of(welcome["session_id"]) is None
    assert await database_sync_to_async(ChatAnalytics.objects.count)() == 0


async def test_tracker_switched_off_still_starts_the_periodic_sweep_which_fills_the_row(settings) -> None:
    settings.ANALYTICS_TRACKER = False
    settings.ANALYTICS_RECOVERY_INTERVAL_S = 1
    settings.ANALYTICS_RECOVERY_GRACE_S = 0
    try:
        client = await connected()
        welcome = await client.hello()
        await client.say(REFUND, "s1")
        await client.send({"type": "end"})
        await client.recv_type("ended")
        # Off, "only the periodic sweep fills analytics, from the chat tables" (.env.example).
        row = await row_appears(welcome["session_id"], within=3)
        await client.close()
    finally:
        await recovery.stop()
    assert (row["user_messages"], row["assistant_messages"], row["closed"], row["topics_discussed"]) == (
        1,
        1,
        True,
        ["billing"],
    )

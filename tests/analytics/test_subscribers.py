"""Analytics on the event seam: what the tracker and the live feed make of originals and copies.

The consumer-driven tests (test_tracker.py) cover one process; here events are published as
another process's copies would arrive, and a reply outlives the connection that asked for it.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from analytics import live, tracker
from analytics.models import ChatAnalytics
from analytics.subscribers import detached
from analytics.tracker import trackers
from assistant import events
from assistant.models import ChatMessage, ChatSession, SessionRating
from project import runtime

pytestmark = [pytest.mark.django_db(transaction=True)]

QUESTION = "I was charged twice, can I get a refund?"


@database_sync_to_async
def new_session() -> ChatSession:
    return ChatSession.objects.create(public_id=uuid.uuid4(), last_seq=0)


@database_sync_to_async
def row_of(session: ChatSession) -> dict[str, Any] | None:
    return ChatAnalytics.objects.filter(session=session).values().first()


def opened(session: ChatSession, connection: str = "conn-1") -> events.SessionOpened:
    return events.SessionOpened(
        session_pk=session.pk,
        session_id=session.public_id.hex,
        connection=connection,
        created=True,
        started_at=timezone.now().isoformat(),
        user_type="anonymous",
    )


def as_copy(event: events.ChatEvent) -> None:
    """Deliver `event` the way a consumer hands over another process's `chat.event` message."""
    events.receive_copy(event.message("another-process"))


def reply_end(session: ChatSession, seq: int) -> events.ReplyEnded:
    return events.ReplyEnded(
        session_pk=session.pk,
        session_id=session.public_id.hex,
        seq=seq,
        message_id=str(uuid.uuid4()),
        status="complete",
        provider="local",
        model="local",
        ttft_ms=5,
        duration_ms=20,
        cached=False,
    )


def live_events() -> list[dict[str, Any]]:
    feed = runtime.current().peek("analytics.live")
    return [] if feed is None else list(feed.pending)


async def test_copies_from_another_process_are_counted_once_and_not_announced_again() -> None:
    session = await new_session()
    sid = session.public_id.hex
    events.publish(opened(session))
    message = events.MessageStored(session_pk=session.pk, session_id=sid, seq=1, message_id="u1", role="user",
                                   text=QUESTION)  # fmt: skip
    as_copy(message)
    as_copy(message)  # the same copy through a second tab of this process
    as_copy(reply_end(session, 2))
    as_copy(events.SessionRated(session_pk=session.pk, session_id=sid, score=5, resolved=True))
    stats = trackers()[session.pk].stats
    assert stats is not None
    assert (len(stats.user_sentiment), len(stats.replies), stats.rating_score) == (1, 1, 5)
    assert live_events() == []  # the process where they happened announced them

    events.publish(events.ConnectionClosed(session_pk=session.pk, session_id=sid, connection="conn-1"))
    assert session.pk not in trackers()
    await tracker.drain()
    row = await row_of(session)
    assert row is not None and (row["user_messages"], row["assistant_messages"], row["satisfaction_rating"]) == (
        1,
        1,
        5,
    )


async def test_originals_are_announced_to_the_live_feed_once() -> None:
    session = await new_session()
    sid = session.public_id.hex
    events.publish(opened(session))
    events.publish(events.MessageStored(session_pk=session.pk, session_id=sid, seq=1, message_id="u1", role="user",
                                        text=QUESTION))  # fmt: skip
    events.publish(events.FeedbackGiven(session_pk=session.pk, session_id=sid, message_id=str(uuid.uuid4()),
                                        rating="up"))  # fmt: skip
    kinds = [(event["type"], event.get("role")) for event in live_events()]
    assert kinds == [("message", "user"), ("feedback", None)]
    assert all(event["session_id"] == sid for event in live_events())
    await live.drain()


@database_sync_to_async
def store_turn_and_a_rating_from_another_process(session: ChatSession) -> None:
    """What the database holds once the reply is stored and another process's tab rated the chat."""
    user = ChatMessage.objects.create(session=session, seq=1, role="user", text=QUESTION)
    ChatMessage.objects.create(session=session, seq=2, role="assistant", text="Refunds…", reply_to=user,
                               provider="local", duration_ms=20)  # fmt: skip
    SessionRating.objects.create(session=session, score=5, resolved=True)
    ChatSession.objects.filter(pk=session.pk).update(last_seq=2)


async def test_a_reply_outliving_the_last_connection_here_ends_in_a_row_rebuilt_from_the_database() -> None:
    """The tracker left the session's group with its last connection: it missed what other
    processes did meanwhile (here a rating), so the row is rebuilt, not written from memory."""
    session = await new_session()
    sid = session.public_id.hex
    events.publish(opened(session))
    events.publish(events.MessageStored(session_pk=session.pk, session_id=sid, seq=1, message_id="u1", role="user",
                                        text=QUESTION))  # fmt: skip
    events.publish(events.ReplyStarted(session_pk=session.pk, session_id=sid, seq=2, message_id="a2", reply_to=1))
    events.publish(events.ConnectionClosed(session_pk=session.pk, session_id=sid, connection="conn-1"))
    assert session.pk not in trackers() and session.pk in detached()  # waiting for its reply

    await store_turn_and_a_rating_from_another_process(session)
    as_copy(reply_end(session, 2))  # a copy is not this process's reply: still waiting
    assert session.pk in detached()
    events.publish(reply_end(session, 2))
    assert session.pk not in detached()
    await tracker.drain()
    row = await row_of(session)
    assert row is not None
    assert (row["user_messages"], row["assistant_messages"], row["satisfaction_rating"]) == (1, 1, 5)


async def test_a_tab_coming_back_while_the_reply_runs_takes_over_from_the_detached_tracker() -> None:
    session = await new_session()
    sid = session.public_id.hex
    events.publish(opened(session))
    events.publish(events.ReplyStarted(session_pk=session.pk, session_id=sid, seq=2, message_id="a2", reply_to=1))
    events.publish(events.ConnectionClosed(session_pk=session.pk, session_id=sid, connection="conn-1"))
    events.publish(dataclasses.replace(opened(session, "conn-2"), created=False))
    assert session.pk not in detached() and trackers()[session.pk].replies == {2}
    events.publish(events.ConnectionClosed(session_pk=session.pk, session_id=sid, connection="conn-2"))
    assert session.pk in detached()  # still waiting for the same reply
    events.publish(reply_end(session, 2))
    assert session.pk not in detached()
    await tracker.drain()


async def test_shutdown_flushes_every_open_tracker_before_the_sockets_close(settings) -> None:
    settings.ANALYTICS_CHECKPOINT_SECONDS = 3600
    settings.ANALYTICS_CHECKPOINT_MESSAGES = 1000
    session = await new_session()
    sid = session.public_id.hex
    events.publish(opened(session))
    events.publish(events.MessageStored(session_pk=session.pk, session_id=sid, seq=1, message_id="u1", role="user",
                                        text=QUESTION))  # fmt: skip
    await tracker.drain()
    assert await row_of(session) is None  # nothing due yet
    await runtime.current().drain()  # the before_close hook of analytics
    row = await row_of(session)
    assert row is not None and row["user_messages"] == 1
    events.publish(events.ConnectionClosed(session_pk=session.pk, session_id=sid, connection="conn-1"))


async def test_events_of_a_resumed_session_wait_for_its_stored_numbers_then_count() -> None:
    session = await new_session()
    sid = session.public_id.hex
    resumed = dataclasses.replace(opened(session), created=False)
    events.publish(resumed)  # starts loading the stored rows in the background
    tab = trackers()[session.pk]
    assert tab.loading
    events.publish(events.MessageStored(session_pk=session.pk, session_id=sid, seq=1, message_id="u1", role="user",
                                        text=QUESTION))  # fmt: skip
    assert tab.backlog  # not lost, not counted against an empty start either
    await tracker.drain()
    assert not tab.loading and tab.stats is not None and len(tab.stats.user_sentiment) == 1
    events.publish(events.ConnectionClosed(session_pk=session.pk, session_id=sid, connection="conn-1"))
    await tracker.drain()
    row = await row_of(session)
    assert row is not None and row["user_messages"] == 1

"""The chat write path (`assistant.services`), on SQLite and on Postgres, with real threads.

The consumer tests drive these through websockets; here the races are made deliberately:
several threads run `turn_begin` for one session at the same instant.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from django.db import connection
from django.utils import timezone

from assistant import services
from assistant.models import ChatMessage, ChatSession
from assistant.protocol import ClientError

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends]

T = TypeVar("T")


def new_session() -> ChatSession:
    pending = services.session_open(
        session_id=None, token=None, last_seq=0, identity=None, page=services.PageContext()
    ).session
    return services.session_materialize(session=pending)[0]


def outcome(text: str, status: str = "complete", **fields: Any) -> services.ReplyOutcome:
    """A reply outcome with plain defaults; `fields` override any of them."""
    values: dict[str, Any] = {
        "text": text,
        "status": status,
        "provider": "local",
        "model": "bm25",
        "ttft_ms": 1,
        "duration_ms": 2,
        "input_tokens": None,
        "output_tokens": None,
        "cached": False,
        "error_code": "",
        "knowledge_sections": [],
    }
    return services.ReplyOutcome(**(values | fields))


def race(count: int, work: Callable[[int], T]) -> list[T | Exception]:
    """Run `work(i)` in `count` threads released together; each result or exception, in order."""
    barrier = threading.Barrier(count)
    results: list[T | Exception] = [RuntimeError("not run")] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_resends_of_one_client_id_store_one_message() -> None:
    session = new_session()
    results = race(
        6,
        lambda _: services.turn_begin(
            session=ChatSession.objects.get(pk=session.pk), text="How do I embed?", client_id="same"
        ),
    )
    turns = [result for result in results if isinstance(result, services.TurnStarted)]
    assert len(turns) == 6, results  # no IntegrityError, no reply_in_progress for a resend
    assert sum(not turn.duplicate for turn in turns) == 1
    assert {turn.user_message.pk for turn in turns} == {turns[0].user_message.pk}
    assert list(ChatMessage.objects.filter(session=session).values_list("seq", "role")) == [
        (1, "user"),
        (2, "assistant"),
    ]
    assert ChatSession.objects.get(pk=session.pk).last_seq == 2  # the duplicates' seqs were rolled back


def test_concurrent_turns_of_one_session_start_one_reply() -> None:
    session = new_session()
    results = race(
        5,
        lambda i: services.turn_begin(
            session=ChatSession.objects.get(pk=session.pk), text=f"Question {i}", client_id=f"tab-{i}"
        ),
    )
    started = [result for result in results if isinstance(result, services.TurnStarted)]
    refused = [result for result in results if isinstance(result, ClientError)]
    assert len(started) == 1 and len(refused) == 4, results
    assert {error.code for error in refused} == {"reply_in_progress"}
    assert ChatMessage.objects.filter(session=session).count() == 2
    assert ChatSession.objects.get(pk=session.pk).last_seq == 2


def test_a_turn_interrupts_a_reply_whose_writer_died() -> None:
    session = new_session()
    first = services.turn_begin(session=session, text="How do I embed the widget?", client_id="a")
    assert first.assistant_message is not None
    with pytest.raises(ClientError) as refused:
        services.turn_begin(session=session, text="Hello?", client_id="b")
    assert refused.value.code == "reply_in_progress"

    long_ago = timezone.now() - services.stale_before() - timedelta(seconds=1)
    ChatMessage.objects.filter(pk=first.assistant_message.pk).update(updated_at=long_ago)
    second = services.turn_begin(session=session, text="Hello?", client_id="b")
    assert (second.user_message.seq, second.assistant_message.seq) == (3, 4)  # type: ignore[union-attr]
    assert ChatMessage.objects.get(pk=first.assistant_message.pk).status == "interrupted"
    assert second.history == [("user", "How do I embed the widget?")]  # the interrupted reply has no text


def test_the_first_message_titles_the_session_and_a_message_reopens_it() -> None:
    session = new_session()
    long_text = "Can I put the chat widget on two different websites with one Parley install please?"
    turn = services.turn_begin(session=session, text=long_text, client_id="a")
    services.reply_finish(
        message_id=turn.assistant_message.pk,  # type: ignore[union-attr]
        outcome=outcome("Yes."),
    )
    services.session_end(session=session)
    assert ChatSession.objects.get(pk=session.pk).status == "closed"

    later = services.turn_begin(session=session, text="Another question", client_id="b")
    stored = ChatSession.objects.get(pk=session.pk)
    assert stored.title == services.make_title(long_text) == session.title
    assert stored.title.endswith("…") and len(stored.title) <= services.TITLE_CHARS + 1
    assert (stored.status, stored.closed_at, stored.last_seq) == ("active", None, 4)
    assert later.history == [("user", long_text), ("assistant", "Yes.")]


def test_reply_finish_stores_the_outcome_once() -> None:
    session = new_session()
    turn = services.turn_begin(session=session, text="How do I embed the widget?", client_id="a")
    assert turn.assistant_message is not None
    sources = [{"id": "embedding-the-widget#install", "title": "Install", "score": 3.25}]

    measured = {
        "ttft_ms": 12,
        "duration_ms": 40,
        "input_tokens": 7,
        "output_tokens": 30,
        "cached": True,
        "knowledge_sections": sources,
    }
    services.reply_finish(message_id=turn.assistant_message.pk, outcome=outcome("Add one script tag.", **measured))
    services.reply_finish(
        message_id=turn.assistant_message.pk, outcome=outcome("late writer", "interrupted", **measured)
    )
    stored = ChatMessage.objects.get(pk=turn.assistant_message.pk)
    assert (stored.text, stored.status, stored.knowledge_sections) == ("Add one script tag.", "complete", sources)
    assert (stored.ttft_ms, stored.duration_ms, stored.input_tokens, stored.output_tokens, stored.cached) == (
        12,
        40,
        7,
        30,
        True,
    )
    assert stored.finished_at is not None and stored.reply_to_id == turn.user_message.pk
    assert turn.user_message.created_at == ChatMessage.objects.get(pk=turn.user_message.pk).created_at


def test_a_reply_replaced_after_a_provider_failure_is_left_out_of_the_prompt() -> None:
    session = new_session()
    turn = services.turn_begin(session=session, text="How do I embed the widget?", client_id="a")
    assert turn.assistant_message is not None

    replacement = services.reply_failover(
        message_id=turn.assistant_message.pk,
        outcome=outcome("Add one scr", "interrupted", provider="openai", error_code="provider_interrupted"),
        session_pk=session.pk,
        reply_to_id=turn.user_message.pk,
    )
    assert (replacement.seq, replacement.retry_of_id, replacement.status) == (3, turn.assistant_message.pk, "streaming")
    services.reply_finish(message_id=replacement.pk, outcome=outcome("Add one script tag.", provider="openai"))
    later = services.turn_begin(session=ChatSession.objects.get(pk=session.pk), text="Thanks!", client_id="b")
    assert later.user_message.seq == 4
    assert later.history == [("user", "How do I embed the widget?"), ("assistant", "Add one script tag.")]

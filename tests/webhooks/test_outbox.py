"""The outbox is written by the change's own transaction, and costs nothing when no endpoint is active.

These call the chat's services directly (the websocket adds nothing to what is written): a
committed change always has its outbox rows, a rolled-back one never does, and with no active
endpoint the services send exactly the statements they send without the webhooks app at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from assistant import events
from assistant import services as chat
from assistant.handoff import services as handoff
from assistant.models import ChatSession, SessionRating
from project import sql as shared
from webhooks import outbox, payloads, routes, services
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends]


def endpoint(**fields: Any) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(url="https://hooks.example.com/in", secret="whsec_" + "A" * 32, **fields)


def new_session() -> ChatSession:
    pending = chat.session_open(session_id=None, token=None, last_seq=0, identity=None, page=chat.PageContext()).session
    return chat.session_materialize(session=pending)[0]


def finished(text: str = "An answer.") -> chat.ReplyOutcome:
    return chat.ReplyOutcome(
        text=text,
        status="complete",
        provider="local",
        model="bm25",
        ttft_ms=3,
        duration_ms=9,
        input_tokens=12,
        output_tokens=3,
        cached=False,
        error_code="",
        knowledge_sections=[],
    )


def chat_everything(agent: Any) -> ChatSession:
    """Every write that records something: a session, a turn, its reply, feedback twice, a rating,
    a request for a person, a claim, the person's message, the end."""
    session = new_session()
    turn = chat.turn_begin(session=session, text="Hello?", client_id="c1")
    assert turn.assistant_message is not None
    chat.reply_finish(message_id=turn.assistant_message.pk, outcome=finished(), session_pk=session.pk)
    reply_id = str(turn.assistant_message.public_id)
    chat.feedback_upsert(session=session, message_id=reply_id, rating="up", reason="", comment="")
    chat.feedback_upsert(session=session, message_id=reply_id, rating="down", reason="", comment="")
    chat.session_rate(session=session, score=5, resolved=True, comment="")
    handoff.handoff_request(session=session, reason="")
    handoff.claim(session_id=str(session.public_id), agent=agent)
    handoff.agent_message(session_id=str(session.public_id), agent=agent, text="Hi", client_id="a1")
    chat.session_end(session=session)
    return session


def types_written() -> list[str]:
    return list(WebhookDelivery.objects.order_by("pk").values_list("event_type", flat=True))


ALL_CHAT_TYPES = [
    "conversation.started",
    "message.created",
    "message.created",
    "reply.completed",
    "feedback.created",
    "feedback.updated",
    "rating.created",
    "handoff.requested",
    "handoff.assigned",
    "message.created",
    "conversation.closed",
]


def test_every_write_that_commits_has_its_outbox_row(make_agent: Any) -> None:
    endpoint()
    session = chat_everything(make_agent("ada"))

    assert types_written() == ALL_CHAT_TYPES
    rows = list(WebhookDelivery.objects.order_by("pk"))
    assert {row.conversation_id for row in rows} == {str(session.public_id)}
    assert all(row.state == "pending" and row.attempts == 0 for row in rows)
    assert len({row.event_id for row in rows}) == len(rows)
    assert all(json.loads(row.body)["type"] == row.event_type for row in rows)


def test_a_rolled_back_change_leaves_no_outbox_row() -> None:
    endpoint()
    session = new_session()
    assert types_written() == ["conversation.started"]

    def rate_then_fail() -> None:
        with transaction.atomic():
            chat.session_rate(session=session, score=3, resolved=None, comment="")
            raise RuntimeError("the caller's transaction fails after the write")

    with pytest.raises(RuntimeError):
        rate_then_fail()

    assert types_written() == ["conversation.started"]
    assert not SessionRating.objects.exists()


def test_a_failing_durable_subscriber_rolls_the_change_back_with_its_rows() -> None:
    endpoint()
    session = new_session()

    def broken(records: list[events.Record]) -> None:
        raise RuntimeError("a durable subscriber failed")

    events.subscribe_durable(events.RatingSaved, broken)
    try:
        with pytest.raises(RuntimeError, match="durable subscriber"):
            chat.session_rate(session=session, score=3, resolved=None, comment="")
    finally:
        events.recorder.unsubscribe(events.RatingSaved, broken)

    assert not SessionRating.objects.exists()
    assert types_written() == ["conversation.started"]  # the rating's row went with the rating
    chat.session_rate(session=session, score=3, resolved=None, comment="")
    assert types_written() == ["conversation.started", "rating.created"]


@pytest.fixture
def without_webhooks() -> Iterator[None]:
    """The chat as if the webhooks app were not installed: no durable subscriber at all."""
    removed = [(record_type, services.record_chat) for record_type in payloads.BUILDERS]
    for record_type, handler in removed:
        events.recorder.unsubscribe(record_type, handler)
    yield
    for record_type, handler in removed:
        events.subscribe_durable(record_type, handler, active=lambda t=record_type: services.record_wanted(t))


def statements(agent: Any) -> list[str]:
    routes.wanted("message.created")  # the endpoint list is read at most every WEBHOOK_ROUTES_TTL_S
    with CaptureQueriesContext(connection) as queries:
        chat_everything(agent)
    return [query["sql"] for query in queries.captured_queries]


def test_with_no_active_endpoint_the_chat_sends_the_same_statements_as_without_webhooks(
    request: pytest.FixtureRequest, make_agent: Any
) -> None:
    endpoint(active=False)  # configured but switched off
    ada, bob = make_agent("ada"), make_agent("bob")  # both there for both runs: the desk reads every agent
    with_app = statements(ada)
    assert not WebhookDelivery.objects.exists()
    assert not any("webhook" in sql.lower() for sql in with_app)

    request.getfixturevalue("without_webhooks")
    without_app = statements(bob)
    assert len(with_app) == len(without_app)


def test_the_endpoint_list_is_read_once_per_ttl_and_at_once_after_a_save_here(settings: Any) -> None:
    settings.WEBHOOK_ROUTES_TTL_S = 0.3
    assert not routes.wanted("rating.created")
    endpoint(event_types=["rating.created"])  # saved here: seen at once
    assert routes.endpoints_for("rating.created") and not routes.wanted("feedback.created")

    WebhookEndpoint.objects.update(active=False)  # as another process would: no signal here
    assert routes.wanted("rating.created")  # still trusted for the TTL
    with CaptureQueriesContext(connection) as queries:
        for _ in range(100):
            routes.wanted("rating.created")
    assert queries.captured_queries == []
    time.sleep(0.35)
    assert not routes.wanted("rating.created")


def test_emit_queues_an_event_for_the_endpoints_that_want_it_in_the_callers_transaction() -> None:
    alerts = endpoint(event_types=["alert.fired"])
    endpoint(event_types=["message.created"])
    everything = endpoint()

    def emit_then_fail() -> None:
        with transaction.atomic():
            services.emit("alert.fired", {"rule": "cost"})
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        emit_then_fail()
    assert not WebhookDelivery.objects.exists()

    with transaction.atomic():
        services.emit("alert.fired", {"rule": "cost", "at": timezone.now(), "value": 1.5})
    rows = list(WebhookDelivery.objects.order_by("endpoint_id"))
    assert [row.endpoint_id for row in rows] == [alerts.pk, everything.pk]
    assert rows[0].event_id == rows[1].event_id and rows[0].body == rows[1].body
    assert rows[0].conversation_id == ""  # unordered
    body = json.loads(rows[0].body)
    assert body["type"] == "alert.fired" and body["data"]["rule"] == "cost" and isinstance(body["data"]["at"], str)

    with pytest.raises(ValueError, match="unknown webhook event type"):
        services.emit("alert.exploded", {})
    WebhookEndpoint.objects.all().delete()
    services.emit("alert.resolved", {"rule": "cost"})  # nobody wants it: nothing, no error
    assert not WebhookDelivery.objects.exists()


def test_a_row_for_an_endpoint_deleted_meanwhile_does_not_fail_the_chat_and_is_pruned() -> None:
    gone = endpoint()
    routes.wanted("rating.created")  # this process still believes in the endpoint
    table = shared.quote(WebhookEndpoint._meta.db_table)
    shared.execute(f"DELETE FROM {table} WHERE id = %s", [gone.pk])  # another process deleted it

    session = new_session()
    chat.session_rate(session=session, score=2, resolved=False, comment="")

    assert SessionRating.objects.filter(session=session).exists()
    assert WebhookDelivery.objects.filter(endpoint_id=gone.pk).count() == 2
    assert outbox.claim(limit=10, owner="x") == []  # never sent
    assert outbox.prune() == 2 and not WebhookDelivery.objects.exists()


def test_ending_twice_closes_once() -> None:
    endpoint(event_types=["conversation.closed"])
    session = new_session()
    chat.session_end(session=session)
    chat.session_end(session=session)

    assert types_written() == ["conversation.closed"]
    assert ChatSession.objects.get(pk=session.pk).status == "closed"


def test_a_body_that_cannot_be_utf8_is_written_with_ascii_escapes() -> None:
    body = services.encode({"text": "bad \ud800 surrogate", "ok": "café"})
    assert body.isascii() and json.loads(body) == {"text": "bad \ud800 surrogate", "ok": "café"}
    assert services.encode({"ok": "café"}) == '{"ok":"café"}'  # plain UTF-8 otherwise


def test_handoff_records_say_who_took_the_conversation_and_how_and_a_visitor_who_left_closes_it(
    make_agent: Any,
) -> None:
    endpoint(event_types=["handoff.requested", "handoff.assigned", "conversation.closed"])
    ada, bob = make_agent("ada", first_name="Ada"), make_agent("bob", first_name="Bob")
    taken = new_session()
    handoff.claim(session_id=str(taken.public_id), agent=ada)  # nobody asked: a takeover
    handoff.transfer(session_id=str(taken.public_id), agent=ada, to_user_id=bob.pk)
    waiting = new_session()
    handoff.handoff_request(session=waiting, reason="a person")
    later = timezone.now() + timedelta(minutes=5)
    assert handoff.abandon_left(session_pk=waiting.pk, left_at=later, now=later).session is not None

    bodies = [json.loads(body) for body in WebhookDelivery.objects.order_by("pk").values_list("body", flat=True)]
    assert [(b["type"], b["data"]["conversation_id"]) for b in bodies] == [
        ("handoff.assigned", str(taken.public_id)),
        ("handoff.assigned", str(taken.public_id)),
        ("handoff.requested", str(waiting.public_id)),
        ("conversation.closed", str(waiting.public_id)),
    ]
    takeover, transfer, requested, closed = (b["data"] for b in bodies)
    assert (takeover["kind"], takeover["previous_state"]) == ("takeover", "ai")
    assert takeover["agent"] == takeover["by"] == {"id": ada.pk, "name": "Ada"}
    assert (transfer["kind"], transfer["agent"]["name"], transfer["by"]["name"], transfer["previous_agent_id"]) == (
        "transfer",
        "Bob",
        "Ada",
        ada.pk,
    )
    assert (requested["state"], requested["reason"]) == ("waiting", "a person")
    assert closed["reason"] == "abandoned"

"""The Django admin pages for sessions, messages and what visitors said about them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from assistant.models import ChatEvent, ChatMessage, ChatSession, Feedback, SessionRating

pytestmark = pytest.mark.django_db


@dataclass
class Conversation:
    session: ChatSession
    question: ChatMessage
    answer: ChatMessage
    feedback: Feedback
    rating: SessionRating
    event: ChatEvent
    closed: ChatSession


@pytest.fixture
def conversation() -> Conversation:
    """An active session with two messages, feedback, a rating and an event, plus a closed one."""
    session = ChatSession.objects.create(token_hash="a" * 64, title="Refund for order 42", last_seq=2)
    question = ChatMessage.objects.create(
        session=session, seq=1, role=ChatMessage.Role.USER, text="Where is my refund for order 42", client_id="c-1"
    )
    answer = ChatMessage.objects.create(
        session=session,
        seq=2,
        role=ChatMessage.Role.ASSISTANT,
        text="Refunds reach your card within five working days",
        reply_to=question,
        provider="local",
        model="knowledge-base",
        ttft_ms=12,
        duration_ms=80,
    )
    feedback = Feedback.objects.create(message=answer, session=session, rating=Feedback.Rating.UP, reason="helpful")
    rating = SessionRating.objects.create(session=session, score=4, resolved=True, comment="Quick answer")
    event = ChatEvent.objects.create(session=session, name="widget.open", data={"page": "/help"})
    closed = ChatSession.objects.create(
        token_hash="b" * 64, title="Shipping delay to Lisbon", status=ChatSession.Status.CLOSED, last_seq=0
    )
    return Conversation(session, question, answer, feedback, rating, event, closed)


def changelist(model: str) -> str:
    return reverse(f"admin:assistant_{model}_changelist")


def change(model: str, pk: int) -> str:
    return reverse(f"admin:assistant_{model}_change", args=[pk])


def listed_titles(response: HttpResponse) -> list[str]:
    return [session.title for session in response.context["cl"].result_list]


@pytest.mark.parametrize("model", ["chatsession", "chatmessage", "feedback", "sessionrating", "chatevent"])
def test_changelist_renders_for_superuser(admin_client: Client, conversation: Conversation, model: str) -> None:
    response = admin_client.get(changelist(model))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("model", "attribute"),
    [
        ("chatsession", "session"),
        ("chatmessage", "answer"),
        ("feedback", "feedback"),
        ("sessionrating", "rating"),
        ("chatevent", "event"),
    ],
)
def test_change_page_renders_for_superuser(
    admin_client: Client, conversation: Conversation, model: str, attribute: str
) -> None:
    response = admin_client.get(change(model, getattr(conversation, attribute).pk))
    assert response.status_code == 200


def test_session_changelist_shows_message_counts(admin_client: Client, conversation: Conversation) -> None:
    response = admin_client.get(changelist("chatsession"))
    counts = {session.title: session._message_count for session in response.context["cl"].result_list}
    assert counts == {"Refund for order 42": 2, "Shipping delay to Lisbon": 0}


def test_session_change_page_shows_messages_inline(admin_client: Client, conversation: Conversation) -> None:
    response = admin_client.get(change("chatsession", conversation.session.pk))
    content = response.content.decode()
    assert "Where is my refund for order 42" in content
    assert "Refunds reach your card within five working days" in content
    assert "Quick answer" in content  # the rating inline


def test_session_change_page_offers_no_message_add_row(admin_client: Client, conversation: Conversation) -> None:
    response = admin_client.get(change("chatsession", conversation.session.pk))
    formset = next(
        inline.formset for inline in response.context["inline_admin_formsets"] if inline.formset.model is ChatMessage
    )
    assert formset.total_form_count() == 2


def test_session_changelist_search_finds_session_by_title(admin_client: Client, conversation: Conversation) -> None:
    response = admin_client.get(changelist("chatsession"), {"q": "refund"})
    assert response.status_code == 200
    assert listed_titles(response) == ["Refund for order 42"]
    assert "Shipping delay to Lisbon" not in response.content.decode()


def test_session_changelist_filters_by_status(admin_client: Client, conversation: Conversation) -> None:
    response = admin_client.get(changelist("chatsession"), {"status__exact": "closed"})
    assert response.status_code == 200
    assert listed_titles(response) == ["Shipping delay to Lisbon"]
    assert "Refund for order 42" not in response.content.decode()


def test_message_changelist_search_finds_message_by_text(admin_client: Client, conversation: Conversation) -> None:
    response = admin_client.get(changelist("chatmessage"), {"q": "five working days"})
    assert [message.pk for message in response.context["cl"].result_list] == [conversation.answer.pk]


def test_admin_changelist_redirects_anonymous_visitor_to_login(client: Client, conversation: Conversation) -> None:
    response = client.get(changelist("chatsession"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("model", ["contactrequest", "handoff"])
def test_handoff_records_list_and_open_for_superuser_without_editing_what_happened(
    admin_client: Client, conversation: Conversation, model: str
) -> None:
    from django.utils import timezone

    from assistant.models import ContactRequest, Handoff

    record = (
        ContactRequest.objects.create(session=conversation.session, email="ana@example.com", message="Call me")
        if model == "contactrequest"
        else Handoff.objects.create(session=conversation.session, reason="billing", requested_at=timezone.now())
    )
    assert admin_client.get(changelist(model)).status_code == 200
    page = admin_client.get(change(model, record.pk))
    assert page.status_code == 200
    if model == "contactrequest":
        assert b'name="email"' not in page.content  # what the visitor said is fixed
        assert b'name="handled_at_0"' in page.content  # staff mark a call-back as done
    else:
        assert b'name="_save"' not in page.content and b'name="reason"' not in page.content
    assert admin_client.get(reverse(f"admin:assistant_{model}_add")).status_code == 403


def test_who_answers_a_session_cannot_be_edited_in_the_admin(admin_client: Client, conversation: Conversation) -> None:
    page = admin_client.get(change("chatsession", conversation.session.pk))
    assert page.status_code == 200
    assert b'name="handoff_state"' not in page.content and b'name="assigned_agent"' not in page.content


def test_handoff_records_are_not_shown_to_anonymous_visitors(client: Client) -> None:
    for model in ("contactrequest", "handoff"):
        response = client.get(changelist(model))
        assert response.status_code == 302 and "/login/" in response["Location"]

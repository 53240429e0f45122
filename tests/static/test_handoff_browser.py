"""Human handoff end to end in two browsers: a visitor's widget and an agent's desk (issue 15).

Two Playwright contexts in Debian's chromium against one real daphne server (`manage.py serve`)
on the test database: the visitor on the demo page asks for a person; the agent sees it appear
live, claims it, types (the visitor sees "typing"), replies (the visitor sees the agent's
name); the visitor's next message gets no AI reply; the agent hands back and the AI answers
again. With nobody available the visitor gets the offline form and the contact request is
stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from assistant.models import ChatMessage, ChatSession, ContactRequest, Handoff
from tests.static import test_desk_browser as desk
from tests.static import test_widget_browser as widget
from tests.support.live import daphne

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True)]

browser = widget.browser
agent = desk.agent
tid = widget.tid


@pytest.fixture(scope="module")
def server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """The site, its AI replies paced at 5 ms a word so that they stream."""
    with django_db_blocker.unblock(), daphne({"LOCAL_TOKEN_DELAY_MS": "5"}) as base:
        yield base


@pytest.fixture
def pages(browser: Any) -> Iterator[tuple[Any, Any]]:
    """(the visitor's page, the agent's page): two contexts, nothing shared (cookies, storage)."""
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(2)]
    pages = []
    for context in contexts:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error, errors=errors: errors.append(f"uncaught: {error}"))
        page.errors = errors  # type: ignore[attr-defined]
        pages.append(page)
    yield pages[0], pages[1]
    for context in contexts:
        context.close()


def replies(page: Any) -> Any:
    """The AI's complete replies (a person's messages show in the same place, with their name)."""
    return page.locator(f'{tid("parley-message")}[data-role="assistant"][data-status="complete"]').filter(
        has_not=page.locator(tid("parley-agent-name"))
    )


def test_a_visitor_asks_for_a_person_gets_one_and_gets_the_ai_back(pages: Any, server: str, agent: Any) -> None:
    visitor, desk_page = pages
    http = server.replace("ws://", "http://")
    desk.sign_in(desk_page, http)
    desk_page.get_by_role("switch", name="Available for new conversations").check()
    desk_page.locator("#desk[data-available=yes]").wait_for(state="attached")

    # The visitor talks to the AI, then asks for a person from the header menu.
    widget.open_widget(visitor, http)
    widget.ask(visitor, "How do I embed the widget?")
    widget.wait_replies(visitor, 1)
    visitor.locator(tid("parley-menu")).click()
    visitor.locator(tid("parley-talk-to-person")).click()
    visitor.locator(f'{tid("parley-handoff-status")}:has-text("number 1 in the queue")').wait_for()
    sid = str(ChatSession.objects.get().public_id)

    # The agent sees it appear live, opens it (the AI's part included) and claims it.
    item = desk_page.locator(f'#dk-waiting .dk-item[data-session="{sid}"]')
    item.wait_for(timeout=10_000)
    item.click()
    log = desk_page.locator("#dk-log")
    log.locator('[data-role="assistant"][data-status="complete"]').wait_for()
    desk_page.locator('[data-action="claim"]').click()
    desk_page.locator("#dk-state", has_text="Assigned to you").wait_for()
    visitor.locator(f'{tid("parley-handoff-status")}:has-text("Ada joined the chat.")').wait_for()

    # The agent types: the visitor sees it; the agent sends: the visitor sees Ada's name on it.
    composer = desk_page.locator("#dk-text")
    composer.press_sequentially("Hi, I am Ada from support.")
    typing = visitor.locator(tid("parley-agent-typing"))
    typing.wait_for(state="visible")
    assert typing.inner_text() == "Ada is typing\u2026"
    composer.press("Enter")
    answer = visitor.locator(tid("parley-message"), has_text="Hi, I am Ada from support.")
    answer.wait_for()
    assert answer.locator(tid("parley-agent-name")).inner_text() == "Ada"
    spoken = "node => getComputedStyle(node.querySelector('.bubble'), '::before').content"
    assert answer.evaluate(spoken) == '"Ada: "'  # screen readers hear who wrote it
    typing.wait_for(state="hidden")
    widget.shot(visitor, "handoff-visitor")

    # The visitor's next message reaches the agent, and no AI reply starts.
    widget.ask(visitor, "Thanks! Where is my order 1234?")
    log.locator('[data-role="user"]', has_text="order 1234").wait_for()
    visitor.wait_for_timeout(1_000)  # an AI reply at 5 ms a word would have begun by now
    assert replies(visitor).count() == 1
    session = ChatSession.objects.get(public_id=sid)
    assert [m.role for m in ChatMessage.objects.filter(session=session).order_by("seq")] == [
        "user",
        "assistant",
        "agent",
        "user",
    ]
    widget.shot(desk_page, "handoff-desk")

    # Handed back: the visitor is told, and the AI answers again.
    desk_page.locator('[data-action="handback"]').click()
    desk_page.locator("#dk-state", has_text="AI").wait_for()
    visitor.locator(f'{tid("parley-handoff-status")}:has-text("The assistant is answering again")').wait_for()
    widget.ask(visitor, "How do I scale Parley?")
    replies(visitor).nth(1).wait_for(timeout=15_000)
    assert list(Handoff.objects.values_list("outcome", flat=True)) == ["handed_back"]
    assert visitor.errors == [] and desk_page.errors == []  # type: ignore[attr-defined]


def test_with_nobody_available_the_visitor_leaves_contact_details(pages: Any, server: str, agent: Any) -> None:
    visitor, desk_page = pages
    http = server.replace("ws://", "http://")
    desk.sign_in(desk_page, http)  # at the desk, but not available for new conversations
    widget.open_widget(visitor, http)
    widget.ask(visitor, "Can I talk to a human, please?")
    widget.wait_replies(visitor, 1)
    visitor.locator(tid("parley-handoff-offer")).click()
    visitor.locator(tid("parley-offline-form")).wait_for()
    visitor.locator(tid("parley-contact-email")).fill("kim@example.com")
    visitor.locator(tid("parley-contact-message")).fill("Please email me about my invoice.")
    visitor.locator(tid("parley-contact-submit")).click()
    visitor.locator(tid("parley-contact-thanks")).wait_for()
    contact = ContactRequest.objects.get()
    assert (contact.email, contact.message) == ("kim@example.com", "Please email me about my invoice.")
    assert list(Handoff.objects.values_list("outcome", flat=True)) == ["unavailable"]
    assert desk_page.locator("#dk-waiting .dk-item").count() == 0  # nobody was queued
    assert visitor.errors == [] and desk_page.errors == []  # type: ignore[attr-defined]

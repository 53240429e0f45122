"""The agent desk (`/desk/`) in a real browser.

Debian's chromium through Playwright against a real daphne server (`manage.py serve`) on the
test database, as in `test_dashboard_browser` (whose chromium fixture this module reuses). An
agent who is not staff signs in through the desk's sign-in form; the visitor is a plain
websocket client speaking `/ws/chat/` to the same server. The screenshot goes to
`test-artifacts/screenshots/desk.png`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from websockets.sync.client import ClientConnection, connect

from assistant.models import ChatMessage, ChatSession, Handoff, InternalNote
from tests.assistant.handoff.conftest import support_agents
from tests.static import test_widget_browser as widget
from tests.support.live import daphne

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True)]

browser = widget.browser
AGENT = ("ada", "correct-horse-agent-1")


@pytest.fixture(scope="module")
def server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """The site, its AI replies paced at 15 ms a word so that they stream."""
    with django_db_blocker.unblock(), daphne({"LOCAL_TOKEN_DELAY_MS": "15"}) as base:
        yield base


@pytest.fixture(scope="module")
def small_frames_server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """The site sending frames of at most 24 KiB: a long transcript and a long queue are cut."""
    env = {"CHAT_MAX_FRAME_BYTES": "24576", "HANDOFF_ABANDON_AFTER_S": "0", "HANDOFF_NOTIFY_AFTER_S": "0"}
    with django_db_blocker.unblock(), daphne(env) as base:
        yield base


@pytest.fixture
def agent() -> Any:
    """An agent (the Support agents group) who is not staff."""
    user = get_user_model().objects.create_user(AGENT[0], "ada@example.com", AGENT[1], first_name="Ada")
    user.groups.add(support_agents())
    return user


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A 1280×800 page whose console errors and uncaught exceptions land in `page.errors`."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


class Visitor:
    """A visitor's tab: `/ws/chat/` frames over a plain websocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    def send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def next(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            frame = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            self.seen.append(frame)
            if frame["type"] == kind:
                return frame


def sign_in(page: Any, http: str) -> None:
    """Through the desk's sign-in form (the admin's only admits staff)."""
    page.goto(f"{http}/desk/")
    page.wait_for_url("**/desk/login/?next=/desk/")
    page.fill("#id_username", AGENT[0])
    page.fill("#id_password", AGENT[1])
    page.click("input[type=submit]")
    page.wait_for_url(f"{http}/desk/")
    page.locator("#desk[data-ready][data-connection=live]").wait_for(state="attached", timeout=10_000)


def test_an_agent_sees_a_visitor_wait_claims_answers_notes_and_resolves(page: Any, server: str, agent: Any) -> None:
    http = server.replace("ws://", "http://")
    sign_in(page, http)
    page.get_by_role("switch", name="Available for new conversations").check()
    page.locator("#desk[data-available=yes]").wait_for(state="attached")

    with connect(f"{server}/ws/chat/") as ws:
        visitor = Visitor(ws)
        visitor.send({"type": "hello"})
        sid = visitor.next("welcome")["session_id"]
        visitor.send({"type": "message", "text": "My parcel never arrived", "client_id": "v1"})
        visitor.next("reply.end")
        visitor.send({"type": "handoff", "reason": "parcel"})
        assert visitor.next("handoff.status")["state"] == "waiting"

        # The conversation appears in the waiting queue, live, its wait ticking.
        item = page.locator(f'#dk-waiting .dk-item[data-session="{sid}"]')
        item.wait_for(timeout=10_000)
        assert page.locator("#dk-waiting-count").text_content() == "1"
        first_wait = item.locator(".dk-wait").text_content()
        page.wait_for_function(
            "([sid, first]) => document.querySelector(`#dk-waiting [data-session='${sid}'] .dk-wait`)"
            ".textContent !== first",
            arg=[sid, first_wait],
            timeout=3_000,
        )
        assert "New conversation waiting" in (page.locator("#dk-announce").text_content() or "")

        # Opened: the whole transcript, the AI's part included; then claimed.
        item.click()
        log = page.locator("#dk-log")
        log.locator('[data-role="user"]', has_text="My parcel never arrived").wait_for()
        assert log.locator('[data-role="assistant"][data-status="complete"]').count() == 1
        assert page.locator("#dk-title").evaluate("node => node === document.activeElement")
        assert page.locator("#dk-state").text_content() == "Waiting for a person"
        assert page.locator('[data-action="resolve"]').is_disabled()
        page.locator('[data-action="claim"]').click()
        page.locator("#dk-state", has_text="Assigned to you").wait_for()
        assert visitor.next("handoff.status")["agent"] == {"name": "Ada"}
        page.locator(f'#dk-mine .dk-item[data-session="{sid}"]').wait_for()
        assert page.locator("#dk-text").evaluate("node => node === document.activeElement")

        # The visitor types and writes; the desk shows both live.
        visitor.send({"type": "typing", "state": "start"})
        page.locator("#dk-typing", has_text="is typing").wait_for()
        visitor.send({"type": "message", "text": "Hello? Anyone there?", "client_id": "v2"})
        log.locator('[data-role="user"]', has_text="Anyone there?").wait_for()

        # The agent answers: Enter sends (Shift+Enter is a new line); stored as role=agent.
        page.locator("#dk-text").fill("Hi, I am Ada.")
        page.locator("#dk-text").press("Shift+Enter")
        page.locator("#dk-text").type("Let me look into it.")
        assert visitor.next("typing")["name"] == "Ada"
        page.locator("#dk-text").press("Enter")
        sent = log.locator('[data-role="agent"][data-seq]', has_text="Let me look into it.")
        sent.wait_for()
        assert sent.get_attribute("data-status") == "complete" and log.locator(".dk-outgoing").count() == 0
        shown = visitor.next("message")
        assert (shown["role"], shown["text"]) == ("agent", "Hi, I am Ada.\nLet me look into it.")
        assert log.locator('[data-role="agent"]').count() == 1  # its live copy is the same seq
        stored = ChatMessage.objects.get(session__public_id=sid, role=ChatMessage.Role.AGENT)
        assert stored.text == "Hi, I am Ada.\nLet me look into it." and stored.author_name == "Ada"

        # The connection drops: the state shows, a message waits "sending…" and goes out once
        # the desk is back (the same client_id: stored once).
        page.context.set_offline(True)
        page.locator("#desk:not([data-connection=live])").wait_for(state="attached")
        assert "reconnecting" in (page.locator("#dk-conn-text").text_content() or "").lower()
        page.locator("#dk-text").fill("Still here.")
        page.locator("#dk-text").press("Enter")
        assert log.locator('.dk-outgoing[data-status="pending"]', has_text="Still here.").count() == 1
        page.context.set_offline(False)
        log.locator('[data-role="agent"][data-seq]', has_text="Still here.").wait_for(timeout=10_000)
        assert page.locator("#dk-conn-text").text_content() == "Connected"
        assert visitor.next("message")["text"] == "Still here."
        assert ChatMessage.objects.filter(session__public_id=sid, role=ChatMessage.Role.AGENT).count() == 2

        # An internal note: shown as one, stored, never the visitor's.
        page.get_by_label("Internal note", exact=True).check()
        page.locator("#dk-text").fill("Carrier says: lost in Lyon.")
        page.locator("#dk-text").press("Enter")
        log.locator('.dk-note[data-role="note"]', has_text="lost in Lyon").wait_for()
        assert InternalNote.objects.get(session__public_id=sid).text == "Carrier says: lost in Lyon."
        page.get_by_label("Reply to visitor").check()
        widget.shot(page, "desk")

        # Resolved: the visitor is told, the queue and the buttons follow.
        page.locator('[data-action="resolve"]').click()
        page.locator("#dk-state", has_text="Resolved").wait_for()
        assert visitor.next("handoff.status")["state"] == "ended"
        assert not any("lost in Lyon" in json.dumps(frame) for frame in visitor.seen)
        page.locator("#dk-mine .dk-empty").wait_for()
        assert page.locator('[data-action="claim"]').text_content() == "Take over"
        assert page.locator('[data-action="resolve"]').is_disabled()
        assert ChatSession.objects.get(public_id=sid).handoff_state == ChatSession.Handoff.RESOLVED
    assert page.errors == []  # type: ignore[attr-defined]


def test_analytics_markdown_and_a_narrow_screen(page: Any, server: str, agent: Any) -> None:
    """A conversation frame with `analytics` shows its panel; replies go through ParleyMarkdown."""
    http = server.replace("ws://", "http://")
    sign_in(page, http)
    page.evaluate(
        """() => {
            window.ParleyMarkdown = {render: (text, node) => {
                node.textContent = "";
                const strong = document.createElement("strong");
                strong.textContent = text;
                node.append(strong);
            }};
            window.ParleyDesk.conversation.show({
                type: "conversation", session_id: "00000000-0000-0000-0000-000000000001", state: "ai",
                agent: null, title: "Refund", visitor: {name: "<b>Bo</b>", page_url: "javascript:alert(1)"},
                messages: [
                    {seq: 1, role: "user", text: "<img src=x onerror=alert(1)>", status: "complete"},
                    {seq: 2, role: "assistant", text: "**Sure**", status: "complete"},
                ],
                notes: [], earlier_sessions: [],
                analytics: {topics: ["refunds", "billing"], sentiment: -0.5, resolution: "unresolved",
                            escalated: true, feedback: {up: 2, down: 1}, satisfaction: null},
            });
        }"""
    )
    panel = page.locator("#dk-analytics")
    assert panel.locator(".dk-tags li").all_text_contents() == ["refunds", "billing"]
    assert "negative (-0.50)" in panel.text_content()
    assert "unresolved" in panel.text_content() and "2 up, 1 down" in panel.text_content()
    assert page.locator('#dk-log [data-role="assistant"] .dk-body strong').text_content() == "**Sure**"
    assert page.locator('#dk-log [data-role="user"] .dk-body').text_content() == "<img src=x onerror=alert(1)>"
    assert page.locator("#dk-log img, #dk-side a[href^=javascript]").count() == 0
    page.set_viewport_size({"width": 420, "height": 800})
    for region in ("#dk-queue", "#dk-conv", "#dk-side"):
        box = page.locator(region).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 420, region
    widget.shot(page, "desk-narrow")
    assert page.errors == []  # type: ignore[attr-defined]


def waiting_session(title: str, *, messages: int, requested_at: Any) -> ChatSession:
    """A conversation waiting for a person, its `messages` alternating visitor and AI, 600 characters each."""
    session = ChatSession.objects.create(
        token_hash="d" * 64, title=title, last_seq=messages, handoff_state=ChatSession.Handoff.WAITING
    )
    ChatMessage.objects.bulk_create(
        ChatMessage(
            session=session,
            seq=seq,
            role=ChatMessage.Role.USER if seq % 2 else ChatMessage.Role.ASSISTANT,
            text=f"Message {seq:03d} " + "x" * 588,
        )
        for seq in range(1, messages + 1)
    )
    Handoff.objects.create(session=session, requested_at=requested_at, requested_after_seq=messages)
    return session


def test_a_long_conversation_pages_back_to_its_first_message_and_a_long_queue_counts_all(
    page: Any, small_frames_server: str, agent: Any
) -> None:
    """120 messages of 600 characters do not fit a 24 KiB frame: the desk pages back with `history`
    until every seq is shown once, in order; 81 waiting do not fit either: the count says 81."""
    now = timezone.now()
    long = waiting_session("A long story", messages=120, requested_at=now - timedelta(hours=1))
    for n in range(80):
        waiting_session(f"Waiting visitor {n}", messages=0, requested_at=now - timedelta(minutes=50 - n / 2))
    http = small_frames_server.replace("ws://", "http://")
    sign_in(page, http)

    waiting = page.locator("#dk-waiting")
    assert page.locator("#dk-waiting-count").text_content() == "81"
    shown = waiting.locator(".dk-item").count()
    assert 0 < shown < 81
    assert waiting.locator("li").last.text_content() == f"{81 - shown} more not shown"

    waiting.locator(f'.dk-item[data-session="{long.public_id}"]').click()
    log = page.locator("#dk-log")
    log.locator('[data-seq="120"]').wait_for()
    more = log.get_by_role("button", name="Show earlier messages")
    assert more.is_visible()
    assert log.locator("li").first.locator("button").count() == 1  # at the top of the transcript

    def seqs() -> list[int]:
        return log.locator("[data-seq]").evaluate_all("nodes => nodes.map((node) => Number(node.dataset.seq))")

    assert seqs()[0] > 1 and seqs()[-1] == 120
    pages = 0
    while more.count() and pages < 20:
        pages += 1
        lowest = seqs()[0]
        anchor = log.locator(f'[data-seq="{lowest}"]')
        more.scroll_into_view_if_needed()
        top = anchor.bounding_box()["y"]
        more.click()
        page.wait_for_function(
            "lowest => Number(document.querySelector('#dk-log [data-seq]').dataset.seq) < lowest",
            arg=lowest,
            timeout=10_000,
        )
        # The earlier messages go above: what was on screen stays where it was.
        assert abs(anchor.bounding_box()["y"] - top) <= 2
    assert more.count() == 0 and pages > 1  # several pages of `history`
    assert seqs() == list(range(1, 121))
    assert log.locator('[data-seq="1"]').text_content().count("Message 001") == 1
    assert page.errors == []  # type: ignore[attr-defined]


def test_an_error_about_another_conversation_leaves_the_pending_action_waiting(
    page: Any, server: str, agent: Any
) -> None:
    """Buttons stay disabled while a claim awaits its ack, whatever errors other conversations get."""
    http = server.replace("ws://", "http://")
    sign_in(page, http)
    disabled = page.evaluate(
        """() => {
            const sid = "00000000-0000-0000-0000-000000000002";
            const conversation = window.ParleyDesk.conversation;
            conversation.show({
                type: "conversation", session_id: sid, state: "waiting", agent: null, title: "Pending",
                visitor: {name: "Bo"}, messages: [{seq: 1, role: "user", text: "Hi", status: "complete"}],
                truncated: false, notes: [], earlier_sessions: [], analytics: null,
            });
            const claim = document.querySelector('[data-action="claim"]');
            const states = [claim.disabled];
            claim.click();
            states.push(claim.disabled);
            conversation.error({type: "error", code: "forbidden", detail: "No.", session_id: "another"});
            states.push(claim.disabled);
            conversation.error({type: "error", code: "not_found", detail: "No such conversation.", session_id: sid});
            states.push(claim.disabled);
            return states;
        }"""
    )
    assert disabled == [False, True, True, False]

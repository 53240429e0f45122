"""The embeddable widget (`static/assistant/widget.js`) in a real browser.

Debian's chromium, driven by Playwright, against real daphne servers (`manage.py serve`) on the
test database. Playwright's CSS locators pierce the widget's open Shadow DOM, so the tests use
the widget's `data-testid` hooks. Screenshots of the main states go to
`test-artifacts/screenshots/`; the README shows two of them, copied into docs/screenshots
(`cp test-artifacts/screenshots/02-answer.png docs/screenshots/widget-answer.png`, and
`04-mobile.png` as `widget-mobile.png`, when the widget's look changes).
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from analytics.models import ChatAnalytics
from assistant.access import identity_signature
from assistant.models import ChatEvent, ChatMessage, ChatSession, Feedback, SessionRating
from tests.support.fake_vendors import FakeVendor
from tests.support.live import ROOT, daphne, daphne_process, free_port
from tests.support.relay import Relay

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-artifacts" / "screenshots"
QUICK = "How do I embed the widget?"
W = "[data-testid={}]"


def tid(name: str) -> str:
    return W.format(name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for the module.

    Playwright's sync API keeps an event loop in this thread for as long as it runs, so Django
    would take the tests' plain sync ORM calls (and the database flush between tests) for
    async code: DJANGO_ALLOW_ASYNC_UNSAFE says they are not, until the browser is closed.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # Chromium 156 blocks loopback websockets from other origins without this switch.
            args=["--no-sandbox", "--disable-features=LocalNetworkAccessChecks"],
        )
        yield instance
        instance.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    yield page
    context.close()


@pytest.fixture(scope="module")
def server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """The demo site, replies paced at 30 ms a word so that streaming and stop are visible."""
    with django_db_blocker.unblock(), daphne({"LOCAL_TOKEN_DELAY_MS": "30"}) as base:
        yield base.replace("ws://", "http://")


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def open_widget(page: Any, base: str) -> None:
    page.goto(f"{base}/")
    page.locator(tid("parley-launcher")).click()
    page.locator(tid("parley-panel")).wait_for(state="visible")


def last_reply(page: Any) -> Any:
    return page.locator(f'{tid("parley-message")}[data-role="assistant"]').last


def wait_reply_status(page: Any, status: str, timeout: float = 15_000) -> Any:
    reply = page.locator(f'{tid("parley-message")}[data-role="assistant"][data-status="{status}"]').last
    reply.wait_for(timeout=timeout)
    return reply


def test_quick_reply_streams_an_answer_and_a_reload_restores_it(page: Any, server: str) -> None:
    open_widget(page, server)
    shot(page, "01-open")
    page.locator(tid("parley-quick-reply"), has_text=QUICK).click()
    # The answer streams in: the text grows before the reply ends.
    first = last_reply(page).locator(tid("parley-text"))
    first.wait_for()
    page.wait_for_function(
        """() => {
            const host = document.querySelector("parley-widget") || document.querySelector("[data-parley-host]");
            const m = [...host.shadowRoot.querySelectorAll('[data-testid=parley-message][data-role=assistant]')].pop();
            return m && m.textContent.length > 20 && m.dataset.status === "streaming";
        }"""
    )
    reply = wait_reply_status(page, "complete")
    text = reply.locator(tid("parley-text")).inner_text()
    assert "script" in text and reply.locator(tid("parley-sources")).count() == 1
    assert page.locator(f'{tid("parley-message")}[data-role="user"]').last.inner_text().strip().endswith(QUICK)
    shot(page, "02-answer")

    page.reload()
    page.locator(tid("parley-launcher")).click()
    restored = wait_reply_status(page, "complete")
    assert restored.locator(tid("parley-text")).inner_text() == text
    assert ChatMessage.objects.filter(role="user", text=QUICK).count() == 1  # nothing sent twice


def test_stop_mid_stream_keeps_the_partial_answer(page: Any, server: str) -> None:
    open_widget(page, server)
    page.locator(tid("parley-input")).fill("How do I scale Parley?")
    page.locator(tid("parley-send")).click()
    wait_reply_status(page, "streaming")
    page.locator(tid("parley-stop")).click()
    reply = wait_reply_status(page, "stopped")
    assert reply.locator(tid("parley-text")).inner_text()
    stored = ChatMessage.objects.filter(role="assistant").latest("seq")
    assert stored.status == "stopped" and stored.text


def test_thumbs_up_then_end_the_chat_and_rate_it(page: Any, server: str) -> None:
    open_widget(page, server)
    page.locator(tid("parley-quick-reply")).first.click()
    reply = wait_reply_status(page, "complete")
    up = reply.locator(tid("parley-thumb-up"))
    up.click()
    page.wait_for_function(
        """() => {
            const host = document.querySelector("parley-widget") || document.querySelector("[data-parley-host]");
            const b = [...host.shadowRoot.querySelectorAll('[data-testid=parley-thumb-up]')].pop();
            return b && b.getAttribute("aria-pressed") === "true";
        }"""
    )
    page.locator(tid("parley-end")).click()
    page.locator(tid("parley-rating")).wait_for()
    shot(page, "03-rating")
    page.locator(f'{tid("parley-star")}[data-score="4"]').click()
    page.locator(tid("parley-resolved-yes")).click()
    page.locator(tid("parley-rating-submit")).click()
    page.locator(tid("parley-rating-thanks")).wait_for()
    assert Feedback.objects.get().rating == "up"
    rating = SessionRating.objects.get()
    assert (rating.score, rating.resolved) == (4, True)


def test_a_widget_conversation_shows_up_in_chat_analytics(page: Any, server: str) -> None:
    """Issue 5's "done when": what a visitor does in the widget lands in ChatAnalytics, right."""
    open_widget(page, server)  # widget_open
    page.locator(tid("parley-quick-reply"), has_text=QUICK).click()  # quick_reply + message 1
    first = wait_reply_status(page, "complete")
    first.locator(tid("parley-thumb-up")).click()
    page.evaluate("() => window.Parley.track('escalate', {from: 'host page'})")
    page.locator(tid("parley-input")).fill("And how do I get a refund on my invoice?")
    page.locator(tid("parley-send")).click()
    page.wait_for_function(
        """() => {
            const host = document.querySelector("parley-widget") || document.querySelector("[data-parley-host]");
            const done = host.shadowRoot.querySelectorAll(
                '[data-testid=parley-message][data-role=assistant][data-status=complete]');
            return done.length === 2;
        }"""
    )
    page.locator(tid("parley-end")).click()
    page.locator(f'{tid("parley-star")}[data-score="5"]').click()
    page.locator(tid("parley-resolved-yes")).click()
    page.locator(tid("parley-rating-submit")).click()
    page.locator(tid("parley-rating-thanks")).wait_for()

    session = ChatSession.objects.get()
    row = None
    for _ in range(100):  # the final write runs in the background once the session ends
        row = ChatAnalytics.objects.filter(session=session, satisfaction_rating=5).first()
        if row is not None:
            break
        page.wait_for_timeout(100)
    assert row is not None, "no ChatAnalytics row after the chat ended"
    replies = list(ChatMessage.objects.filter(session=session, role="assistant").order_by("seq"))
    assert (row.total_messages, row.user_messages, row.assistant_messages) == (4, 2, 2)
    assert row.response_times_ms == [reply.duration_ms for reply in replies]
    assert row.avg_ttft_ms == round(sum(reply.ttft_ms for reply in replies) / 2)
    assert (row.resolution, row.resolved, row.escalated_to_human) == ("confirmed", True, True)
    assert (row.feedback_up, row.feedback_down, row.closed) == (1, 0, True)
    assert [action["name"] for action in row.actions_taken] == ["widget_open", "quick_reply", "escalate"]
    assert "billing" in row.topics_discussed and "widget" in row.topics_discussed
    # 2 messages (20) + 3 actions (15) + feedback (15) + rating (15)
    assert row.engagement_score == 65


def test_keyboard_only_flow(page: Any, server: str) -> None:
    page.goto(f"{server}/")
    page.locator(tid("parley-launcher")).focus()
    page.keyboard.press("Enter")
    page.locator(tid("parley-panel")).wait_for(state="visible")
    page.keyboard.type("How do I scale Parley?")  # focus is in the message box
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("Thanks")
    page.keyboard.press("Enter")
    wait_reply_status(page, "complete")
    assert ChatMessage.objects.get(role="user").text == "How do I scale Parley?\nThanks"
    for _ in range(12):  # focus stays inside the open panel
        page.keyboard.press("Tab")
        inside = page.evaluate(
            """() => {
                const host = document.querySelector("parley-widget") || document.querySelector("[data-parley-host]");
                return document.activeElement === host && !!host.shadowRoot.activeElement;
            }"""
        )
        assert inside
    page.keyboard.press("Escape")
    page.locator(tid("parley-panel")).wait_for(state="hidden")
    assert page.evaluate(
        """() => {
            const host = document.querySelector("parley-widget") || document.querySelector("[data-parley-host]");
            return host.shadowRoot.activeElement && host.shadowRoot.activeElement.dataset.testid === "parley-launcher";
        }"""
    )


def test_mobile_viewport_gets_a_full_screen_panel(browser: Any, server: str) -> None:
    # Reduced motion: the panel's opening animation is off, so it is measured at its final size.
    context = browser.new_context(
        viewport={"width": 375, "height": 700}, is_mobile=True, has_touch=True, reduced_motion="reduce"
    )
    page = context.new_page()
    open_widget(page, server)
    box = page.locator(tid("parley-panel")).bounding_box()
    assert box == {"x": 0, "y": 0, "width": 375, "height": 700}
    shot(page, "04-mobile")
    context.close()


@pytest.fixture(scope="module")
def hostile_server(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: Any) -> Iterator[str]:
    """A knowledge base whose answer carries an <img onerror> and a javascript: link."""
    knowledge = tmp_path_factory.mktemp("hostile-kb")
    # Filler sections give BM25 something to rank against (one lone section scores too low).
    filler = "".join(f"## Gardening topic {i}\n\nSoil, seeds and watering, part {i}.\n\n" for i in range(30))
    (knowledge / "hostile.md").write_text(
        "# Hostile\n\n## How do I hack the widget?\n\n"
        "Try <img src=x onerror=alert(1)> and [click me](javascript:alert(2)) or [docs](https://example.com/docs).\n\n"
        + filler,
        encoding="utf-8",
    )
    with django_db_blocker.unblock(), daphne({"KNOWLEDGE_DIR": str(knowledge), "LOCAL_TOKEN_DELAY_MS": "0"}) as base:
        yield base.replace("ws://", "http://")


def test_markup_in_messages_renders_as_text(page: Any, hostile_server: str) -> None:
    open_widget(page, hostile_server)
    page.locator(tid("parley-input")).fill("<img src=x onerror=alert(1)> How do I hack the widget?")
    page.locator(tid("parley-send")).click()
    reply = wait_reply_status(page, "complete")
    user = page.locator(f'{tid("parley-message")}[data-role="user"]').last
    assert "<img src=x onerror=alert(1)>" in user.inner_text()
    assert "<img src=x onerror=alert(1)>" in reply.inner_text()
    assert page.locator(f"{tid('parley-messages')} img").count() == 0
    assert page.locator(f"{tid('parley-messages')} a[href^='javascript']").count() == 0
    safe = reply.locator("a[href='https://example.com/docs']")
    assert safe.get_attribute("target") == "_blank" and "noopener" in (safe.get_attribute("rel") or "")
    page.wait_for_timeout(300)
    assert page.dialogs == []  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def strict_server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """One message per minute per connection: the second one is rate limited."""
    env = {"LOCAL_TOKEN_DELAY_MS": "0", "CHAT_RATE_LIMIT_PER_MINUTE": "1", "CHAT_RATE_LIMIT_BURST": "1"}
    with django_db_blocker.unblock(), daphne(env) as base:
        yield base.replace("ws://", "http://")


def test_rate_limit_shows_a_countdown(page: Any, strict_server: str) -> None:
    open_widget(page, strict_server)
    page.locator(tid("parley-input")).fill("How do I scale Parley?")
    page.locator(tid("parley-send")).click()
    wait_reply_status(page, "complete")
    page.locator(tid("parley-input")).fill("And how do I embed it?")
    page.locator(tid("parley-send")).click()
    banner = page.locator(tid("parley-error"))
    banner.wait_for()
    first = banner.inner_text()
    assert any(char.isdigit() for char in first)
    page.wait_for_timeout(1300)
    assert banner.inner_text() != first  # it counts down
    shot(page, "05-rate-limited")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def host_pages(tmp_path_factory: Any) -> Iterator[tuple[str, str, Path]]:
    """Two other web servers (origins) that serve a customer's page embedding the widget."""
    directory = tmp_path_factory.mktemp("host-site")
    servers = []
    for _ in range(2):
        port = free_port()
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), partial(_Quiet, directory=str(directory)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
    yield (f"http://127.0.0.1:{servers[0].server_port}", f"http://127.0.0.1:{servers[1].server_port}", directory)
    for httpd in servers:
        httpd.shutdown()


def test_embedded_on_an_allowed_origin_it_chats_and_elsewhere_it_is_refused(
    page: Any, host_pages: tuple[str, str, Path], django_db_blocker: Any
) -> None:
    allowed, refused, directory = host_pages
    with django_db_blocker.unblock(), daphne({"WIDGET_ALLOWED_ORIGINS": allowed, "LOCAL_TOKEN_DELAY_MS": "0"}) as ws:
        base = ws.replace("ws://", "http://")
        (directory / "index.html").write_text(
            "<!doctype html><html><head><title>Customer site</title>"
            "<style>* { all: unset; } button { color: red !important; font-size: 40px !important; }</style></head>"
            f'<body><h1>Customer</h1><script src="{base}/static/assistant/widget.js" '
            f'data-parley-server="{base}" async></script></body></html>',
            encoding="utf-8",
        )
        page.goto(f"{allowed}/index.html")
        page.locator(tid("parley-launcher")).click()
        page.locator(tid("parley-input")).fill("How do I scale Parley?")
        page.locator(tid("parley-send")).click()
        wait_reply_status(page, "complete")

        page.goto(f"{refused}/index.html")
        page.locator(tid("parley-launcher")).click()
        page.locator(tid("parley-unavailable")).wait_for(timeout=10_000)


def test_the_widget_stays_under_25_kb_gzipped() -> None:
    source = (ROOT / "static" / "assistant" / "widget.js").read_bytes()
    assert len(gzip.compress(source, 9)) <= 25 * 1024


def test_character_counter_and_the_length_limit(page: Any, server: str) -> None:
    open_widget(page, server)
    box = page.locator(tid("parley-input"))
    box.fill("a" * 950)
    counter = page.locator(tid("parley-counter"))
    counter.wait_for()
    assert "950" in counter.inner_text() or "50" in counter.inner_text()
    box.fill("a" * 1001)
    assert page.locator(tid("parley-send")).is_disabled()
    box.fill("short")
    assert page.locator(tid("parley-send")).is_enabled()


def test_unread_badge_counts_a_reply_that_ends_while_closed(page: Any, server: str) -> None:
    open_widget(page, server)
    page.locator(tid("parley-input")).fill("How do I scale Parley?")
    page.locator(tid("parley-send")).click()
    wait_reply_status(page, "streaming")
    page.locator(tid("parley-close")).click()
    badge = page.locator(tid("parley-badge"))
    badge.wait_for(state="visible", timeout=15_000)
    assert badge.inner_text().strip() == "1"
    page.locator(tid("parley-launcher")).click()
    badge.wait_for(state="hidden")


def test_thumbs_down_with_a_comment(page: Any, server: str) -> None:
    open_widget(page, server)
    page.locator(tid("parley-quick-reply")).first.click()
    reply = wait_reply_status(page, "complete")
    reply.locator(tid("parley-thumb-down")).click()
    page.locator(tid("parley-feedback-comment")).fill("Too long for me")
    page.locator(tid("parley-feedback-submit")).click()
    page.wait_for_timeout(500)
    feedback = Feedback.objects.get()
    assert (feedback.rating, feedback.comment) == ("down", "Too long for me")


def test_a_link_click_opens_a_new_tab_and_is_reported(page: Any, hostile_server: str) -> None:
    open_widget(page, hostile_server)
    page.locator(tid("parley-input")).fill("How do I hack the widget?")
    page.locator(tid("parley-send")).click()
    reply = wait_reply_status(page, "complete")
    with page.context.expect_page() as new_tab:
        reply.locator("a[href='https://example.com/docs']").click()
    new_tab.value.close()
    page.wait_for_timeout(500)
    event = ChatEvent.objects.get(name="link_click")
    assert event.data["url"] == "https://example.com/docs"


def test_signed_identity_and_localised_strings_from_parley_settings(
    page: Any, host_pages: tuple[str, str, Path], django_db_blocker: Any
) -> None:
    allowed, _, directory = host_pages
    secret = "identity-test-secret"
    env = {"WIDGET_ALLOWED_ORIGINS": allowed, "WIDGET_IDENTITY_SECRET": secret, "LOCAL_TOKEN_DELAY_MS": "0"}
    issued_at = int(time.time())
    with django_db_blocker.unblock(), daphne(env) as ws:
        base = ws.replace("ws://", "http://")
        settings_js = json.dumps(
            {
                "title": "Aide en ligne",
                "strings": {"placeholder": "Votre question…"},
                "identity": {
                    "user_id": "42",
                    "name": "Ada",
                    "email": "ada@example.com",
                    "user_type": "client",
                    "issued_at": issued_at,
                    "signature": identity_signature(
                        secret,
                        user_id="42",
                        name="Ada",
                        email="ada@example.com",
                        user_type="client",
                        issued_at=issued_at,
                    ),
                },
            }
        )
        (directory / "signed.html").write_text(
            f"<!doctype html><html><body><script>window.ParleySettings = {settings_js};</script>"
            f'<script src="{base}/static/assistant/widget.js" data-parley-server="{base}" async></script>'
            "</body></html>",
            encoding="utf-8",
        )
        page.goto(f"{allowed}/signed.html")
        page.locator(tid("parley-launcher")).click()
        assert page.locator(tid("parley-title")).inner_text() == "Aide en ligne"
        assert page.locator(tid("parley-input")).get_attribute("placeholder") == "Votre question…"
        page.locator(tid("parley-input")).fill("How do I scale Parley?")
        page.locator(tid("parley-send")).click()
        wait_reply_status(page, "complete")
    session = ChatSession.objects.get()
    assert (session.user_type, session.external_user_id, session.external_user_email) == (
        "client",
        "42",
        "ada@example.com",
    )


class CuttableProxy:
    """A TCP relay in front of a server whose connections the test can cut, like a network drop."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.accepting = threading.Event()
        self.accepting.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.accepting.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until `restore`."""
        self.accepting.clear()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def restore(self) -> None:
        self.accepting.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_a_network_drop_shows_offline_then_the_reply_resumes(page: Any, django_db_blocker: Any) -> None:
    with django_db_blocker.unblock(), daphne({"LOCAL_TOKEN_DELAY_MS": "40"}) as ws:
        proxy = CuttableProxy(int(ws.rsplit(":", 1)[1]))
        try:
            base = f"http://127.0.0.1:{proxy.port}"
            open_widget(page, base)
            page.locator(tid("parley-input")).fill("How do I embed the widget?")
            page.locator(tid("parley-send")).click()
            wait_reply_status(page, "streaming")
            proxy.cut()
            page.locator(tid("parley-offline")).wait_for(state="visible", timeout=10_000)
            shot(page, "06-offline")
            page.wait_for_timeout(1500)  # the reply goes on generating on the server meanwhile
            proxy.restore()
            page.locator(tid("parley-offline")).wait_for(state="hidden", timeout=20_000)
            reply = wait_reply_status(page, "complete", timeout=30_000)
            shown = reply.locator(tid("parley-text")).inner_text()
            # The stored reply, rendered fresh from history, reads exactly the same: the text
            # streamed across the drop has no gap and no repeat.
            page.reload()
            page.locator(tid("parley-launcher")).click()
            restored = wait_reply_status(page, "complete").locator(tid("parley-text")).inner_text()
        finally:
            proxy.close()
    assert ChatMessage.objects.get(role="assistant").status == "complete"
    assert shown == restored


def test_typing_indicator_until_the_first_words(page: Any, django_db_blocker: Any) -> None:
    """A cloud provider (the loopback fake OpenAI) that takes a second before its first token."""
    with FakeVendor("openai", tokens=["Hello ", "there."]) as vendor:
        vendor.faults.append("slow_first:1.5")
        env = {
            "AI_PROVIDERS": "openai,local",
            "OPENAI_API_KEY": "test",
            "OPENAI_BASE_URL": f"{vendor.base_url}/v1",
            "TITLE_FROM_PROVIDER": "0",
        }
        with django_db_blocker.unblock(), daphne(env) as ws:
            open_widget(page, ws.replace("ws://", "http://"))
            page.locator(tid("parley-input")).fill("Hi")
            page.locator(tid("parley-send")).click()
            typing = page.locator(tid("parley-typing"))
            typing.wait_for(state="visible", timeout=5_000)
            assert last_reply(page).locator(tid("parley-text")).inner_text().strip() == ""
            reply = wait_reply_status(page, "complete")
            assert typing.is_hidden()
            assert reply.locator(tid("parley-text")).inner_text().strip() == "Hello there."


def test_accessible_names_roles_and_contrast(page: Any, server: str) -> None:
    open_widget(page, server)
    report = page.evaluate(
        """() => {
            const root = document.querySelector("parley-widget").shadowRoot;
            const unnamed = [...root.querySelectorAll("button, textarea")].filter(
                (el) => !(el.getAttribute("aria-label") || el.textContent.trim() || el.getAttribute("title"))
            ).map((el) => el.outerHTML.slice(0, 80));
            const log = root.querySelector("[data-testid=parley-messages]");
            const panel = root.querySelector("[data-testid=parley-panel]");
            const send = root.querySelector("[data-testid=parley-send]");
            const style = getComputedStyle(send);
            return {unnamed, logRole: log.getAttribute("role"), live: log.getAttribute("aria-live"),
                    dialog: panel.getAttribute("role"), fg: style.color, bg: style.backgroundColor};
        }"""
    )
    assert report["unnamed"] == []
    assert (report["logRole"], report["live"], report["dialog"]) == ("log", "polite", "dialog")
    assert contrast(report["fg"], report["bg"]) >= 4.5  # WCAG AA for the accent button


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two `rgb(r, g, b)` colours."""

    def luminance(css: str) -> float:
        channels = [int(part) / 255 for part in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_data_attributes_open_on_load_on_the_left_and_reduced_motion(
    browser: Any, host_pages: tuple[str, str, Path], django_db_blocker: Any
) -> None:
    allowed, _, directory = host_pages
    with django_db_blocker.unblock(), daphne({"WIDGET_ALLOWED_ORIGINS": allowed}) as ws:
        base = ws.replace("ws://", "http://")
        (directory / "options.html").write_text(
            f'<!doctype html><html><body><script src="{base}/static/assistant/widget.js" '
            f'data-parley-server="{base}" data-open-on-load="true" data-position="left" '
            'data-title="Help desk" data-greeting="Welcome to Acme!" async></script></body></html>',
            encoding="utf-8",
        )
        context = browser.new_context(viewport={"width": 1280, "height": 800}, reduced_motion="reduce")
        page = context.new_page()
        page.goto(f"{allowed}/options.html")
        panel = page.locator(tid("parley-panel"))
        panel.wait_for(state="visible")  # opened without a click
        assert page.locator(tid("parley-title")).inner_text() == "Help desk"
        page.locator(tid("parley-greeting")).filter(has_text="Welcome to Acme!").wait_for()
        box = panel.bounding_box()
        assert box is not None and box["x"] < 640  # the left corner
        assert panel.evaluate("el => getComputedStyle(el).animationName") == "none"
        context.close()


CONNECTION_LOG = """() => {
    const host = document.querySelector("parley-widget");
    window.connectionLog = [];
    new MutationObserver(() => window.connectionLog.push(host.dataset.connection)).observe(host, {
        attributes: true,
        attributeFilter: ["data-connection"],
    });
}"""
CONNECTED = "document.querySelector('parley-widget').dataset.connection === 'open'"


def test_a_server_restart_hands_both_widgets_to_another_process_at_once(browser: Any, django_db_blocker: Any) -> None:
    """SIGTERM to the process serving two widgets, behind a relay that skips a refusing process.

    The widget with a reply streaming sees it end `interrupted` after the grace, then the 1012
    close; the idle one sends a message during the grace and is told `restarting`. Both reconnect
    at once (never showing "offline"), to the other process, and their messages are answered there.
    """
    env = {"LOCAL_TOKEN_DELAY_MS": "150", "SHUTDOWN_GRACE_S": "3"}
    with ExitStack() as stack:
        stack.enter_context(django_db_blocker.unblock())
        ws_a, server_a = stack.enter_context(daphne_process(env))
        ws_b = stack.enter_context(daphne(env))
        relay = Relay([int(ws_a.rsplit(":", 1)[1])])  # both widgets on A, then B joins the relay
        stack.callback(relay.close)
        base = f"http://127.0.0.1:{relay.port}"
        streaming, idle = (stack.enter_context(_page(browser)) for _ in range(2))
        for page in (streaming, idle):
            open_widget(page, base)
            page.wait_for_function(CONNECTED)
        streaming.locator(tid("parley-input")).fill("How do I embed the widget?")
        streaming.locator(tid("parley-send")).click()
        wait_reply_status(streaming, "streaming")
        for page in (streaming, idle):
            page.evaluate(CONNECTION_LOG)
        relay.ports.append(int(ws_b.rsplit(":", 1)[1]))

        server_a.send_signal(signal.SIGTERM)
        idle.locator(tid("parley-input")).fill("How do I scale Parley?")
        idle.locator(tid("parley-send")).click()
        idle.locator(f'{tid("parley-message")}[data-role="user"][data-status="complete"]').wait_for(timeout=2_000)
        assert server_a.poll() is None, "acknowledged by B while A was still letting its reply run"
        assert idle.evaluate("window.connectionLog") == ["connecting", "open"]

        wait_reply_status(streaming, "interrupted", timeout=10_000)
        # The 1012 close follows the `reply.end` (once the server has sent its last frames): the
        # widget is still on A for a moment, then goes straight to "connecting" and "open" on B.
        streaming.wait_for_function(f"window.connectionLog.length >= 2 && {CONNECTED}", timeout=3_000)
        assert streaming.evaluate("window.connectionLog") == ["connecting", "open"]
        streaming.locator(tid("parley-input")).fill("How do I scale Parley?")
        streaming.locator(tid("parley-send")).click()
        for page in (streaming, idle):
            wait_reply_status(page, "complete", timeout=15_000)
        assert server_a.wait(10) == 0
    replies = ChatMessage.objects.filter(role="assistant").order_by("session_id", "seq")
    assert [reply.status for reply in replies] == ["interrupted", "complete", "complete"]
    assert ChatMessage.objects.filter(role="user").count() == 3


@contextlib.contextmanager
def _page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield context.new_page()
    finally:
        context.close()


def test_while_a_person_answers_the_composer_stays_free_and_their_messages_carry_their_name(
    page: Any, server: str
) -> None:
    """Issue 15 so far: a claim made at the desk (here its service, on the shared database)
    reaches the widget on its next connection; the desk's own notification comes with the desk."""
    from django.contrib.auth import get_user_model

    from assistant.handoff import services
    from tests.assistant.handoff.conftest import support_agents

    open_widget(page, server)
    page.locator(tid("parley-quick-reply")).first.click()
    wait_reply_status(page, "complete")
    session = ChatSession.objects.get()
    ada = get_user_model().objects.create_user(username="ada", password="x", first_name="Ada")
    ada.groups.add(support_agents())
    ada = get_user_model().objects.get(pk=ada.pk)
    services.claim(session_id=str(session.public_id), agent=ada)
    services.agent_message(session_id=str(session.public_id), agent=ada, text="Hi, Ada here.", client_id="d1")

    page.reload()
    page.locator(tid("parley-launcher")).click()
    written = page.locator(tid("parley-message"), has_text="Hi, Ada here.")
    written.locator(tid("parley-agent-name")).wait_for()
    assert written.locator(tid("parley-agent-name")).inner_text() == "Ada"
    assert written.locator(tid("parley-thumb-up")).count() == 0  # thumbs rate the assistant, not people
    page.locator(tid("parley-input")).fill("Can you check my order?")
    page.locator(tid("parley-send")).click()
    page.locator(f'{tid("parley-message")}[data-role="user"][data-status="complete"]').nth(1).wait_for()
    time.sleep(0.5)  # an AI reply would have started by now
    assert page.locator(tid("parley-stop")).is_hidden() and page.locator(tid("parley-send")).is_visible()
    assert list(ChatMessage.objects.filter(session=session).values_list("role", flat=True).order_by("seq")) == [
        "user",
        "assistant",
        "agent",
        "user",
    ]


# --- Issue 15: human handoff in the widget -------------------------------------------------------
#: Keeps the page's websockets reachable, so a test can play a frame only the desk sends (its
#: `typing`) until the desk exists; everything else in these tests is the real server's.
KEEP_SOCKETS = """(() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
        constructor(...args) { super(...args); window.__sockets.push(this); }
    };
})()"""


def host_data(page: Any, name: str) -> str | None:
    return page.evaluate(f"() => document.querySelector('parley-widget').dataset.{name}")


def focused(page: Any) -> str | None:
    return page.evaluate("() => document.querySelector('parley-widget').shadowRoot.activeElement?.dataset.testid")


def ask(page: Any, text: str) -> None:
    page.locator(tid("parley-input")).fill(text)
    page.locator(tid("parley-send")).click()


def wait_replies(page: Any, count: int) -> None:
    page.locator(f'{tid("parley-message")}[data-role="assistant"][data-status="complete"]').nth(count - 1).wait_for(
        timeout=15_000
    )


def record_frames(page: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(frames the widget sent, frames it received), as they happen."""
    sent: list[dict[str, Any]] = []
    received: list[dict[str, Any]] = []

    def watch(ws: Any) -> None:
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: received.append(json.loads(payload)))

    page.on("websocket", watch)
    return sent, received


def test_talk_to_a_person_from_the_keyboard_menu_with_nobody_there_leaves_contact_details(
    page: Any, server: str
) -> None:
    from assistant.models import ContactRequest, Handoff

    open_widget(page, server)
    menu = page.locator(tid("parley-menu"))
    item = page.locator(tid("parley-talk-to-person"))
    assert menu.get_attribute("aria-haspopup") == "menu" and menu.get_attribute("aria-expanded") == "false"
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true" and focused(page) == "parley-talk-to-person"
    page.keyboard.press("Escape")  # closes the menu, not the panel
    assert item.is_hidden() and menu.get_attribute("aria-expanded") == "false"
    assert page.locator(tid("parley-panel")).is_visible() and focused(page) == "parley-menu"
    page.keyboard.press("Enter")
    assert focused(page) == "parley-talk-to-person"
    page.keyboard.press("Enter")

    form = page.locator(tid("parley-offline-form"))
    form.wait_for()
    assert host_data(page, "handoff") == "unavailable" and focused(page) == "parley-contact-email"
    shot(page, "06-offline-form")
    email = page.locator(tid("parley-contact-email"))
    email.fill("ada@")
    page.locator(tid("parley-contact-submit")).click()
    assert email.get_attribute("aria-invalid") == "true"
    email.fill("ada@example.com")
    page.locator(tid("parley-contact-name")).fill("Ada")
    page.locator(tid("parley-contact-message")).fill("Please call me about my invoice.")
    page.locator(tid("parley-contact-name")).press("Enter")  # Enter in a field submits the form
    page.locator(tid("parley-contact-thanks")).wait_for()
    assert form.count() == 0
    contact = ContactRequest.objects.get()
    assert (contact.email, contact.name, contact.message) == (
        "ada@example.com",
        "Ada",
        "Please call me about my invoice.",
    )
    assert list(Handoff.objects.values_list("outcome", flat=True)) == ["unavailable"]

    ask(page, "How do I scale Parley?")  # the assistant keeps helping
    wait_replies(page, 1)


def test_the_offer_follows_an_unanswered_reply_or_an_escalation_phrase_then_a_person_comes(
    page: Any, server: str
) -> None:
    from django.contrib.auth import get_user_model

    from assistant.handoff import services
    from tests.assistant.handoff.conftest import support_agents

    page.add_init_script(KEEP_SOCKETS)
    sent, received = record_frames(page)
    open_widget(page, server)
    offer = page.locator(tid("parley-handoff-offer"))
    ask(page, "What's the weather like in Paris tomorrow?")  # not in the knowledge base
    wait_replies(page, 1)
    offer.wait_for()
    ask(page, "How do I scale Parley?")  # answered: no offer
    assert offer.is_hidden()
    wait_replies(page, 2)
    assert offer.is_hidden()
    ask(page, "Can I talk to a human, please?")
    offer.wait_for()
    assert [frame.get("asks_for_person") for frame in received if frame["type"] == "ack"] == [None, None, True]
    wait_replies(page, 3)

    ada = get_user_model().objects.create_user(username="ada", password="x", first_name="Ada")
    ada.groups.add(support_agents())
    ada = get_user_model().objects.get(pk=ada.pk)
    services.presence_set(user=ada, available=True)
    offer.click()
    status = page.locator(tid("parley-handoff-status"))
    page.locator(f'{tid("parley-handoff-status")}:has-text("number 1 in the queue")').wait_for()
    assert host_data(page, "handoff") == "waiting" and offer.is_hidden()
    shot(page, "07-waiting")

    # While a person is coming, the visitor's typing is sent: start on the first key, stop on send.
    page.locator(tid("parley-input")).press_sequentially("Hello")
    page.keyboard.press("Enter")
    wait_replies(page, 4)  # the assistant still answers while the visitor waits
    typing = [frame["state"] for frame in sent if frame["type"] == "typing"]
    assert typing == ["start", "stop"]
    assert [frame["type"] for frame in sent if frame["type"] in {"typing", "message"}][-3:] == [
        "typing",
        "typing",
        "message",
    ]

    session = ChatSession.objects.get()
    services.claim(session_id=str(session.public_id), agent=ada)
    page.reload()
    page.locator(tid("parley-launcher")).click()
    page.locator(f'{tid("parley-handoff-status")}:has-text("Ada joined the chat.")').wait_for()
    assert host_data(page, "handoff") == "assigned"
    indicator = page.locator(tid("parley-agent-typing"))
    assert indicator.get_attribute("aria-live") == "polite" and indicator.is_hidden()
    play = "frame => window.__sockets.at(-1).onmessage({data: JSON.stringify(frame)})"
    page.evaluate(play, {"type": "typing", "role": "agent", "state": "start", "name": "Ada"})
    assert indicator.inner_text() == "Ada is typing\u2026"
    shot(page, "08-agent-typing")
    page.evaluate(play, {"type": "typing", "role": "agent", "state": "stop", "name": "Ada"})
    indicator.wait_for(state="hidden")
    assert status.is_visible()


def test_ask_contact_required_blocks_the_chat_until_the_form_is_sent(page: Any, django_db_blocker: Any) -> None:
    from assistant.models import ContactRequest

    with django_db_blocker.unblock(), daphne({"WIDGET_ASK_CONTACT": "required", "LOCAL_TOKEN_DELAY_MS": "0"}) as ws:
        base = ws.replace("ws://", "http://")
        open_widget(page, base)
        form = page.locator(tid("parley-contact-form"))
        form.wait_for()
        assert focused(page) == "parley-contact-email"
        assert page.locator(tid("parley-input")).is_disabled() and page.locator(tid("parley-send")).is_disabled()
        assert (
            page.locator(tid("parley-quick-replies")).is_hidden()
            and form.locator(tid("parley-contact-skip")).count() == 0
        )
        page.locator(tid("parley-contact-submit")).click()
        assert page.locator(tid("parley-contact-email")).get_attribute("aria-invalid") == "true"
        assert ContactRequest.objects.count() == 0
        page.locator(tid("parley-contact-email")).fill("grace@example.com")
        page.locator(tid("parley-contact-submit")).click()
        page.locator(tid("parley-contact-thanks")).wait_for()
        assert page.locator(tid("parley-input")).is_enabled() and focused(page) == "parley-input"
        assert ContactRequest.objects.get().email == "grace@example.com"
        ask(page, "How do I scale Parley?")
        wait_replies(page, 1)

        page.reload()  # sent once per conversation
        page.locator(tid("parley-launcher")).click()
        wait_replies(page, 1)
        assert form.count() == 0 and page.locator(tid("parley-input")).is_enabled()


def test_ask_contact_optional_can_be_skipped(page: Any, django_db_blocker: Any) -> None:
    from assistant.models import ContactRequest

    with django_db_blocker.unblock(), daphne({"WIDGET_ASK_CONTACT": "optional", "LOCAL_TOKEN_DELAY_MS": "0"}) as ws:
        open_widget(page, ws.replace("ws://", "http://"))
        page.locator(tid("parley-contact-form")).wait_for()
        assert page.locator(tid("parley-input")).is_enabled()
        page.locator(tid("parley-contact-skip")).click()
        assert page.locator(tid("parley-contact-form")).count() == 0 and focused(page) == "parley-input"
        page.locator(tid("parley-quick-reply")).first.click()
        wait_replies(page, 1)
        assert ContactRequest.objects.count() == 0


def test_library_mode_exposes_the_markdown_renderer_and_mounts_nothing(
    page: Any, server: str, host_pages: tuple[str, str, Path]
) -> None:
    origin, _, directory = host_pages
    (directory / "library.html").write_text(
        f'<!doctype html><div id="out"></div><script src="{server}/static/assistant/widget.js" data-parley-library>'
        "</script>",
        encoding="utf-8",
    )
    sockets: list[Any] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    page.goto(f"{origin}/library.html")
    page.wait_for_function("() => window.ParleyMarkdown")
    html = page.evaluate(
        """() => {
            const out = document.getElementById("out");
            window.ParleyMarkdown.render(
                "**Hi** <img src=x onerror=alert(1)>\\n\\n- [docs](https://example.com/d)\\n"
                + "- [bad](javascript:alert(1))", out);
            return out.innerHTML;
        }"""
    )
    assert "<strong>Hi</strong>" in html and "&lt;img" in html and "<img" not in html
    assert '<a href="https://example.com/d" target="_blank" rel="noopener noreferrer">docs</a>' in html
    assert "javascript:" not in html
    time.sleep(0.5)  # the widget would have mounted by now (it starts when the page is idle)
    assert page.evaluate("() => [window.Parley, document.querySelector('parley-widget')]") == [None, None]
    assert sockets == [] and page.dialogs == []  # type: ignore[attr-defined]

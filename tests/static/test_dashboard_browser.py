"""The staff dashboard (`/admin/chat-analytics/`) and transcript pages in a real browser.

Debian's chromium through Playwright against a real daphne server (`manage.py serve`) on the
test database, as in `test_widget_browser` (whose `browser` fixture and widget helpers this
module reuses). A staff user signs in through the admin login form; the chats are real: a second
browser context talks to the demo page's widget. Screenshots go to `test-artifacts/screenshots/`
as `dashboard-*.png`; the README shows `dashboard-overview.png`, copied to
`docs/screenshots/dashboard.png` when the dashboard's look changes.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from analytics import metrics
from analytics.metrics import METRICS
from assistant.models import ChatMessage, ChatSession
from tests.static import test_widget_browser as widget
from tests.support.live import daphne

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True)]

browser = widget.browser  # the module's chromium, shared with the widget tests' fixture code
DASHBOARD = "/admin/chat-analytics/"
STAFF = ("ada", "correct-horse-staff-1")
VISITOR = ("bob", "correct-horse-visitor-1")
CHARTS = {
    "chart-activity",
    "chart-satisfaction",
    "chart-rates",
    "chart-latency",
    "chart-providers",
    "chart-cost",
    "chart-models",
    "chart-hours",
    "chart-topics",
    "chart-user-types",
    "chart-issues",
    "chart-sentiment",
}


@pytest.fixture(scope="module")
def server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """The site with replies paced at 20 ms a word, and no periodic sweep: the rollups stay as
    the test leaves them, so every change the dashboard shows during a test came live."""
    env = {"LOCAL_TOKEN_DELAY_MS": "20", "ANALYTICS_RECOVERY_INTERVAL_S": "0"}
    with django_db_blocker.unblock(), daphne(env) as base:
        yield base.replace("ws://", "http://")


@pytest.fixture
def users() -> None:
    """A staff user and a signed-up user who is not staff."""
    model = get_user_model()
    model.objects.create_user(STAFF[0], "ada@example.com", STAFF[1], is_staff=True)
    model.objects.create_user(VISITOR[0], "bob@example.com", VISITOR[1])


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A 1400×900 page whose console errors and uncaught exceptions land in `page.errors`."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []

    def on_console(message: Any) -> None:
        # The admin login page has no icon link, so chromium asks for /favicon.ico (404).
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


def seed(days: int = 40, sessions: int = 150) -> None:
    """A demo history over `days` days, with its analytics and rollups (seed_demo_data)."""
    call_command("seed_demo_data", sessions=sessions, days=days, seed=7, no_progress=True, stdout=io.StringIO())


def sessions_started_in_last(days: int) -> int:
    """Sessions whose local start date is within the last `days` days, today included."""
    first = timezone.localdate() - timedelta(days=days - 1)
    return sum(1 for created in ChatSession.objects.values_list("created_at", flat=True)
               if timezone.localdate(created) >= first)  # fmt: skip


def sign_in(page: Any, base: str, user: tuple[str, str], next_path: str = DASHBOARD) -> None:
    """Through the real admin login form."""
    page.goto(f"{base}/admin/login/?next={next_path}")
    page.fill("#id_username", user[0])
    page.fill("#id_password", user[1])
    page.click("input[type=submit]")
    page.wait_for_load_state()


def kpi(page: Any, key: str) -> Any:
    return page.locator(f"[data-testid=kpi-{key}]")


def kpi_value(page: Any, key: str) -> float | None:
    raw = kpi(page, key).get_attribute("data-value")
    return float(raw) if raw else None


def wait_kpi(page: Any, key: str, condition: str, timeout: float = 15_000) -> float:
    """Wait until `value <condition>` holds for the card's number (a JS expression on `v`)."""
    page.wait_for_function(
        f"""() => {{
            const node = document.querySelector("[data-testid=kpi-{key}]");
            const raw = node && node.dataset.value;
            if (raw === undefined || raw === "") return false;
            const v = Number(raw);
            return {condition};
        }}""",
        timeout=timeout,
    )
    value = kpi_value(page, key)
    assert value is not None
    return value


def wait_loaded(page: Any) -> None:
    page.locator("#chat-analytics[data-loaded]").wait_for(state="attached", timeout=15_000)


def shown_cards(page: Any) -> list[tuple[str, str]]:
    """The headline cards on the page, in order: (metric key, label)."""
    cards = page.evaluate(
        """() => [...document.querySelectorAll("#ca-kpis .ca-kpi")].map(
            card => [card.dataset.kpi, card.querySelector(".ca-kpi-label").textContent])"""
    )
    return [(key, label) for key, label in cards]


def test_staff_signs_in_from_the_admin_index_and_every_chart_renders(page: Any, server: str, users: None) -> None:
    seed()
    sign_in(page, server, STAFF, next_path="/admin/")
    card = page.locator("#chat-analytics-module")
    assert card.is_visible()
    card.get_by_role("link", name="Open the chat analytics dashboard").click()
    page.wait_for_url(f"**{DASHBOARD}")
    wait_loaded(page)

    rendered = page.evaluate(
        "() => [...document.querySelectorAll('canvas')].filter(c => Chart.getChart(c)).map(c => c.id)"
    )
    assert set(rendered) == CHARTS
    # Every chart has data from the seeded month: no "No data" note is showing.
    assert page.locator(".ca-chart .ca-empty:visible").count() == 0
    assert page.locator("#ca-heatmap tbody tr").count() == 7
    # The headline numbers are the period's: sessions started in the last 7 days.
    assert wait_kpi(page, "sessions", f"v === {sessions_started_in_last(7)}")
    # The cards are the registry's, in its order, with its labels (analytics/metrics.py).
    assert shown_cards(page) == [(key, METRICS[key].label) for key in metrics.cards()]
    # AI CSAT sits beside CSAT and shows its coverage; the three predictions' confusion matrices.
    assert metrics.cards().index("ai_csat") == metrics.cards().index("csat") + 1
    coverage = page.locator("[data-testid=kpi-companion-ai_csat]")
    assert (coverage.text_content() or "").startswith(METRICS["ai_csat_coverage"].label + ": ")
    predictors = page.locator("#ca-prediction tbody tr[data-predictor]")
    assert [predictors.nth(i).get_attribute("data-predictor") for i in range(predictors.count())] == [
        "satisfaction", "resolution", "assumed_rule",
    ]  # fmt: skip
    assert page.locator("#ca-trajectory tbody tr[data-metric=recovered_rate]").count() == 1
    # The sources side by side: one column per source present, the same sessions as the card.
    assert page.locator("#ca-sources thead th[data-source=widget]").count() == 1
    assert page.locator("#ca-sources tbody tr[data-metric=ai_csat]").count() == 1
    # Definitions on hover, change arrows coloured by whether a rise is good news.
    sessions_card = page.locator("[data-kpi=sessions]")
    assert sessions_card.get_attribute("title") == METRICS["sessions"].definition
    assert "Share of assistant replies" in (
        page.locator("figure:has(#chart-rates) figcaption").get_attribute("title") or ""
    )
    changes = page.locator(".ca-kpi-change[data-direction]")
    assert changes.count() >= 10
    for index in range(changes.count()):
        change = changes.nth(index)
        direction = change.get_attribute("data-direction")
        key = change.locator("xpath=..").get_attribute("data-kpi")
        better = METRICS[key].higher_is_better
        classes = change.get_attribute("class") or ""
        if direction == "flat" or better is None:
            assert "ca-neutral" in classes
        else:
            assert ("ca-good" if (direction == "up") == better else "ca-bad") in classes, key
    # Every table row links to its transcript.
    rows = page.locator("#ca-recent tbody tr")
    assert rows.count() == 20
    for index in range(rows.count()):
        href = rows.nth(index).locator("a").first.get_attribute("href") or ""
        assert href.startswith(f"{DASHBOARD}sessions/")
    page.wait_for_timeout(500)  # let late chart callbacks run before checking the console
    assert page.errors == []  # type: ignore[attr-defined]
    widget.shot(page, "dashboard-overview")
    page.screenshot(path=str(widget.SHOTS / "dashboard-full.png"), full_page=True)


def test_the_cards_are_the_ones_the_page_definitions_give_in_their_order(page: Any, server: str, users: None) -> None:
    """dashboard.js keeps no list of cards: change the definitions the page carries (json_script)
    on their way to the browser, and the cards follow: order, labels, which metrics have one."""
    seed(days=10, sessions=30)
    pattern = re.compile(r'(<script id="ca-definitions" type="application/json">)(.*?)(</script>)', re.S)

    def edit(definitions: dict[str, Any]) -> dict[str, Any]:
        definitions["escalation_rate"].update(card=0, label="Handed to a human")  # first, renamed
        definitions["tokens"]["card"] = None  # no card
        definitions["cache_hit_rate"]["card"] = 99  # a card of its own, last
        return definitions

    def rewrite(route: Any) -> None:
        response = route.fetch()
        html = pattern.sub(
            lambda m: m.group(1) + json.dumps(edit(json.loads(m.group(2)))) + m.group(3), response.text(), count=1
        )
        route.fulfill(response=response, body=html)

    page.route(f"**{DASHBOARD}", rewrite)
    sign_in(page, server, STAFF)
    wait_loaded(page)
    expected = ["escalation_rate"] + [key for key in metrics.cards() if key not in {"escalation_rate", "tokens"}]
    expected.append("cache_hit_rate")
    cards = shown_cards(page)
    assert [key for key, _ in cards] == expected
    assert cards[0] == ("escalation_rate", "Handed to a human")
    assert cards[-1] == ("cache_hit_rate", METRICS["cache_hit_rate"].label)
    # The new card shows the snapshot's number, formatted by its unit (percent) like the others.
    wait_kpi(page, "cache_hit_rate", "v >= 0")
    assert kpi(page, "cache_hit_rate").inner_text().endswith(" %")
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_chat_in_another_browser_moves_the_live_counts_without_a_reload(
    page: Any, browser: Any, server: str, users: None
) -> None:
    sign_in(page, server, STAFF)
    wait_loaded(page)
    page.locator("#ca-live[data-status=live]").wait_for(timeout=10_000)
    page.evaluate("() => { window.stillTheSamePage = true; }")
    live_before = wait_kpi(page, "live_sessions", "v >= 0")
    messages_before = wait_kpi(page, "messages", "v >= 0")
    sessions_before = wait_kpi(page, "sessions", "v >= 0")

    visitor = browser.new_context(viewport={"width": 1280, "height": 800})
    chat = visitor.new_page()
    widget.open_widget(chat, server)
    chat.locator(widget.tid("parley-quick-reply"), has_text=widget.QUICK).click()
    widget.wait_reply_status(chat, "complete")

    assert wait_kpi(page, "live_sessions", f"v === {live_before + 1}") == live_before + 1
    # The visitor's message and the assistant's reply, counted as they happened.
    assert wait_kpi(page, "messages", f"v >= {messages_before + 2}") == messages_before + 2
    assert wait_kpi(page, "sessions", f"v === {sessions_before + 1}") == sessions_before + 1
    assert page.evaluate("() => window.stillTheSamePage === true")
    feed = page.locator("#ca-feed li[data-type=message]")
    assert feed.count() >= 2
    assert "New chat" in page.locator("#ca-feed").inner_text()
    widget.shot(page, "dashboard-live")
    visitor.close()
    assert page.errors == []  # type: ignore[attr-defined]


def test_switching_the_range_changes_the_numbers_and_the_url(page: Any, server: str, users: None) -> None:
    seed()
    week, month = sessions_started_in_last(7), sessions_started_in_last(30)
    assert week < month  # the fixture: a 40-day history
    sign_in(page, server, STAFF)
    wait_loaded(page)
    assert wait_kpi(page, "sessions", f"v === {week}") == week
    messages_week = kpi_value(page, "messages")

    page.locator("label.ca-seg", has_text="30 days").click()
    assert wait_kpi(page, "sessions", f"v === {month}") == month
    assert (kpi_value(page, "messages") or 0) > (messages_week or 0)
    assert "range=30d" in page.url
    assert (timezone.localdate() - timedelta(days=29)).isoformat() in page.locator("#ca-period").inner_text()

    # A custom range: the two dates, applied with the button; the URL keeps them.
    today = timezone.localdate()
    start = today - timedelta(days=13)
    page.locator("label.ca-seg", has_text="Custom").click()
    page.fill("#ca-start", start.isoformat())
    page.fill("#ca-end", today.isoformat())
    page.click("#ca-apply")
    assert wait_kpi(page, "sessions", f"v === {sessions_started_in_last(14)}") == sessions_started_in_last(14)
    assert f"start_date={start.isoformat()}" in page.url and "range=" not in page.url

    # A visitor-type filter narrows the same period, and a reload keeps every filter.
    clients = sum(
        1
        for created, kind in ChatSession.objects.values_list("created_at", "user_type")
        if kind == "client" and start <= timezone.localdate(created) <= today
    )
    page.select_option("#ca-user-type", "client")
    assert wait_kpi(page, "sessions", f"v === {clients}") == clients
    page.reload()
    wait_loaded(page)
    assert wait_kpi(page, "sessions", f"v === {clients}") == clients
    assert page.locator("#ca-user-type").input_value() == "client"

    # The source filter narrows the same way, and is kept in the URL and the export links.
    from_api = sum(
        1
        for created, kind, source in ChatSession.objects.values_list("created_at", "user_type", "source")
        if kind == "client" and source == "api" and start <= timezone.localdate(created) <= today
    )
    page.select_option("#ca-source", "api")
    page.click("#ca-apply")
    assert wait_kpi(page, "sessions", f"v === {from_api}") == from_api
    assert "source=api" in page.url
    assert "source=api" in (page.locator("a[data-export=sessions]").get_attribute("href") or "")
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_export_button_downloads_a_csv_that_parses(page: Any, server: str, users: None) -> None:
    seed(days=10, sessions=30)
    sign_in(page, server, STAFF)
    wait_loaded(page)
    week = sessions_started_in_last(7)
    link = page.locator("a[data-export=sessions]")
    today = timezone.localdate()
    assert f"end_date={today.isoformat()}" in (link.get_attribute("href") or "")
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == week
    assert all(row for row in rows)


def test_the_transcript_shows_the_messages_and_streams_a_live_reply(
    page: Any, browser: Any, server: str, users: None
) -> None:
    visitor = browser.new_context(viewport={"width": 1280, "height": 800})
    chat = visitor.new_page()
    widget.open_widget(chat, server)
    chat.locator(widget.tid("parley-quick-reply"), has_text=widget.QUICK).click()
    widget.wait_reply_status(chat, "complete")
    session = ChatSession.objects.get()

    sign_in(page, server, STAFF, next_path=f"{DASHBOARD}sessions/{session.public_id}/")
    messages = page.locator("[data-testid=transcript-message]")
    messages.nth(1).wait_for()
    assert messages.count() == 2
    assert widget.QUICK in messages.nth(0).inner_text()
    reply = ChatMessage.objects.get(session=session, role="assistant")
    assert "local" in messages.nth(1).inner_text()  # the provider that answered
    assert reply.text.strip()[:40] in messages.nth(1).inner_text()
    page.locator("#ct-live[data-status=live]").wait_for(timeout=10_000)

    chat.locator(widget.tid("parley-input")).fill("How do I scale Parley?")
    chat.locator(widget.tid("parley-send")).click()
    page.locator("[data-testid=transcript-message][data-seq='3']").wait_for(timeout=15_000)
    # The reply streams in: its text shows while it is being written, then it completes.
    page.wait_for_function(
        """() => {
            const reply = document.querySelector("[data-testid=transcript-message][data-seq='4']");
            const text = reply && reply.querySelector(".ct-text").textContent;
            return reply && reply.dataset.status === "streaming" && text.length > 20;
        }""",
        timeout=15_000,
    )
    page.locator("[data-testid=transcript-message][data-seq='4'][data-status=complete]").wait_for(timeout=15_000)
    assert "scal" in page.locator("[data-testid=transcript-message][data-seq='4']").inner_text().lower()
    assert messages.count() == 4
    # The analytics panel follows the tracker's checkpoint (5 s after a change) without a reload.
    page.locator("[data-testid=transcript-analytics] dd[data-field=total_messages]", has_text="4").wait_for(
        timeout=20_000
    )
    widget.shot(page, "dashboard-transcript")
    visitor.close()
    assert page.errors == []  # type: ignore[attr-defined]


def test_non_staff_users_get_403_and_anonymous_ones_the_login(page: Any, server: str, users: None) -> None:
    # The admin login form refuses users who are not staff.
    sign_in(page, server, VISITOR)
    assert "/admin/login/" in page.url
    assert page.locator(".errornote").is_visible()

    # Signed in some other way (a session cookie), they get 403 on the page, the API and the socket.
    client = Client()
    client.force_login(get_user_model().objects.get(username=VISITOR[0]))
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server}])
    response = page.goto(f"{server}{DASHBOARD}")
    assert response is not None and response.status == 403
    assert page.request.get(f"{server}{DASHBOARD}api/summary/").status == 403
    code = page.evaluate(
        """url => new Promise(resolve => {
            const socket = new WebSocket(url);
            socket.onclose = event => resolve(event.code);
        })""",
        server.replace("http://", "ws://") + "/ws/analytics/",
    )
    assert code == 4403

    page.context.clear_cookies()
    page.goto(f"{server}{DASHBOARD}")
    assert "/admin/login/" in page.url and "next=" in page.url

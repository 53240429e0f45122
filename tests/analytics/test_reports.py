"""The weekly report: `generate_chat_weekly_report` and its four renderings.

Fixture (TIME_ZONE UTC, now frozen at Sunday 2026-03-15 15:00): the report week is 03-09..03-15,
the week before 03-02..03-08.

This week:
- S1, client, Tue 03-10 09:15, ended by the visitor. Visitor: "refund ... invoice" (billing),
  reply 1 (1200 ms, TTFT 400, used section "<b>Billing</b> › Refunds", thumbs up); visitor:
  "reset ... password" (account), reply 2 (1800 ms, TTFT 600). Rated 5, resolved: confirmed.
- S2, anonymous, Thu 03-12 14:30. Visitor: "widget embed snippet" (widget); anthropic failed,
  openai answered (3000 ms, TTFT 800, one failover), thumbs down; idle since: unresolved.
- S3, anonymous, Sun 03-15 14:50, still active (10 minutes ago): "hello there", local reply
  (200 ms, TTFT 100): pending.
Provider calls: openai gpt-4o-mini 1000+200, 1500(400 cached)+300, 800+100 tokens; anthropic
claude-3-5-haiku-latest error; local 10+20; a title call of the unpriced openai "ft:gpt-custom"
(50+10). Cost at gpt-4o-mini's $0.15 / $0.60 / $0.075 cached per million:
(2100*0.15 + 400*0.075 + 500*0.60)/1e6 = 0.000645 on 03-10, (800*0.15 + 100*0.60)/1e6 = 0.00018
on 03-12: $0.000825; the title call is "price unknown".

Week before: P1, client, Wed 03-04 10:00: "price of the pro plan" (billing), one openai reply
(1000 ms, TTFT 500) of 400+100 tokens ($0.00012), rated 4: assumed resolved.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.management import CommandError, call_command

from analytics import reports, selectors, services
from assistant.models import ChatMessage, ChatSession, Feedback, ProviderCall, SessionRating

NOW = datetime(2026, 3, 15, 15, 0, tzinfo=UTC)
END = date(2026, 3, 15)
WEEK = selectors.Period(start=date(2026, 3, 9), end=END)
TOPIC = "<b>Billing</b> › Refunds"
FORMATS = ["text", "json", "markdown", "html"]
COMMAND = "generate_chat_weekly_report"

# Hand-computed from the fixture above.
EXPECTED = {
    "sessions": 3,
    "active_sessions": 1,
    "closed_sessions": 2,
    "messages": 8,
    "user_messages": 4,
    "assistant_messages": 4,
    "messages_per_session": 2.67,  # 8 / 3
    "avg_response_time_ms": 1550.0,  # (1200 + 1800 + 3000 + 200) / 4
    "p50_response_time_ms": 1200,
    "p95_response_time_ms": 3000,
    "avg_ttft_ms": 475.0,  # (400 + 600 + 800 + 100) / 4
    "feedback_rate": 50.0,  # 2 rated of 4 replies
    "thumbs_up": 1,
    "thumbs_down": 1,
    "satisfaction_rate": 50.0,
    "ratings": 1,
    "avg_rating": 5.0,
    "csat": 100.0,
    "resolution_rate": 50.0,  # S1 confirmed, S2 unresolved, S3 pending (left out)
    "escalation_rate": 0.0,
    "engagement_rate": 33.33,  # S1 only sent 2 messages
    "avg_engagement_score": 28.33,  # (50 + 25 + 10) / 3
    "input_tokens": 3360,
    "output_tokens": 630,
    "tokens": 3990,
    "cost_usd": 0.000825,
    "price_unknown_calls": 1,
    "cost_per_session": 0.000275,
    "provider_success_rate": 83.33,  # 5 of 6 calls answered
    "failover_rate": 16.67,  # 1 of 6
    "failovers": 1,
}


# --- Fixture --------------------------------------------------------------------------------
def _at(when: datetime) -> Any:
    return time_machine.travel(when, tick=False)


def _session(when: datetime, user_type: str = "anonymous") -> ChatSession:
    with _at(when):
        return ChatSession.objects.create(token_hash="0" * 64, user_type=user_type)


def _user(session: ChatSession, seq: int, text: str, when: datetime) -> ChatMessage:
    with _at(when):
        message = ChatMessage.objects.create(session=session, seq=seq, role="user", text=text)
    ChatSession.objects.filter(pk=session.pk).update(last_seq=seq, last_seen_at=when)
    return message


def _reply(
    session: ChatSession, seq: int, when: datetime, *, provider: str, model: str, ttft: int, duration: int, **extra: Any
) -> ChatMessage:
    with _at(when):
        message = ChatMessage.objects.create(
            session=session,
            seq=seq,
            role="assistant",
            text="An answer.",
            status="complete",
            provider=provider,
            model=model,
            ttft_ms=ttft,
            duration_ms=duration,
            finished_at=when + timedelta(milliseconds=duration),
            **extra,
        )
    ChatSession.objects.filter(pk=session.pk).update(last_seq=seq)
    return message


def _call(session: ChatSession, message: ChatMessage | None, when: datetime, **fields: Any) -> ProviderCall:
    defaults: dict[str, Any] = {"feature": "chat_reply", "attempt": 1, "outcome": "ok"}
    return ProviderCall.objects.create(session=session, message=message, started_at=when, **{**defaults, **fields})


def seed() -> None:
    """The fixture described in the module docstring, with analytics recovered and rolled up."""
    t = datetime(2026, 3, 10, 9, 15, tzinfo=UTC)
    s1 = _session(t, "client")
    _user(s1, 1, "How do I get a refund on my invoice?", t)
    r1 = _reply(
        s1,
        2,
        t + timedelta(seconds=2),
        provider="openai",
        model="gpt-4o-mini",
        ttft=400,
        duration=1200,
        knowledge_sections=[{"title": TOPIC}],
    )
    _user(s1, 3, "Thanks! And how do I reset my password?", t + timedelta(minutes=5))
    r2 = _reply(
        s1, 4, t + timedelta(minutes=5, seconds=1), provider="openai", model="gpt-4o-mini", ttft=600, duration=1800
    )
    common = {"provider": "openai", "model": "gpt-4o-mini"}
    _call(s1, r1, t, input_tokens=1000, output_tokens=200, cached_tokens=0, latency_ms=1200, ttft_ms=400, **common)
    _call(
        s1,
        r2,
        t + timedelta(minutes=5),
        input_tokens=1500,
        output_tokens=300,
        cached_tokens=400,
        latency_ms=1800,
        ttft_ms=600,
        **common,
    )
    _call(
        s1,
        None,
        t + timedelta(seconds=1),
        feature="title",
        provider="openai",
        model="ft:gpt-custom",
        input_tokens=50,
        output_tokens=10,
        latency_ms=700,
    )
    with _at(t + timedelta(minutes=6)):
        Feedback.objects.create(message=r1, session=s1, rating="up")
    with _at(t + timedelta(minutes=7)):
        SessionRating.objects.create(session=s1, score=5, resolved=True)
    ChatSession.objects.filter(pk=s1.pk).update(status="closed", closed_at=t + timedelta(minutes=7))

    t = datetime(2026, 3, 12, 14, 30, tzinfo=UTC)
    s2 = _session(t)
    _user(s2, 1, "Where do I find the widget embed snippet?", t)
    r3 = _reply(s2, 2, t + timedelta(seconds=1), provider="openai", model="gpt-4o-mini", ttft=800, duration=3000)
    _call(
        s2,
        r3,
        t,
        provider="anthropic",
        model="claude-3-5-haiku-latest",
        outcome="error",
        latency_ms=500,
        error_kind="timeout",
    )
    _call(
        s2,
        r3,
        t + timedelta(seconds=1),
        provider="openai",
        model="gpt-4o-mini",
        fallback_from="anthropic",
        input_tokens=800,
        output_tokens=100,
        latency_ms=2500,
        ttft_ms=300,
    )
    with _at(t + timedelta(minutes=2)):
        Feedback.objects.create(message=r3, session=s2, rating="down")

    t = datetime(2026, 3, 15, 14, 50, tzinfo=UTC)
    s3 = _session(t)
    _user(s3, 1, "hello there", t)
    r4 = _reply(s3, 2, t + timedelta(seconds=1), provider="local", model="parley-local", ttft=100, duration=200)
    _call(s3, r4, t, provider="local", model="parley-local", input_tokens=10, output_tokens=20, latency_ms=200)

    t = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    p1 = _session(t, "client")
    _user(p1, 1, "What is the price of the pro plan?", t)
    r5 = _reply(p1, 2, t + timedelta(seconds=1), provider="openai", model="gpt-4o-mini", ttft=500, duration=1000)
    _call(p1, r5, t, provider="openai", model="gpt-4o-mini", input_tokens=400, output_tokens=100, latency_ms=1000)
    with _at(t + timedelta(minutes=5)):
        SessionRating.objects.create(session=p1, score=4, resolved=None)

    services.analytics_recover(all_sessions=True, grace=timedelta(0), idle=timedelta(minutes=30))
    services.rollups_rebuild()


@pytest.fixture(autouse=True)
def _settings(settings) -> None:
    settings.TIME_ZONE = "UTC"
    settings.RESOLUTION_IDLE_MINUTES = 30
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "Parley <reports@example.com>"


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def seeded(db, frozen) -> None:
    seed()


def run(*args: str) -> tuple[str, str]:
    """Run the command; its standard output and error."""
    out, err = StringIO(), StringIO()
    call_command(COMMAND, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


class HTMLChecker(HTMLParser):
    """Counts tags, checks every non-void tag is closed in order, and collects the text."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: Counter[str] = Counter()
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attributes += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attributes += attrs

    def handle_endtag(self, tag: str) -> None:
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        else:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(document: str) -> HTMLChecker:
    checker = HTMLChecker()
    checker.feed(document)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    return checker


# --- JSON: the numbers ----------------------------------------------------------------------
@pytest.mark.usefixtures("seeded")
def test_json_report_has_the_hand_computed_numbers() -> None:
    out, _ = run("--format", "json")
    data = json.loads(out)

    assert data["period"] == {"start": "2026-03-09", "end": "2026-03-15", "days": 7}
    assert data["previous_period"] == {"start": "2026-03-02", "end": "2026-03-08", "days": 7}
    for key, value in EXPECTED.items():
        assert data["metrics"][key] == value, key
    assert data["changes"]["sessions"] == {"previous": 1, "pct": 200.0, "direction": "up"}
    assert data["changes"]["messages"] == {"previous": 2, "pct": 300.0, "direction": "up"}
    assert data["changes"]["avg_rating"] == {"previous": 4.0, "pct": 25.0, "direction": "up"}
    assert data["changes"]["resolution_rate"] == {"previous": 100.0, "pct": -50.0, "direction": "down"}
    assert data["changes"]["satisfaction_rate"]["direction"] is None  # no thumbs the week before
    assert data["changes"]["feedback_rate"] == {"previous": 0.0, "pct": None, "direction": "up"}
    assert data["top_topics"] == [
        {"topic": TOPIC, "sessions": 1},
        {"topic": "account", "sessions": 1},
        {"topic": "billing", "sessions": 1},
        {"topic": "widget", "sessions": 1},
    ]
    assert data["common_issues"] == [{"topic": "widget", "sessions": 1}]
    assert data["user_types"] == [
        {"user_type": "anonymous", "sessions": 2, "share": 66.67},
        {"user_type": "client", "sessions": 1, "share": 33.33},
    ]
    hours = {row["hour"]: row["sessions"] for row in data["peak_hours"] if row["sessions"]}
    assert hours == {9: 1, 14: 2}
    models = {(row["provider"], row["model"]): row for row in data["models"]}
    assert models[("openai", "gpt-4o-mini")]["cost_usd"] == 0.000825
    assert models[("openai", "gpt-4o-mini")]["calls"] == 3
    assert models[("openai", "ft:gpt-custom")]["cost_usd"] is None
    assert models[("openai", "ft:gpt-custom")]["price_unknown"] is True
    providers = {row["provider"]: row for row in data["providers"]}
    assert providers["anthropic"]["failovers"] == 1
    assert providers["openai"]["avg_latency_ms"] == 1550.0  # (1200 + 1800 + 2500 + 700) / 4
    assert [(day["date"], day["sessions"], day["messages"]) for day in data["daily"] if day["sessions"]] == [
        ("2026-03-10", 1, 4),
        ("2026-03-12", 1, 2),
        ("2026-03-15", 1, 2),
    ]
    assert data["definitions"]["sessions"] == "Chat sessions started in the period."


@pytest.mark.usefixtures("seeded")
def test_json_report_prints_the_same_numbers_as_selectors_summary() -> None:
    out, _ = run("--format", "json", "--end-date", "2026-03-15", "--days", "7")
    data = json.loads(out)
    summary = selectors.summary(WEEK)

    assert data["metrics"] == summary["metrics"]
    assert data["changes"] == summary["changes"]
    assert data["period"] == summary["period"]


@pytest.mark.django_db
def test_report_prints_the_numbers_of_the_shared_analytics_fixture(week) -> None:
    """The shared fixture (tests/analytics/conftest.py, Europe/Paris) through the command: same numbers."""
    from tests.analytics.conftest import EXPECTED as SHARED
    from tests.analytics.conftest import NOW as SHARED_NOW

    with time_machine.travel(SHARED_NOW, tick=False):
        out, _ = run("--format", "json", "--end-date", week.period.end.isoformat())
        text, _ = run("--end-date", week.period.end.isoformat())
    data = json.loads(out)

    assert data["timezone"] == "Europe/Paris"
    assert data["period"]["start"] == week.period.start.isoformat()
    for key, value in SHARED.items():
        assert data["metrics"][key] == value, key
    sessions = next(line for line in text.splitlines() if line.startswith("  Sessions  "))
    assert sessions.split()[1] == str(SHARED["sessions"])


@pytest.mark.usefixtures("seeded")
def test_json_keys_are_sorted_so_runs_diff_cleanly() -> None:
    out, _ = run("--format", "json")
    assert out == json.dumps(json.loads(out), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- Text, Markdown, HTML -------------------------------------------------------------------
@pytest.mark.usefixtures("seeded")
def test_text_report_shows_every_section_with_numbers_and_changes() -> None:
    out, _ = run()

    assert out.startswith("Parley weekly chat report: 2026-03-09 to 2026-03-15\n")
    for heading in [
        "SESSIONS",
        "MESSAGES",
        "PERFORMANCE",
        "SATISFACTION",
        "AI USAGE AND COST",
        "TOP TOPICS",
        "COMMON ISSUES (topics of unresolved sessions)",
        "USER TYPES",
        "PEAK USAGE HOURS (UTC)",
        "AI USAGE BY PROVIDER",
        "AI USAGE BY MODEL",
        "DAILY",
        "DEFINITIONS",
    ]:
        assert f"\n{heading}\n" in out, heading
    lines = out.splitlines()

    def row(name: str) -> list[str]:
        found = next(line for line in lines if line.startswith(f"  {name}  "))
        return found.split()

    # Metric, this period, previous, change.
    assert row("Sessions")[1:] == ["3", "1", "▲", "+200%"]
    assert row("Messages")[1:] == ["8", "2", "▲", "+300%"]
    assert row("Messages per session")[3:] == ["2.67", "2", "▲", "+33.3%"]
    assert row("Response time (avg)")[3:] == ["1,550", "ms", "1,000", "ms", "▲", "+55%"]
    assert row("Response time p95")[3:] == ["3,000", "ms", "1,000", "ms", "▲", "+200%"]
    assert row("Average rating")[2:] == ["5", "/", "5", "4", "/", "5", "▲", "+25%"]
    assert row("Resolution rate")[2:] == ["50%", "100%", "▼", "-50%"]
    assert row("Satisfaction rate")[2:] == ["50%", "no", "data", "no", "data"]
    assert row("Feedback rate")[2:] == ["50%", "0%", "▲", "new"]
    assert row("Escalation rate")[2:] == ["0%", "0%", "→", "no", "change"]
    assert row("Thumbs up")[2:] == ["1"]
    assert row("Visitor messages")[2:] == ["4"]
    assert "$0.000825 + price unknown for 1 call" in out
    assert f"   1. {TOPIC}  1 session" in out
    assert "   1. widget  1 session" in out  # the common issue
    assert "Busiest: 14:00 (2 sessions), 09:00 (1 session)" in out
    assert "  Sessions: Chat sessions started in the period." in out
    assert "no data" not in out.split("HOW RIGHT THE AI IS (CONFUSION")[0].split("PEAK USAGE HOURS")[1]
    # A predictor with nothing to check says "no data", never 0 %: this week has no analysis.
    assert row("Predicted satisfaction")[2:] == ["0", "0", "0", "0", "0", "no", "data"] + ["no", "data"] * 3


@pytest.mark.usefixtures("seeded")
def test_markdown_report_has_tables_changes_and_footnoted_definitions() -> None:
    out, _ = run("--format", "markdown")

    assert out.startswith("# Parley weekly chat report: 2026-03-09 to 2026-03-15\n")
    for heading in [
        "Sessions",
        "Messages",
        "Performance",
        "Satisfaction",
        "AI usage and cost",
        "Top topics",
        "Common issues",
        "User types",
        "Peak usage hours",
        "AI usage by provider",
        "AI usage by model",
        "Daily",
        "Definitions",
    ]:
        assert f"\n## {heading}" in out, heading
    assert "| Sessions[^sessions] | 3 | 1 | ▲ +200% |" in out
    assert "| Satisfaction rate[^satisfaction_rate] | 50% | no data | no data |" in out
    assert "| Thumbs up[^thumbs_up] | 1 |  |  |" in out
    assert "[^sessions]: **Sessions**: Chat sessions started in the period." in out
    assert "| 1 | \\<b\\>Billing\\</b\\> › Refunds | 1 |" in out
    assert TOPIC not in out
    assert "| openai | ft:gpt-custom | title | 1 | 50 | 10 | 0 | price unknown |" in out
    assert "| openai | gpt-4o-mini | chat\\_reply | 3 | 3,300 | 600 | 400 | \\$0.000825 |" in out
    assert "| 14:00 | 2 |" in out


@pytest.mark.usefixtures("seeded")
def test_html_report_is_a_standalone_document_with_svg_charts_and_escaped_topics() -> None:
    out, _ = run("--format", "html")
    checker = check_html(out)

    assert out.startswith("<!DOCTYPE html>")
    assert checker.tags["html"] == checker.tags["head"] == checker.tags["body"] == 1
    assert checker.tags["svg"] >= 4  # daily, thumbs, ratings per day, peak hours, heatmap, topics, issues
    assert checker.tags["script"] == 0
    assert checker.tags["b"] == 0  # the topic's <b> is text, not markup
    assert "&lt;b&gt;Billing&lt;/b&gt; › Refunds" in out
    assert TOPIC in "".join(checker.text)
    lowered = out.lower()
    for external in ["http://", "https://", "src=", "href=", "<link", "@import", "url(", "javascript:"]:
        assert external not in lowered, external
    assert not any(name.startswith("on") for name, _ in checker.attributes)  # no event handlers
    assert ("title", "Chat sessions started in the period.") in checker.attributes
    text = " ".join(" ".join(checker.text).split())
    assert "Sessions 3 1 ▲ +200%" in text
    assert "Satisfaction rate 50% no data no data" in text
    assert "price unknown" in text
    assert "Definitions" in text


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_unpriced_model_shows_price_unknown_never_zero_dollars(fmt: str) -> None:
    out, _ = run("--format", fmt)
    models = out.split("by model")[1] if fmt != "text" else out.split("AI USAGE BY MODEL")[1]
    rows = models.split("<tr>") if fmt == "html" else models.splitlines()
    line = next(row for row in rows if "ft:gpt-custom" in row)

    assert "price unknown" in line
    assert "$0" not in line


@pytest.mark.usefixtures("seeded")
def test_filters_narrow_the_report_to_one_user_type() -> None:
    out, _ = run("--format", "json", "--user-type", "client")
    data = json.loads(out)

    assert data["filters"] == {"user_type": "client", "provider": None, "source": None, "external_user_id": None}
    assert data["metrics"]["sessions"] == 1
    assert data["metrics"]["messages"] == 4
    assert data["changes"]["sessions"] == {"previous": 1, "pct": 0.0, "direction": "flat"}
    text, _ = run("--user-type", "client")
    assert "Filters: user type client" in text


@pytest.mark.usefixtures("seeded")
def test_filters_narrow_the_report_to_one_provider() -> None:
    out, _ = run("--format", "json", "--provider", "openai")
    data = json.loads(out)

    assert data["metrics"]["sessions"] == 2  # S1 and S2 were answered by openai, S3 by local
    assert [row["provider"] for row in data["providers"]] == ["openai"]
    assert data["metrics"]["cost_usd"] == 0.000825


# --- Empty periods --------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.usefixtures("frozen")
@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_period_says_no_data_in_every_format(fmt: str) -> None:
    out, _ = run("--format", fmt, "--end-date", "2020-01-07")

    if fmt == "json":
        data = json.loads(out)
        assert data["metrics"]["sessions"] == 0
        assert data["metrics"]["avg_response_time_ms"] is None
        assert data["metrics"]["resolution_rate"] is None
        assert data["top_topics"] == []
        assert data["models"] == []
    else:
        assert "No data: no chat sessions and no AI calls from 2020-01-01 to 2020-01-07." in out
        assert "no data" in out
        assert "Response time (avg)" in out
    if fmt == "html":
        check_html(out)


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen")
def test_empty_period_after_a_busy_one_shows_the_drop() -> None:
    seed()
    out, _ = run("--end-date", "2026-03-22")
    sessions = next(line for line in out.splitlines() if line.startswith("  Sessions  "))

    assert sessions.split()[1:] == ["0", "3", "▼", "-100%"]
    assert "No data: no chat sessions and no AI calls" in out


# --- Options --------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("value", ["2026/03/15", "15-03-2026", "2026-02-30", "20260315", "last week", ""])
def test_bad_end_date_is_refused_naming_the_option_and_format(value: str) -> None:
    with pytest.raises(CommandError) as error:
        run(f"--end-date={value}")

    assert "--end-date" in str(error.value)
    assert "YYYY-MM-DD" in str(error.value)


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["0", "-1", "367"])
def test_days_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(CommandError, match=r"--days must be between 1 and 366"):
        run("--days", value)


@pytest.mark.django_db
def test_days_not_a_number_is_refused() -> None:
    with pytest.raises(CommandError, match="--days"):
        run("--days", "seven")


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen")
def test_end_date_defaults_to_today_in_time_zone(settings) -> None:
    settings.TIME_ZONE = "Pacific/Auckland"  # Sunday 15:00 UTC is Monday 04:00 there
    out, _ = run("--format", "json")

    assert json.loads(out)["period"] == {"start": "2026-03-10", "end": "2026-03-16", "days": 7}


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen")
def test_end_date_yesterday_reports_the_week_that_just_ended() -> None:
    out, _ = run("--format", "json", "--end-date", "yesterday")

    assert json.loads(out)["period"] == {"start": "2026-03-08", "end": "2026-03-14", "days": 7}


@pytest.mark.usefixtures("seeded")
def test_output_writes_the_report_to_the_file(tmp_path: Path) -> None:
    target = tmp_path / "week.html"
    out, err = run("--format", "html", "--output", str(target))

    assert out == ""
    assert f"Wrote the html report to {target}." in err
    check_html(target.read_text(encoding="utf-8"))
    assert "Parley weekly chat report: 2026-03-09 to 2026-03-15" in target.read_text(encoding="utf-8")


@pytest.mark.django_db
def test_output_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="does not exist"):
        run("--output", str(tmp_path / "nowhere" / "week.txt"))
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.django_db
def test_output_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="is a directory"):
        run("--output", str(tmp_path))


@pytest.mark.usefixtures("seeded")
def test_long_range_rolls_up_each_day_under_a_progress_bar() -> None:
    out, err = run("--format", "json", "--days", "40")

    assert "Rolling up" in err
    assert "80/80" in err  # 40 days and the 40 before them
    assert json.loads(out)["metrics"]["sessions"] == 4  # P1 is in range now
    _, quiet = run("--format", "json", "--days", "40", "--no-progress")
    assert "Rolling up" not in quiet


@pytest.mark.usefixtures("seeded")
def test_short_range_shows_no_progress_bar() -> None:
    _, err = run("--format", "json")
    assert "Rolling up" not in err


@pytest.mark.usefixtures("seeded")
def test_report_refreshes_the_rollups_first() -> None:
    t = datetime(2026, 3, 14, 11, 0, tzinfo=UTC)
    late = _session(t)
    _user(late, 1, "Can I export a CSV of the dashboard?", t)
    services.analytics_recover(all_sessions=True, grace=timedelta(0), idle=timedelta(minutes=30))
    assert selectors.summary(WEEK)["metrics"]["sessions"] == 3  # not rolled up yet

    out, _ = run("--format", "json")
    assert json.loads(out)["metrics"]["sessions"] == 4


# --- Email ----------------------------------------------------------------------------------
@pytest.mark.usefixtures("seeded")
def test_email_sends_one_message_with_the_html_alternative() -> None:
    out, err = run("--format", "html", "--email", "ops@example.com")

    assert out == ""
    assert "Emailed the report to ops@example.com." in err
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ops@example.com"]
    assert message.from_email == "Parley <reports@example.com>"
    assert message.subject == ("Parley weekly chat report: 2026-03-09 to 2026-03-15: 3 sessions (▲ +200%), 8 messages")
    assert message.body.startswith("Parley weekly chat report")  # the text version
    assert "SESSIONS" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert "<svg" in html
    check_html(html)


@pytest.mark.usefixtures("seeded")
def test_email_of_the_text_format_is_text_only() -> None:
    run("--email", "ops@example.com")

    [message] = mail.outbox
    assert message.alternatives == []
    assert message.attachments == []
    assert "SESSIONS" in message.body


@pytest.mark.usefixtures("seeded")
def test_email_of_the_json_format_attaches_it_to_the_text_body() -> None:
    run("--format", "json", "--email", "ops@example.com")

    [message] = mail.outbox
    [(name, content, mimetype)] = message.attachments
    assert name == "chat-report-2026-03-09-to-2026-03-15.json"
    assert mimetype == "application/json"
    assert json.loads(content)["metrics"]["sessions"] == 3
    assert "SESSIONS" in message.body


@pytest.mark.usefixtures("seeded")
def test_email_takes_repeated_and_comma_separated_addresses(tmp_path: Path) -> None:
    target = tmp_path / "week.txt"
    run("--email", "a@example.com, b@example.com", "--email", "c@example.com", "--output", str(target))

    [message] = mail.outbox
    assert message.to == ["a@example.com", "b@example.com", "c@example.com"]
    assert target.read_text(encoding="utf-8") == message.body


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["not-an-address", "ops@example.com,oops", ","])
def test_email_with_a_bad_address_is_refused_before_sending(value: str) -> None:
    with pytest.raises(CommandError, match="--email"):
        run("--email", value)
    assert mail.outbox == []


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen")
def test_email_of_an_empty_period_says_no_data_in_the_subject() -> None:
    run("--end-date", "2020-01-07", "--email", "ops@example.com")

    [message] = mail.outbox
    assert message.subject == "Parley weekly chat report: 2020-01-01 to 2020-01-07: no data"


# --- Formatting -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"previous": 10, "pct": 20.0, "direction": "up"}, "▲ +20%"),
        ({"previous": 10, "pct": -3.5, "direction": "down"}, "▼ -3.5%"),
        ({"previous": 10, "pct": 0.2, "direction": "flat"}, "→ +0.2%"),
        ({"previous": 0, "pct": None, "direction": "up"}, "▲ new"),
        ({"previous": 0, "pct": None, "direction": "flat"}, "→ no change"),
        ({"previous": None, "pct": None, "direction": None}, "no data"),
    ],
)
def test_format_change(change: dict[str, Any], expected: str) -> None:
    assert reports.format_change(change) == expected


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("sessions", 1234, "1,234"),
        ("avg_response_time_ms", 1550.0, "1,550 ms"),
        ("avg_response_time_ms", 475.5, "475.5 ms"),
        ("resolution_rate", 33.33, "33.33%"),
        ("resolution_rate", None, "no data"),
        ("cost_usd", 0.000825, "$0.000825"),
        ("cost_usd", 0.5, "$0.50"),
        ("cost_usd", 1234.5, "$1,234.50"),
        ("cost_usd", 0.0, "$0.00"),
        ("avg_rating", 4.33, "4.33 / 5"),
        ("tokens", 3990, "3,990"),
    ],
)
def test_format_value(key: str, value: float | None, expected: str) -> None:
    assert reports.format_value(key, value) == expected


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [
        ("count", 10**17 + 1, "100,000,000,000,000,001"),  # an int is printed exactly
        ("count", 2.5, "2.5"),
        ("ms", 3000, "3,000 ms"),
        ("percent", 0.0, "0%"),
        ("score", 28.33, "28.33 / 100"),
        ("ratio", -0.001, "0"),  # never "-0"
        ("usd", None, "no data"),
    ],
)
def test_format_unit_is_the_one_formatter_of_every_unit(unit: str, value: float | None, expected: str) -> None:
    assert reports.format_unit(unit, value) == expected


def test_render_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        reports.render({}, "pdf")

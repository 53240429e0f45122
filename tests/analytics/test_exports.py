"""The staff exports: access, CSV and JSON lines, formula neutralisation, filters, streaming, and the
same numbers as the selectors and the weekly report on the hand-computed week
(tests/analytics/conftest.py: Europe/Paris, 2026-03-02 to 2026-03-08).

Requests go through `AsyncClient`, so the views' async iterators are consumed asynchronously as
under ASGI; one test drives Django's ASGI handler itself and counts the body messages it sends.
"""

from __future__ import annotations

import asyncio
import csv
import json
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth import get_user_model
from django.core.asgi import get_asgi_application
from django.core.management import call_command
from django.http import QueryDict
from django.test import AsyncClient, Client
from django.urls import reverse

from analytics import exports, params, selectors, services
from analytics.models import ChatAnalytics
from assistant.models import ChatMessage, ChatSession, Feedback
from tests.analytics.conftest import NOW, PERIOD, Week

pytestmark = pytest.mark.django_db(transaction=True)

EXPORTS = ["sessions", "messages", "analytics"]
WEEK = {"start_date": "2026-03-02", "end_date": "2026-03-08"}


def _url(name: str) -> str:
    return reverse(f"analytics:export-{name}")


@pytest.fixture
def staff_user() -> Any:
    return get_user_model().objects.create_user("staff", password="pw", is_staff=True)


@pytest.fixture
async def staff(staff_user) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(staff_user)
    return client


async def _body(response: Any) -> bytes:
    if not response.streaming:
        return response.content
    return b"".join([chunk async for chunk in response.streaming_content])


async def _export(client: AsyncClient, name: str, **query: str) -> tuple[Any, bytes]:
    response = await client.get(_url(name), query)
    return response, await _body(response)


async def _rows(client: AsyncClient, name: str, **query: str) -> list[dict[str, str]]:
    response, body = await _export(client, name, **query)
    assert response.status_code == 200, body
    return list(csv.DictReader(StringIO(body.decode(), newline="")))


async def _jsonl(client: AsyncClient, name: str, **query: str) -> list[dict[str, Any]]:
    response, body = await _export(client, name, format="jsonl", **query)
    assert response.status_code == 200, body
    return [json.loads(line) for line in body.decode().split("\n")[:-1]]  # JSON lines end with "\n"


# --- Access ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", EXPORTS)
async def test_anonymous_visitor_is_sent_to_the_admin_login(name: str) -> None:
    response = await AsyncClient().get(_url(name), {"format": "jsonl"})
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")
    assert f"/admin/chat-analytics/export/{name}/" in response["Location"]


@pytest.mark.parametrize("name", EXPORTS)
async def test_signed_in_user_who_is_not_staff_gets_403(name: str) -> None:
    user = await get_user_model().objects.acreate_user("visitor", password="pw")
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get(_url(name))
    assert response.status_code == 403
    assert not response.streaming


@pytest.mark.parametrize("name", EXPORTS)
async def test_inactive_staff_user_gets_403(name: str) -> None:
    user = await get_user_model().objects.acreate_user("gone", password="pw", is_staff=True, is_active=False)
    client = AsyncClient()
    await client.aforce_login(user)
    # The auth backend does not load inactive users: the request is anonymous, sent to the login.
    assert (await client.get(_url(name))).status_code == 302


@pytest.mark.parametrize("name", EXPORTS)
async def test_staff_gets_a_streamed_csv_attachment_with_its_header_row_even_when_empty(staff, name: str) -> None:
    response, body = await _export(staff, name)
    assert response.status_code == 200
    assert response.streaming and response.is_async
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="parley-{name}-all-time.csv"'
    assert response["Cache-Control"] == "no-store"
    export = {"sessions": exports.SESSIONS, "messages": exports.MESSAGES, "analytics": exports.ANALYTICS}[name]
    assert list(csv.reader(StringIO(body.decode()))) == [[column.name for column in export.columns]]


@pytest.mark.parametrize("name", EXPORTS)
async def test_post_is_not_allowed(staff, name: str) -> None:
    assert (await staff.post(_url(name))).status_code == 405


# --- Bad parameters -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "query", "parameter"),
    [
        ("sessions", {"start_date": "2026-13-01"}, "start_date"),
        ("messages", {"end_date": "yesterday"}, "end_date"),
        ("analytics", {"start_date": "2026-03-09", "end_date": "2026-03-02"}, "start_date"),
        ("sessions", {"user_type": "robot"}, "user_type"),
        ("messages", {"is_active": "maybe"}, "is_active"),
        ("analytics", {"resolved": "perhaps"}, "resolved"),
        ("sessions", {"session_id": "not-a-uuid"}, "session_id"),
        ("messages", {"sender_type": "bot"}, "sender_type"),
        ("messages", {"format": "xlsx"}, "format"),
        ("sessions", {"end_dat": "2026-03-08"}, "end_dat"),
        ("messages", {"range": "7d"}, "range"),
        # A filter that exists but means nothing for the export: refused, not ignored.
        ("sessions", {"sender_type": "user"}, "sender_type"),
        ("analytics", {"sender_type": "assistant"}, "sender_type"),
    ],
)
async def test_bad_parameter_gets_a_400_naming_it(staff, name: str, query: dict[str, str], parameter: str) -> None:
    response = await staff.get(_url(name), query)
    assert response.status_code == 400
    data = json.loads(response.content)
    assert data["parameter"] == parameter
    assert parameter in data["error"]


async def test_a_parameter_given_twice_is_refused(staff) -> None:
    response = await staff.get(_url("messages") + "?user_type=client&user_type=anonymous")
    assert response.status_code == 400
    assert json.loads(response.content)["parameter"] == "user_type"


# --- The week: the same numbers as the selectors and the weekly report ----------------------
@pytest.fixture
def numbers(week: Week) -> dict[str, Any]:
    """The selectors' summary (all and client only) and the weekly report's JSON, for the week."""
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("generate_chat_weekly_report", "--format", "json", "--end-date", PERIOD.end.isoformat(),
                     "--no-progress", stdout=out, stderr=StringIO())  # fmt: skip
    return {
        "summary": selectors.summary(PERIOD)["metrics"],
        "client": selectors.summary(PERIOD, selectors.Filters(user_type="client"))["metrics"],
        "report": json.loads(out.getvalue())["metrics"],
    }


def _sum(rows: list[dict[str, str]], column: str) -> int:
    return sum(int(row[column]) for row in rows)


@pytest.mark.backends
async def test_exports_of_the_week_count_what_the_selectors_and_the_weekly_report_print(staff, numbers) -> None:
    summary, report = numbers["summary"], numbers["report"]
    sessions = await _rows(staff, "sessions", **WEEK)
    messages = await _rows(staff, "messages", **WEEK)
    analytics = await _rows(staff, "analytics", **WEEK)
    # Hand-computed (conftest.EXPECTED): 3 sessions, 8 messages, 4 from visitors, 4 replies.
    for metrics in (summary, report):
        assert len(sessions) == len(analytics) == metrics["sessions"] == 3
        assert len(messages) == metrics["messages"] == 8
        assert _sum(sessions, "messages") == _sum(analytics, "total_messages") == metrics["messages"]
        assert _sum(sessions, "user_messages") == _sum(analytics, "user_messages") == metrics["user_messages"] == 4
        assert _sum(sessions, "assistant_messages") == metrics["assistant_messages"] == 4
        assert _sum(analytics, "feedback_up") == metrics["thumbs_up"] == 1
        assert _sum(analytics, "feedback_down") == metrics["thumbs_down"] == 1
        assert sum(row["closed"] == "true" for row in sessions) == metrics["closed_sessions"] == 3
        assert sum(row["escalated"] == "true" for row in sessions) == 1  # escalation_rate 33.33 % of 3
        assert metrics["escalation_rate"] == 33.33
        assert [row["rating"] for row in sessions if row["rating"]] == ["5", "2"]  # avg_rating 3.5
        assert metrics["avg_rating"] == 3.5
    assert len(await _rows(staff, "messages", sender_type="user", **WEEK)) == summary["user_messages"]
    assert len(await _rows(staff, "messages", sender_type="assistant", **WEEK)) == summary["assistant_messages"]
    assert len(await _rows(staff, "sessions", is_active="true", **WEEK)) == summary["active_sessions"] == 0
    resolved = await _rows(staff, "sessions", resolved="true", **WEEK)
    assert len(resolved) == 1 and summary["confirmed_resolution_rate"] == 33.33  # S1 of 3 finished
    feedback = [row["feedback"] for row in messages if row["feedback"]]
    assert sorted(feedback) == ["down", "up"]
    assert feedback.count("up") == summary["thumbs_up"] and feedback.count("down") == summary["thumbs_down"]
    tokens = sum(int(row["input_tokens"] or 0) + int(row["output_tokens"] or 0) for row in messages)
    assert tokens == 0  # messages carry no tokens in the fixture; provider calls do (`tokens` metric 5650)


@pytest.mark.backends
async def test_filtered_exports_count_what_the_filtered_selectors_print(staff, numbers) -> None:
    client = numbers["client"]
    sessions = await _rows(staff, "sessions", user_type="client", **WEEK)
    messages = await _rows(staff, "messages", user_type="client", **WEEK)
    analytics = await _jsonl(staff, "analytics", user_type="client", **WEEK)
    assert len(sessions) == len(analytics) == client["sessions"] == 1
    assert len(messages) == client["messages"] == 4
    assert sum(row["total_messages"] for row in analytics) == client["messages"]


# --- Filters --------------------------------------------------------------------------------
@pytest.mark.backends
async def test_a_session_and_its_messages_belong_to_the_local_day_it_started(staff, week: Week) -> None:
    s1, s4 = week.sessions["S1"], week.sessions["S4"]
    # S1 started 2026-03-01 23:30 UTC: Monday 03-02 in Paris. S4 started 03-08 23:30 UTC: 03-09.
    first_day = await _rows(staff, "sessions", start_date="2026-03-02", end_date="2026-03-02")
    assert [row["session_id"] for row in first_day] == [str(s1.public_id)]
    assert first_day[0]["day"] == "2026-03-02"
    assert first_day[0]["created_at"] == "2026-03-01T23:30:00.000000+00:00"
    messages = await _rows(staff, "messages", start_date="2026-03-02", end_date="2026-03-02")
    assert [(row["session_id"], row["seq"]) for row in messages] == [(str(s1.public_id), "1"), (str(s1.public_id), "2")]
    later = await _rows(staff, "analytics", start_date="2026-03-09")
    assert [row["session_id"] for row in later] == [str(s4.public_id)]
    everything = await _rows(staff, "messages")
    assert len(everything) == 12  # S0 2, S1 2, S2 4, S3 2, S4 2


@pytest.mark.backends
async def test_every_filter_narrows_each_export(staff, week: Week) -> None:
    ids = {name: str(session.public_id) for name, session in week.sessions.items()}

    async def sessions_of(name: str, **query: str) -> list[str]:
        key = "session_id"
        rows = await _rows(staff, name, **query)
        found = {row[key] for row in rows}
        return sorted(label for label, value in ids.items() if value in found)

    for name in EXPORTS:
        assert await sessions_of(name, user_type="client") == ["S2"]
        assert await sessions_of(name, user_type="anonymous", **WEEK) == ["S1", "S3"]
        assert await sessions_of(name, session_id=ids["S3"]) == ["S3"]
        assert await sessions_of(name, resolved="true") == ["S0", "S1", "S4"]  # S1 confirmed, S0 and S4 assumed
        assert await sessions_of(name, resolved="false", **WEEK) == ["S2", "S3"]
        assert await sessions_of(name, is_active="false", end_date="2026-03-08") == ["S0", "S1", "S2", "S3"]
        assert await sessions_of(name, is_active="true") == []  # every session is idle past 30 min
        assert await sessions_of(name, start_date="2026-03-04", end_date="2026-03-06") == ["S2", "S3"]
    visitor = await _rows(staff, "messages", sender_type="user", session_id=ids["S2"])
    assert [row["text"] for row in visitor] == ["hello", "talk to a human please"]
    replies = await _rows(staff, "messages", sender_type="assistant", **WEEK)
    assert {row["role"] for row in replies} == {"assistant"} and len(replies) == 4


@pytest.mark.backends
async def test_is_active_follows_analytics_closed_flag(staff, week: Week) -> None:
    s2 = week.sessions["S2"]
    await ChatAnalytics.objects.filter(session=s2).aupdate(closed=False)
    assert [row["session_id"] for row in await _rows(staff, "sessions", is_active="true")] == [str(s2.public_id)]
    assert len(await _rows(staff, "messages", is_active="true")) == 4
    assert len(await _rows(staff, "analytics", is_active="true")) == 1


async def test_filename_names_the_period(staff) -> None:
    response, _ = await _export(staff, "messages", format="jsonl", **WEEK)
    assert response["Content-Disposition"] == 'attachment; filename="parley-messages-2026-03-02_2026-03-08.jsonl"'
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"


# --- JSON lines -----------------------------------------------------------------------------
@pytest.mark.backends
async def test_jsonl_gives_one_typed_object_per_line(staff, week: Week) -> None:
    messages = await _jsonl(staff, "messages", session_id=str(week.sessions["S2"].public_id))
    assert [(m["seq"], m["role"], m["status"]) for m in messages] == [
        (1, "user", "complete"), (2, "assistant", "complete"), (3, "user", "complete"), (4, "assistant", "complete"),
    ]  # fmt: skip
    reply = messages[3]
    assert reply["duration_ms"] == 3000 and reply["ttft_ms"] == 100 and reply["cached"] is False
    assert reply["feedback"] == "down" and reply["feedback_comment"] == "not helpful"
    assert messages[0]["feedback"] is None and messages[0]["finished_at"] is None
    assert messages[0]["created_at"] == "2026-03-04T10:00:00.000000+00:00"
    assert messages[0]["session_id"] == str(week.sessions["S2"].public_id)
    (row,) = await _jsonl(staff, "analytics", session_id=str(week.sessions["S1"].public_id))
    assert row["day"] == "2026-03-02" and row["resolution"] == "confirmed" and row["resolved"] is True
    assert sorted(row["topics_discussed"]) == ["Billing › Refunds", "billing"]
    assert row["response_times_ms"] == [1000] and row["satisfaction_rating"] == 5


# --- Formula injection ----------------------------------------------------------------------
DANGEROUS = ["=cmd|' /C calc'!A0", "+1", "-1", "@SUM(A1:A9)", "\tx", "\rx"]


def _poisoned_session() -> ChatSession:
    when = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    with time_machine.travel(when, tick=False):
        session = ChatSession.objects.create(
            token_hash="x" * 64, title="=HYPERLINK(\"http://evil\")", page_url="http://x/?q=1",
            page_title="-2+3", locale="@fr", external_user_id="+33 6 00",
        )  # fmt: skip
        for seq, text in enumerate(DANGEROUS, start=1):
            ChatMessage.objects.create(session=session, seq=seq, role="user", text=text)
        reply = ChatMessage.objects.create(session=session, seq=7, role="assistant", text="=1+1", provider="local",
                                           model="-m", duration_ms=5, ttft_ms=1)  # fmt: skip
        Feedback.objects.create(message=reply, session=session, rating="down", comment="@admin")
    ChatSession.objects.filter(pk=session.pk).update(last_seq=7)
    services.session_analytics_rebuild(session_pk=session.pk, now=when + timedelta(minutes=1))
    ChatAnalytics.objects.filter(session=session).update(avg_sentiment=-0.5, topics_discussed=["=evil", "ok"])
    return session


@pytest.fixture
def poisoned(db) -> ChatSession:
    return _poisoned_session()


@pytest.mark.backends
async def test_csv_cells_that_would_start_a_formula_are_neutralised(staff, poisoned: ChatSession) -> None:
    messages = await _rows(staff, "messages")
    assert [row["text"] for row in messages] == ["'" + text for text in [*DANGEROUS, "=1+1"]]
    reply = messages[-1]
    assert reply["model"] == "'-m" and reply["feedback_comment"] == "'@admin"
    assert reply["duration_ms"] == "5" and reply["seq"] == "7"  # numbers stay numbers
    (session,) = await _rows(staff, "sessions")
    assert session["title"] == '\'=HYPERLINK("http://evil")'
    assert session["page_title"] == "'-2+3" and session["locale"] == "'@fr"
    assert session["external_user_id"] == "'+33 6 00"
    assert session["page_url"] == "http://x/?q=1"  # harmless text is left alone
    (row,) = await _rows(staff, "analytics")
    assert row["avg_sentiment"] == "-0.5"  # a number, not text: not prefixed
    assert json.loads(row["topics_discussed"]) == ["=evil", "ok"]  # JSON text starts with "["
    assert row["topics_discussed"].startswith("[")


@pytest.mark.backends
async def test_jsonl_keeps_the_text_exactly_as_stored(staff, poisoned: ChatSession) -> None:
    messages = await _jsonl(staff, "messages")
    assert [row["text"] for row in messages] == [*DANGEROUS, "=1+1"]
    (row,) = await _jsonl(staff, "analytics")
    assert row["avg_sentiment"] == -0.5 and row["topics_discussed"] == ["=evil", "ok"]


def test_neutralize_prefixes_only_formula_starts() -> None:
    for text in DANGEROUS:
        assert exports.neutralize(text) == "'" + text
    for text in ["", "hello", "1-1", "'=1", "http://x", "[1]"]:
        assert exports.neutralize(text) == text


# --- Streaming ------------------------------------------------------------------------------
@pytest.mark.backends
async def test_export_reads_and_sends_one_chunk_at_a_time(staff, week: Week, monkeypatch) -> None:
    reads: list[tuple[Any, int]] = []
    real = exports.fetch_rows

    def counted(*args: Any, **kwargs: Any) -> Any:
        values = real(*args, **kwargs)
        reads.append((kwargs["after"], len(values)))
        return values

    monkeypatch.setattr(exports, "CHUNK_ROWS", 5)
    monkeypatch.setattr(exports, "fetch_rows", counted)
    response = await staff.get(_url("messages"))
    chunks = aiter(response.streaming_content)
    assert next(csv.reader([(await anext(chunks)).decode()]))[0] == "session_id"  # the header, before any read
    assert reads == []
    first = await anext(chunks)
    assert first.decode().count("\n") == 5
    assert len(reads) <= 2  # the first chunk, and at most the next one read ahead
    rest = [chunk async for chunk in chunks]
    assert [count for _, count in reads] == [5, 5, 2]  # 12 messages, keyset-paginated
    assert reads[0][0] == 0 and reads[1][0] < reads[2][0]
    assert len(rest) == 2


@pytest.mark.backends
async def test_closing_an_export_mid_stream_stops_reading(week: Week, monkeypatch) -> None:
    reads: list[Any] = []
    real = exports.fetch_rows

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs["after"])
        return real(*args, **kwargs)

    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
    monkeypatch.setattr(exports, "fetch_rows", counted)
    query = params.export_query(QueryDict(""), allowed=set(exports.MESSAGE_FILTERS))
    chunks = exports.stream(exports.MESSAGES, query)
    await anext(chunks)  # header
    await anext(chunks)  # the first two messages
    await chunks.aclose()  # what Django does when the client disconnects
    await asyncio.sleep(0.2)
    assert len(reads) <= 2  # of the 6 chunks, the one sent and the one read ahead


@pytest.fixture
def staff_cookie(staff_user) -> bytes:
    """A signed-in staff session's cookie, made in this (the test database's) thread."""
    client = Client()
    client.force_login(staff_user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.mark.backends
async def test_asgi_handler_sends_the_export_as_several_body_messages(staff_cookie, week: Week, monkeypatch) -> None:
    monkeypatch.setattr(exports, "CHUNK_ROWS", 4)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": _url("messages"), "raw_path": _url("messages").encode(), "query_string": b"format=jsonl",
        "root_path": "", "headers": [(b"host", b"testserver"), (b"cookie", staff_cookie)],
        "client": ("127.0.0.1", 1234), "server": ("testserver", 80),
    }  # fmt: skip
    app = ApplicationCommunicator(get_asgi_application(), scope)
    await app.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await app.receive_output(10)
    assert start["type"] == "http.response.start" and start["status"] == 200
    bodies = []
    while True:
        message = await app.receive_output(10)
        bodies.append(message)
        if not message.get("more_body"):
            break
    await app.wait(10)
    lines = b"".join(message.get("body", b"") for message in bodies).decode().splitlines()
    assert len(lines) == 12
    assert len([message for message in bodies if message.get("body")]) == 3  # 4 + 4 + 4 rows


@pytest.mark.backends
async def test_memory_stays_bounded_while_a_large_export_streams(staff, monkeypatch) -> None:
    """20,000 messages of 300 characters (~8 MB of CSV) in chunks of 250: never all in memory."""

    def seed() -> None:
        session = ChatSession.objects.create(token_hash="x" * 64, last_seq=20_000)
        text = "lorem ipsum " * 24 + "dolor sit amet"
        ChatMessage.objects.bulk_create(
            ChatMessage(session=session, seq=seq, role="user", text=text, public_id=uuid.uuid4())
            for seq in range(1, 20_001)
        )

    await sync_to_async(seed)()
    monkeypatch.setattr(exports, "CHUNK_ROWS", 250)
    response = await staff.get(_url("messages"))
    total = chunks = 0
    tracemalloc.start()
    try:
        async for chunk in response.streaming_content:
            total += len(chunk)
            chunks += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chunks == 81 and total > 7_000_000  # the header and 80 chunks
    assert peak < total / 5, f"peak {peak:,} bytes while streaming {total:,}"

"""GET /api/v1/sessions/ and /api/v1/sessions/{id}/: the item's shape, every filter, the cursor walk,
bad parameters, and one session's detail.

The listed sessions are built by hand (tests/api/staff/builders.py) with the analytics values each
filter reads; expected lists are written out, newest first.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client

from api.staff.pagination import Cursor, decode_cursor, encode_cursor
from tests.analytics.conftest import NOW
from tests.api.staff.builders import T0, make_session

pytestmark = [pytest.mark.django_db, pytest.mark.backends]

URL = "/api/v1/sessions/"
DAY = timedelta(days=1)


def _names(client: Client, **query: Any) -> list[str]:
    response = client.get(URL, query)
    assert response.status_code == 200, response.content
    return [item["title"] for item in response.json()["results"]]


@pytest.fixture
def four(db) -> dict[str, Any]:
    """A, B, C, D on four days (newest last); E has no message (never listed)."""
    a = make_session(
        "Install help", at=T0, messages=("how to install docker",), status="active",
        analytics={"resolved": False, "resolution": "unresolved", "escalated_to_human": True,
                   "satisfaction_rating": 2, "topics_discussed": ["installation"], "provider": "gemini"},
    )  # fmt: skip
    b = make_session(
        "Refund", at=T0 + DAY, messages=("I want my money back", "refund 50% please"), status="closed",
        source="api", user_type="client",
        analytics={"resolved": True, "resolution": "confirmed", "satisfaction_rating": 5,
                   "topics_discussed": ["Billing › Refunds", "billing"], "provider": "openai", "closed": True},
    )  # fmt: skip
    c = make_session(
        "Misc", at=T0 + 2 * DAY, messages=("Quokka zephyr question",), status="closed", source="import:csv",
        user_type="provider",
        analytics={"resolved": True, "resolution": "assumed", "satisfaction_rating": 4, "provider": "anthropic"},
    )  # fmt: skip
    d = make_session("Fresh", at=T0 + 3 * DAY, messages=("hi",), no_analytics=True)
    e = make_session("Empty", at=T0 + 4 * DAY, messages=())
    return {"A": a, "B": b, "C": c, "D": d, "E": e}


# --- the item -------------------------------------------------------------------------------------
def test_an_item_carries_the_session_its_analytics_and_its_cost(api: Client) -> None:
    session = make_session(
        "Refund please", messages=("I need a refund",), user_type="client", external_user_id="u-7", source="api",
        analytics={"resolved": True, "resolution": "confirmed", "satisfaction_rating": 5, "feedback_up": 1,
                   "topics_discussed": ["Billing › Refunds"], "avg_sentiment": 0.25, "engagement_score": 40,
                   "provider": "openai", "avg_response_time_ms": 1200, "assistant_messages": 1, "total_messages": 2,
                   "closed": True},
        calls=({"provider": "openai", "model": "gpt-4.1-mini", "input_tokens": 1000, "output_tokens": 500,
                "cached_tokens": 200},
               {"provider": "openai", "model": "llama3.1:8b", "input_tokens": 50, "output_tokens": 0,
                "outcome": "error"}),
    )  # fmt: skip
    body = api.get(URL).json()
    assert body["next_cursor"] is None and body["next"] is None and body["limit"] == 25
    assert body["results"] == [
        {
            "id": str(session.public_id),
            "title": "Refund please",
            "status": "active",
            "source": "api",
            "user_type": "client",
            "external_user_id": "u-7",
            "created_at": "2026-03-04T10:00:00Z",
            "last_activity_at": "2026-03-04T10:05:00Z",
            "message_count": 2,
            "analytics": {
                "resolved": True, "resolution": "confirmed", "escalated": False, "human_involved": False,
                "handoff_requests": 0, "rating": 5, "satisfied": True, "feedback_up": 1, "feedback_down": 0,
                "topics": ["Billing › Refunds"], "sentiment": 0.25, "engagement_score": 40, "provider": "openai",
                "avg_response_time_ms": 1200, "user_messages": 1, "assistant_messages": 1, "agent_messages": 0,
                "closed": True,
                # gpt-4.1-mini at 0.40 / 1.60 / 0.10 per million: (800 x 0.40 + 200 x 0.10 + 500 x 1.60) / 1e6;
                # llama3.1:8b has no price: counted apart, not as $0.
                "provider_calls": 2, "input_tokens": 1050, "output_tokens": 500, "cost_usd": 0.00114,
                "price_unknown_calls": 1,
            },
        }
    ]  # fmt: skip


def test_a_session_without_messages_is_not_listed_and_one_not_yet_analysed_has_null_analytics(api, four) -> None:
    results = api.get(URL).json()["results"]
    assert [item["title"] for item in results] == ["Fresh", "Misc", "Refund", "Install help"]
    fresh = results[0]
    assert fresh["analytics"] is None
    assert fresh["message_count"] == 1
    assert fresh["last_activity_at"] == "2026-03-07T10:00:00Z"


# --- filters --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"user_type": "client"}, ["Refund"]),
        ({"user_type": "provider"}, ["Misc"]),
        ({"status": "closed"}, ["Misc", "Refund"]),
        ({"status": "active"}, ["Fresh", "Install help"]),
        ({"resolved": "true"}, ["Misc", "Refund"]),
        ({"resolved": "false"}, ["Install help"]),
        ({"escalated": "true"}, ["Install help"]),
        ({"escalated": "0"}, ["Misc", "Refund"]),
        ({"satisfied_only": "true"}, ["Misc", "Refund"]),
        ({"satisfied_only": "false"}, ["Fresh", "Misc", "Refund", "Install help"]),
        ({"topic": "billing"}, ["Refund"]),
        ({"topic": "Billing › Refunds"}, ["Refund"]),
        ({"topic": "Billing"}, []),  # exact topics, not substrings
        ({"provider": "gemini"}, ["Install help"]),
        ({"provider": "openai"}, ["Refund"]),
        ({"source": "api"}, ["Refund"]),
        ({"source": "import:csv"}, ["Misc"]),
        ({"source": "widget"}, ["Fresh", "Install help"]),
        ({"q": "refund"}, ["Refund"]),  # title and message
        ({"q": "QUOKKA"}, ["Misc"]),  # a message, any case
        ({"q": "money back"}, ["Refund"]),  # not the first message's only
        ({"q": "50%"}, ["Refund"]),  # % is a character, not a wildcard
        ({"q": "%%%"}, []),
        ({"q": "help"}, ["Install help"]),  # the title only
        ({"start_date": "2026-03-05", "end_date": "2026-03-06"}, ["Misc", "Refund"]),
        ({"start_date": "2026-03-06"}, ["Fresh", "Misc"]),
        ({"end_date": "2026-03-04"}, ["Install help"]),
        ({"status": "closed", "resolved": "true", "source": "api"}, ["Refund"]),
        ({"user_type": "anonymous", "escalated": "true", "q": "docker"}, ["Install help"]),
        ({"user_type": "anonymous", "escalated": "true", "q": "refund"}, []),
    ],
)
def test_each_filter_narrows_the_listing(api: Client, four, query: dict[str, str], expected: list[str]) -> None:
    assert _names(api, **query) == expected


def test_q_searches_visitor_and_agent_messages_and_titles_not_assistant_replies(api: Client, four) -> None:
    from assistant.models import ChatMessage

    ChatMessage.objects.create(session=four["A"], seq=9, role="agent", text="A person says: Wombat.")
    ChatMessage.objects.create(session=four["C"], seq=9, role="assistant", text="The knowledge base says wombat.")
    assert _names(api, q="wombat") == ["Install help"]


@pytest.mark.parametrize("threshold", [-1, 10**9])  # Postgres: checked per session / found by the index first
@pytest.mark.parametrize(
    ("q", "expected"),
    [("refund", ["Refund"]), ("QUOKKA", ["Misc"]), ("help", ["Install help"]), ("e", None), ("zzzzzz", [])],
)
def test_both_plans_of_q_find_the_same_sessions(api, four, monkeypatch, threshold, q, expected) -> None:
    from api.staff.selectors import sessions

    monkeypatch.setattr(sessions, "Q_SET_MAX_ROWS", threshold)
    if expected is None:  # too short: refused before any plan
        assert api.get(URL, {"q": q}).status_code == 400
        return
    assert _names(api, q=q) == expected
    assert _names(api, q=q, status="closed") == [name for name in expected if name in {"Misc", "Refund"}]


def test_dates_are_local_days_in_time_zone(api: Client, settings) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    make_session("Late", at=datetime(2026, 3, 4, 23, 30, tzinfo=UTC))  # 00:30 on 03-05 in Paris
    assert _names(api, end_date="2026-03-04") == []
    assert _names(api, start_date="2026-03-05", end_date="2026-03-05") == ["Late"]


def test_filters_echo_what_was_understood(api: Client, four) -> None:
    body = api.get(URL, {"resolved": "yes", "q": "  refund ", "limit": "2"}).json()
    assert body["filters"] == {
        "start_date": None, "end_date": None, "user_type": None, "status": None, "resolved": True, "escalated": None,
        "satisfied_only": False, "topic": None, "provider": None, "source": None, "q": "refund",
    }  # fmt: skip
    assert body["limit"] == 2


# --- pagination -----------------------------------------------------------------------------------
def _walk(client: Client, between: Any = None, **query: Any) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        body = client.get(URL, {**query, **({"cursor": cursor} if cursor else {})}).json()
        pages.append([item["title"] for item in body["results"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert body["next"].endswith(f"cursor={cursor}")
        if between is not None:
            between(len(pages))


def test_the_cursor_walks_every_session_once_newest_first_ties_included(api: Client) -> None:
    for number in range(4):
        make_session(f"s{number}", at=T0 + number * timedelta(minutes=1))
    for number in range(4, 7):  # three sessions that started in the same microsecond
        make_session(f"s{number}", at=T0 + timedelta(hours=1))
    pages = _walk(api, limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    walked = [name for page in pages for name in page]
    assert sorted(walked) == [f"s{n}" for n in range(7)]  # each once
    assert set(walked[:3]) == {"s4", "s5", "s6"} and walked[3:] == ["s3", "s2", "s1", "s0"]


def test_the_walk_is_stable_while_new_sessions_start(api: Client) -> None:
    for number in range(6):
        make_session(f"old{number}", at=T0 + number * timedelta(minutes=1))

    def insert(page: int) -> None:  # newer sessions begin between the pages
        make_session(f"new{page}", at=T0 + timedelta(days=1, minutes=page))

    walked = [name for page in _walk(api, between=insert, limit=2) for name in page]
    assert walked == ["old5", "old4", "old3", "old2", "old1", "old0"]
    assert _names(api, limit=2) == ["new2", "new1"]


def test_a_page_deep_in_the_walk_filters_like_the_first(api: Client, four) -> None:
    pages = _walk(api, limit=1, status="closed")
    assert pages == [["Misc"], ["Refund"]]


def test_the_cursor_round_trips_and_is_opaque() -> None:
    cursor = Cursor(created_at=datetime(2026, 3, 4, 10, 0, 0, 123456, tzinfo=UTC), pk=42)
    text = encode_cursor(cursor)
    assert decode_cursor(text) == cursor
    assert "2026" not in text and "|" not in text


# --- bad parameters -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"status": "open"}, "status"),
        ({"user_type": "robot"}, "user_type"),
        ({"resolved": "maybe"}, "resolved"),
        ({"escalated": "2"}, "escalated"),
        ({"satisfied_only": "sure"}, "satisfied_only"),
        ({"provider": "skynet"}, "provider"),
        ({"source": "Widget!"}, "source"),
        ({"source": "x" * 33}, "source"),
        ({"topic": "t" * 101}, "topic"),
        ({"topic": "a\x00b"}, "topic"),
        ({"q": "ab"}, "q"),
        ({"q": "q" * 101}, "q"),
        ({"q": "nul\x00byte"}, "q"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": encode_cursor(Cursor(datetime(2026, 1, 1, tzinfo=UTC), 1))[:-2] + "@@"}, "cursor"),
        ({"cursor": "MXw5OTk5LTEyLTMxVDIzOjU5OjU5LTIzOjU5fDE"}, "cursor"),  # a date past datetime.max in UTC
        ({"cursor": "x" * 201}, "cursor"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"end_date": "1999-12-31"}, "end_date"),
        ({"start_date": "2026-03-09", "end_date": "2026-03-01"}, "start_date"),
        ({"status": ""}, "status"),  # empty: refused, not taken as absent
        ({"q": "   "}, "q"),
        ({"page": "2"}, "page"),  # unknown: refused, not ignored
        ({"Status": "closed"}, "Status"),
    ],
)
def test_a_bad_parameter_gets_a_400_naming_it(api: Client, query: dict[str, str], parameter: str) -> None:
    response = api.get(URL, query)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_parameter"
    assert body["parameter"] == parameter
    assert body["detail"]


def test_a_parameter_given_twice_is_refused(api: Client) -> None:
    response = api.get(f"{URL}?status=active&status=closed")
    assert response.status_code == 400
    assert response.json()["parameter"] == "status"


# --- one session ----------------------------------------------------------------------------------
def test_the_detail_has_messages_feedback_rating_analytics_and_calls(api: Client, week) -> None:
    s2 = week.sessions["S2"]
    with time_machine.travel(NOW, tick=False):
        response = api.get(f"{URL}{s2.public_id}/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(s2.public_id)
    assert (body["status"], body["source"], body["user_type"], body["message_count"]) == ("active", "widget",
                                                                                          "client", 4)  # fmt: skip
    assert [(m["seq"], m["role"], m["text"]) for m in body["messages"]] == [
        (1, "user", "hello"), (2, "assistant", "Hi!"), (3, "user", "talk to a human please"), (4, "assistant", "Sure."),
    ]  # fmt: skip
    reply = body["messages"][3]
    assert body["feedback"] == [
        {"message_id": reply["message_id"], "seq": 4, "rating": "down", "reason": "", "comment": "not helpful"}
    ]
    assert reply["feedback"] == {"rating": "down", "reason": "", "comment": "not helpful"}
    assert body["rating"] == {"score": 2, "resolved": None, "comment": ""}
    assert body["analytics"]["resolution"] == "unresolved"
    assert body["analytics"]["escalated_to_human"] is True
    calls = body["provider_calls"]
    assert [(c["provider"], c["outcome"], c["fallback_from"]) for c in calls] == [
        ("openai", "ok", ""), ("anthropic", "error", ""), ("openai", "ok", "anthropic"),
    ]  # fmt: skip
    # gpt-4.1-mini: 2000 x 0.40 + 100 x 1.60 = 960, 1000 x 0.40 + 1000 x 1.60 = 2000 (per million);
    # claude-mystery has no price and used no tokens.
    assert [c["cost_usd"] for c in calls] == [0.00096, None, 0.002]
    assert body["cost"] == {"provider_calls": 3, "input_tokens": 3000, "output_tokens": 1100, "cost_usd": 0.00296,
                            "price_unknown_calls": 0}  # fmt: skip


@pytest.mark.parametrize("session_id", [str(uuid.UUID(int=7)), "not-a-uuid", "0" * 300])
def test_an_unknown_or_malformed_id_is_404(api: Client, session_id: str) -> None:
    response = api.get(f"{URL}{session_id}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_the_detail_refuses_query_parameters(api: Client, four) -> None:
    response = api.get(f"{URL}{four['A'].public_id}/", {"expand": "all"})
    assert response.status_code == 400
    assert response.json()["parameter"] == "expand"

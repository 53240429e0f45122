"""The import command on the hand-made files (conftest.py states every expected number and why)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError
from django.utils import timezone

from analytics import metrics, services
from analytics.models import ChatAnalytics, DailySessionRollup, ImportedConversation, ImportRun
from analytics.selectors import Filters, Period, period_totals
from assistant.models import ChatMessage, ChatSession, SessionRating
from tests.analytics.imports.conftest import MESSAGES_CSV, POWERPULSE, RATINGS, run_import

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends]

WEEK = Period(start=date(2024, 3, 4), end=date(2024, 3, 10))
FB = Filters(source="import:fb-grouped")


def _totals(filters: Filters = FB) -> dict[str, Any]:
    return metrics.summarize(period_totals(WEEK, filters))


def _last_run() -> ImportRun:
    return ImportRun.objects.order_by("-pk").first()  # type: ignore[return-value]


def test_powerpulse_file_gives_the_hand_computed_conversations_and_skips() -> None:
    out = run_import(POWERPULSE)
    summary = _last_run().summary
    assert summary["conversations"] == {
        "read": 4, "created": 3, "updated": 0, "unchanged": 0, "outside_dates": 0,
    }  # fmt: skip
    assert summary["messages"] == 10
    assert summary["dropped"] == {"autoresponses": 3, "duplicates": 1}
    assert summary["skipped"] == {"bad_direction": 1, "no_messages": 1, "not_a_list": 1}
    wheres = {item["where"] for item in summary["examples"]}
    assert {"chat 1002 message 5", "chat 1003"} <= wheres
    assert "Skipped: 3 (bad_direction 1, no_messages 1, not_a_list 1)" in out
    assert _last_run().status == "done" and not _last_run().dry_run
    assert ChatSession.objects.filter(source="import:fb-grouped").count() == 3
    assert ChatMessage.objects.count() == 10
    assert set(ImportedConversation.objects.values_list("external_id", flat=True)) == {
        "1001@2024-03-04T10:00:00+00:00",
        "1001@2024-03-06T09:00:00+00:00",
        "1002@2024-03-04T12:00:00+00:00",
    }


def test_sessions_keep_the_file_times_roles_and_authors() -> None:
    run_import(POWERPULSE)
    link = ImportedConversation.objects.get(external_id="1002@2024-03-04T12:00:00+00:00")
    session = link.session
    assert session.status == "closed" and session.user_type == "client" and session.external_user_id == "1002"
    assert session.created_at.isoformat() == "2024-03-04T12:00:00+00:00"
    assert session.closed_at.isoformat() == "2024-03-04T12:06:00+00:00"
    rows = list(session.messages.order_by("seq").values_list("seq", "role", "author_name", "text"))
    assert rows == [
        (1, "user", "", "How do I pay my bill?"),
        (2, "assistant", "", "Our team will answer shortly"),
        (3, "agent", "carol", "You can pay in the app"),
    ]
    assert not session.messages.filter(text__contains="*977#").exists()


def test_agent_response_time_and_fcr_are_the_hand_computed_ones() -> None:
    run_import(POWERPULSE)
    per_session = sorted(ChatAnalytics.objects.values_list("avg_agent_response_ms", flat=True))
    assert per_session == [180_000, 360_000, 750_000]
    totals = _totals()
    assert totals["avg_agent_response_ms"] == pytest.approx(430_000)
    assert totals["fcr_rate"] == pytest.approx(66.67, abs=0.01)
    assert totals["sessions"] == 3


def test_csat_and_response_time_from_a_jsonl_file_with_ratings() -> None:
    """ratings.jsonl: ratings 5, 4, 2 and one unrated → CSAT 2 of 3; response times 3, 10, 20, 1 min."""
    run_import(RATINGS)
    summary = _last_run().summary
    assert summary["conversations"]["created"] == 4
    assert summary["skipped"] == {"bad_json": 1, "bad_role": 1}
    assert {item["where"] for item in summary["examples"]} == {"line 5 (id c5)", "line 6"}
    assert summary["dropped"]["autoresponses"] == 1  # the assistant's *977# in c2
    assert sorted(SessionRating.objects.values_list("score", "resolved")) == [(2, False), (4, True), (5, True)]
    totals = _totals(Filters(source="import:jsonl"))
    assert totals["csat"] == pytest.approx(66.67, abs=0.01)
    assert totals["avg_agent_response_ms"] == pytest.approx(510_000)  # (180 + 600 + 1200 + 60) s / 4
    ann = ChatSession.objects.get(imported__external_id="c1")
    assert (ann.external_user_id, ann.external_user_name) == ("ann", "Ann")


def test_csv_rows_of_a_conversation_may_interleave_and_a_bad_row_is_skipped_alone() -> None:
    run_import(MESSAGES_CSV)
    summary = _last_run().summary
    assert summary["conversations"]["created"] == 2
    assert summary["messages"] == 4
    assert summary["skipped"] == {"bad_role": 1}
    assert summary["examples"][0]["where"] == "line 6 (id k2)"
    k1 = ChatSession.objects.get(imported__external_id="k1")
    assert list(k1.messages.order_by("seq").values_list("role", flat=True)) == ["user", "agent"]
    assert k1.rating.score == 5 and k1.rating.resolved is True
    assert k1.analytics.avg_agent_response_ms == 360_000


def _state() -> dict[str, Any]:
    return {
        "sessions": sorted(ChatSession.objects.values_list("pk", "updated_at")),
        "messages": sorted(ChatMessage.objects.values_list("pk", "public_id")),
        "analytics": sorted(ChatAnalytics.objects.values_list("session_id", "updated_at")),
        "links": sorted(ImportedConversation.objects.values_list("pk", "updated_at", "content_hash")),
        "rollups": sorted(DailySessionRollup.objects.values_list("pk", "day")),
    }


def test_importing_the_same_file_again_changes_nothing() -> None:
    run_import(POWERPULSE)
    before = _state()
    out = run_import(POWERPULSE)
    assert _state() == before
    assert _last_run().summary["conversations"]["unchanged"] == 3
    assert _last_run().summary["conversations"]["created"] == 0
    assert "0 created, 0 updated, 3 unchanged" in out


def _changed_copy(tmp_path: Path) -> Path:
    """powerpulse.json with carol's answer in chat 1002 ten minutes later (12:16): 16 min, not 6."""
    data = json.loads(POWERPULSE.read_text())
    for message in data["1002"]:
        if message["MESSAGE_CONTENT"] == "You can pay in the app":
            message["SOCIAL_CREATE_TIME"] = "2024-03-04T12:16:00Z"
            message["MESSAGE_CONTENT"] = "You can pay in the mobile app"
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(data))
    return path


def test_a_changed_conversation_is_replaced_and_its_analytics_recomputed(tmp_path: Path) -> None:
    run_import(POWERPULSE)
    session = ChatSession.objects.get(imported__external_id="1002@2024-03-04T12:00:00+00:00")
    others = sorted(ChatAnalytics.objects.exclude(session=session).values_list("session_id", "updated_at"))
    run_import(_changed_copy(tmp_path))
    summary = _last_run().summary
    assert (summary["conversations"]["updated"], summary["conversations"]["unchanged"]) == (1, 2)
    texts = list(session.messages.order_by("seq").values_list("text", flat=True))
    assert texts == ["How do I pay my bill?", "Our team will answer shortly", "You can pay in the mobile app"]
    assert ChatAnalytics.objects.get(session=session).avg_agent_response_ms == 960_000
    assert sorted(ChatAnalytics.objects.exclude(session=session).values_list("session_id", "updated_at")) == others
    assert _totals()["avg_agent_response_ms"] == pytest.approx((180_000 + 750_000 + 960_000) / 3)


def test_force_rewrites_every_conversation() -> None:
    run_import(POWERPULSE)
    run_import(POWERPULSE, "--force")
    assert _last_run().summary["conversations"]["updated"] == 3
    assert ChatMessage.objects.count() == 10
    assert ChatSession.objects.count() == 3


def test_dry_run_writes_nothing_but_reports_the_real_counts() -> None:
    out = run_import(POWERPULSE, "--dry-run")
    assert ChatSession.objects.count() == 0
    assert ChatMessage.objects.count() == 0
    assert ChatAnalytics.objects.count() == 0
    assert ImportedConversation.objects.count() == 0
    assert DailySessionRollup.objects.count() == 0
    run = _last_run()
    assert run.dry_run and run.summary["conversations"]["created"] == 3 and run.summary["messages"] == 10
    assert "dry run" in out


def test_strict_stops_at_the_first_bad_record_and_writes_nothing() -> None:
    with pytest.raises(CommandError, match=r"bad_direction|not_a_list"):
        run_import(POWERPULSE, "--strict")
    assert ChatSession.objects.count() == 0
    assert ChatMessage.objects.count() == 0
    assert ImportedConversation.objects.count() == 0
    assert _last_run().status == "failed"


def test_dates_keep_only_conversations_that_start_inside_them() -> None:
    run_import(POWERPULSE, "--start-date", "2024-03-05", "--end-date", "2024-03-06")
    summary = _last_run().summary
    assert summary["conversations"]["created"] == 1
    assert summary["conversations"]["outside_dates"] == 2
    assert list(ImportedConversation.objects.values_list("external_id", flat=True)) == [
        "1001@2024-03-06T09:00:00+00:00"
    ]


def test_autoresponse_patterns_are_configurable(settings: Any) -> None:
    settings.IMPORT_AUTORESPONSE_PATTERNS = ["re:^our team will"]
    run_import(POWERPULSE)
    summary = _last_run().summary
    # *977# is no longer a pattern: kept (3 messages back); "Our team will answer shortly" dropped.
    assert summary["dropped"]["autoresponses"] == 1
    assert summary["messages"] == 10 + 3 - 1
    assert summary["skipped"] == {"bad_direction": 1, "not_a_list": 1}


def test_imported_rows_equal_a_rebuild_from_the_stored_rows() -> None:
    """The in-memory analytics of the import are what the recovery path computes from the database."""
    run_import(RATINGS)
    run_import(POWERPULSE)
    now = timezone.now()
    fields = [
        "total_messages", "user_messages", "assistant_messages", "agent_messages", "avg_agent_response_ms",
        "resolution", "rule_resolved", "satisfaction_rating", "language", "avg_sentiment", "message_sentiments",
        "unscored_messages", "opening_sentiment", "closing_sentiment", "duration_s", "escalated_to_human",
        "human_involved", "closed", "last_seq", "topics_discussed",
    ]  # fmt: skip
    checked = 0
    for row in ChatAnalytics.objects.values("session_id", *fields):
        stats = services.session_stats_load(session_pk=row["session_id"])
        assert stats is not None
        rebuilt = stats.row(now)
        assert {name: rebuilt[name] for name in fields} == {name: row[name] for name in fields}
        checked += 1
    assert checked == 7


def test_the_source_filter_tells_imported_from_widget_sessions_in_the_dashboard_json(admin_client: Any) -> None:
    run_import(POWERPULSE)
    widget = ChatSession.objects.create(token_hash="x", user_type="client")
    ChatMessage.objects.create(session=widget, seq=1, role="user", text="hi")
    ChatSession.objects.filter(pk=widget.pk).update(created_at=datetime(2024, 3, 5, 9, tzinfo=UTC))
    services.session_analytics_rebuild(session_pk=widget.pk)
    services.rollup_day(date(2024, 3, 5))
    url = "/admin/chat-analytics/api/summary/?start_date=2024-03-04&end_date=2024-03-10"
    imported = admin_client.get(url + "&source=import:fb-grouped").json()["metrics"]
    from_widget = admin_client.get(url + "&source=widget").json()["metrics"]
    everything = admin_client.get(url).json()["metrics"]
    assert (imported["sessions"], from_widget["sessions"], everything["sessions"]) == (3, 1, 4)
    assert imported["avg_agent_response_ms"] == pytest.approx(430_000)


def test_an_unreadable_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot open"):
        run_import(tmp_path / "missing.json")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\x01 not a known format")
    with pytest.raises(CommandError, match="give --format"):
        run_import(blob)

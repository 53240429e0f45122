"""The offline fallback, the content-hash cache, the close hook and the command's filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.utils import timezone

from analytics.intelligence import hook, offline, runner, selectors
from analytics.intelligence.transcript import Line
from analytics.models import ChatAnalytics, ConversationAnalysis
from assistant import events, liveness
from assistant.models import ChatMessage, ChatSession
from tests.analytics.intelligence.conftest import GOOD, analysis_of, asession, json_tokens, make_session
from tests.support.fake_vendors import FakeVendor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drain_replies")]


def test_opening_weighting_keeps_a_complaint_negative_despite_the_closing_thanks() -> None:
    # -0.6 then +0.44: the plain mean is -0.08 (barely negative); 4 messages with two neutral ones in
    # between: mean -0.04 (neutral). Opening-weighted: (-0.6 + 0.125 * 0.44) / 1.875 = -0.2907.
    assert offline.opening_weighted([-0.6, 0.0, 0.0, 0.44]) == -0.2907
    assert offline.opening_weighted([-0.6, 0.44]) == round((-0.6 + 0.22) / 1.5, 4)
    assert offline.opening_weighted([]) is None


def test_offline_scores_a_covered_language_and_leaves_an_uncovered_one_unscored() -> None:
    spanish = offline.analyse(
        [Line("user", "Me cobraron dos veces, es inaceptable y estoy muy enfadado."), Line("user", "gracias")]
    )
    assert spanish.language == "es" and spanish.sentiment is not None and spanish.sentiment < -0.05
    assert spanish.methods["sentiment"] == "lexicon:parley-es" and spanish.methods["language"] == "detector:py3langid"
    japanese = offline.analyse([Line("user", "注文した商品がまだ届きません。どうなっていますか？とても困っています。")])
    assert japanese.language == "ja" and japanese.sentiment is None and japanese.sentiment_label == ""
    assert japanese.methods["sentiment"] == "none"
    english = offline.analyse([Line("user", "My invoice shows a double charge, terrible."), Line("user", "thanks")])
    assert english.topics == ["billing"] and english.methods["topics"] == "taxonomy"
    assert english.predicted_satisfaction is None and english.predicted_resolved is None


async def test_without_a_cloud_provider_the_offline_result_is_stored() -> None:
    session_pk = await asession()
    summary = await runner.analyse_many([session_pk])
    assert (summary.llm, summary.offline, summary.calls) == (0, 1, 0)
    analysis = await analysis_of(session_pk)
    assert analysis is not None and analysis.method == "offline" and analysis.sentiment_label == "negative"
    assert analysis.error == "no cloud provider configured"


async def test_all_providers_failing_falls_back_to_offline(settings: Any, use_vendor) -> None:
    settings.PROVIDER_MAX_RETRIES = 0
    session_pk = await asession()
    with FakeVendor("openai") as vendor:
        use_vendor(vendor)
        vendor.faults.append("status:503")
        summary = await runner.analyse_many([session_pk])
    assert (summary.offline, summary.calls) == (1, 1)
    analysis = await analysis_of(session_pk)
    assert analysis is not None and analysis.method == "offline" and "503" not in analysis.methods.values()


@pytest.mark.backends
async def test_an_unchanged_conversation_is_not_analysed_twice_unless_forced(use_vendor) -> None:
    session_pk = await asession()
    with FakeVendor("openai", tokens=json_tokens(GOOD)) as vendor:
        use_vendor(vendor)
        first = await runner.analyse_many([session_pk])
        again = await runner.analyse_many([session_pk])
        assert (first.llm, again.llm, again.skipped, len(vendor.requests)) == (1, 0, 1, 1)
        await database_sync_to_async(ChatMessage.objects.create)(
            session_id=session_pk, seq=4, role="user", text="Actually it is still not refunded."
        )
        changed = await runner.analyse_many([session_pk])
        forced = await runner.analyse_many([session_pk], force=True)
    assert (changed.llm, forced.llm, len(vendor.requests)) == (1, 1, 3)
    assert await database_sync_to_async(ConversationAnalysis.objects.count)() == 1


async def test_messages_rewritten_with_the_same_text_are_skipped_once_then_not_selected() -> None:
    session_pk = await asession()
    await runner.analyse_many([session_pk])

    def rewrite_and_select() -> list[int]:
        for message in ChatMessage.objects.filter(session_id=session_pk):
            message.save()  # same text, newer updated_at: as a forced re-import leaves it
        return list(selectors.needing_analysis(selectors.finished_sessions()).values_list("pk", flat=True))

    assert await database_sync_to_async(rewrite_and_select)() == [session_pk]
    summary = await runner.analyse_many([session_pk])
    assert (summary.skipped, summary.offline) == (1, 0)
    selected = selectors.needing_analysis(selectors.finished_sessions()).values_list("pk", flat=True)
    assert await database_sync_to_async(list)(selected) == []


async def test_the_close_hook_analyses_an_ended_session_when_enabled(settings: Any) -> None:
    settings.ANALYSIS_ON_CLOSE = "true"
    session_pk = await asession()
    events.publish(events.SessionEnded(session_pk=session_pk, session_id="s"))
    await hook.drain()
    analysis = await analysis_of(session_pk)
    assert analysis is not None and analysis.method == "offline"


@pytest.mark.parametrize("mode", ["false", "auto"])  # auto: no cloud provider configured here
async def test_the_close_hook_does_nothing_when_off(settings: Any, mode: str) -> None:
    settings.ANALYSIS_ON_CLOSE = mode
    session_pk = await asession()
    events.publish(events.SessionEnded(session_pk=session_pk, session_id="s"))
    await hook.drain()
    assert await analysis_of(session_pk) is None


async def test_auto_turns_the_close_hook_on_with_a_cloud_provider(use_vendor, settings: Any) -> None:
    settings.ANALYSIS_ON_CLOSE = "auto"  # the default (tests/conftest.py turns it off elsewhere)
    session_pk = await asession()
    with FakeVendor("gemini", tokens=json_tokens(GOOD)) as vendor:
        use_vendor(vendor)
        events.publish(events.SessionEnded(session_pk=session_pk, session_id="s"))
        await hook.drain()
    analysis = await analysis_of(session_pk)
    assert analysis is not None and analysis.method == "llm" and analysis.provider == "gemini"


def run(*args: str) -> str:
    out = StringIO()
    call_command("analyze_conversations", "--no-progress", *args, stdout=out)
    return out.getvalue()


@pytest.mark.backends
@pytest.mark.django_db(transaction=True)
def test_the_command_filters_by_source_dates_and_limit() -> None:
    day = lambda d: datetime(2026, 3, d, 12, tzinfo=UTC)  # noqa: E731
    widget_early = make_session(created_at=day(1))
    widget_late = make_session(created_at=day(20))
    imported = [make_session(source="import:jsonl", created_at=day(10)) for _ in range(3)]
    open_one = make_session(closed=False, created_at=day(10))

    assert "Analysed 3 conversation(s): 0 by the model, 3 offline" in run("--source", "import:jsonl")
    assert set(ConversationAnalysis.objects.values_list("session_id", flat=True)) == set(imported)
    assert "Analysed 1 conversation(s)" in run("--since", "2026-03-15")
    assert ConversationAnalysis.objects.filter(session_id=widget_late).exists()
    out = run("--until", "2026-03-05")
    assert "Analysed 1 conversation(s)" in out and "0 skipped (unchanged)" in out
    assert ConversationAnalysis.objects.filter(session_id=widget_early).exists()
    assert not ConversationAnalysis.objects.filter(session_id=open_one).exists()  # not finished
    out = run()
    assert "Analysed 0 conversation(s)" in out and "5 skipped (unchanged)" in out
    assert "Analysed 2 conversation(s)" in run("--force", "--limit", "2")
    assert ConversationAnalysis.objects.count() == 5


def _idle_session(*, served_by: str, quiet_for: timedelta) -> int:
    """An active session the analytics sweep marked closed (idle), last active `quiet_for` ago."""
    session_pk = make_session(closed=False)
    ChatSession.objects.filter(pk=session_pk).update(served_by=served_by)
    now = timezone.now()
    ChatAnalytics.objects.create(
        session_id=session_pk,
        day=now.date(),
        started_at=now - quiet_for,
        last_activity_at=now - quiet_for,
        user_type="anonymous",
        closed=True,
    )
    return session_pk


@pytest.mark.backends
async def test_the_sweep_queues_this_processs_idle_closed_sessions_only(settings: Any) -> None:
    settings.ANALYSIS_ON_CLOSE = "true"
    build = database_sync_to_async(_idle_session)
    mine = await build(served_by=liveness.PROCESS_ID, quiet_for=timedelta(hours=1))
    other = await build(served_by="another-process", quiet_for=timedelta(hours=1))
    old = await build(served_by=liveness.PROCESS_ID, quiet_for=timedelta(days=3))
    assert await hook.sweep_once() == 1
    await hook.drain()
    assert await analysis_of(mine) is not None
    assert await analysis_of(other) is None and await analysis_of(old) is None
    assert await hook.sweep_once() == 0  # analysed: nothing left to queue


async def test_the_analysis_marks_the_sessions_analytics_row_changed(settings: Any) -> None:
    session_pk = await database_sync_to_async(_idle_session)(served_by="x", quiet_for=timedelta(hours=1))
    before = await database_sync_to_async(lambda: ChatAnalytics.objects.get(session_id=session_pk).updated_at)()
    await runner.analyse_many([session_pk])
    after = await database_sync_to_async(lambda: ChatAnalytics.objects.get(session_id=session_pk).updated_at)()
    analysis = await analysis_of(session_pk)
    assert analysis is not None and after > before and after == analysis.analyzed_at

"""The analysis of one conversation, against fake vendors at the wire (real SDKs)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from analytics.intelligence import runner
from analytics.intelligence.schema import ANALYSIS_VERSION
from tests.analytics.intelligence.conftest import GOOD, analysis_of, asession, calls_of, json_tokens
from tests.support.fake_vendors import FakeVendor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drain_replies")]


@pytest.mark.parametrize("vendor_name", ["openai", "anthropic", "gemini"])
async def test_good_structured_output_is_stored_with_its_method_and_call(use_vendor, vendor_name: str) -> None:
    session_pk = await asession()
    with FakeVendor(vendor_name, tokens=json_tokens(GOOD), usage=(300, 60, 0)) as vendor:
        use_vendor(vendor)
        summary = await runner.analyse_many([session_pk])
    assert (summary.llm, summary.offline, summary.calls) == (1, 0, 1)
    analysis = await analysis_of(session_pk)
    assert analysis is not None
    assert (analysis.method, analysis.provider, analysis.version) == ("llm", vendor_name, ANALYSIS_VERSION)
    assert analysis.sentiment == -0.6 and analysis.sentiment_label == "negative"
    assert (analysis.predicted_satisfaction, analysis.predicted_resolved, analysis.needs_follow_up) == (2, False, True)
    assert analysis.topics == ["billing", "double charge"] and analysis.new_topics == ["double charge"]
    assert analysis.language == "en" and analysis.summary.startswith("The visitor was charged twice")
    assert set(analysis.methods.values()) == {f"llm:{vendor_name}"} and len(analysis.methods) == 7
    assert await calls_of(session_pk) == [("analysis", vendor_name, "ok", "", None)]
    body = vendor.requests[0].json
    if vendor_name == "openai":
        schema = body["response_format"]
        assert schema["type"] == "json_schema" and schema["json_schema"]["strict"] is True
        assert schema["json_schema"]["schema"]["required"][0] == "sentiment"
        assert "Visitor: I was charged twice" in body["messages"][1]["content"]
    elif vendor_name == "anthropic":
        assert '"needs_follow_up"' in body["system"] and "one JSON object" in body["system"]
    else:
        config = body["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["responseJsonSchema"]["properties"]["satisfaction"]["maximum"] == 5


async def test_invalid_answer_is_retried_once_with_the_error_named(use_vendor) -> None:
    session_pk = await asession()
    with FakeVendor("openai", tokens=json_tokens(GOOD)) as vendor:
        use_vendor(vendor)
        vendor.token_queue.append(json_tokens({**GOOD, "satisfaction": 9}))  # breaks the schema, then good
        summary = await runner.analyse_many([session_pk])
    assert (summary.llm, summary.calls) == (1, 2)
    first, second = (request.json["messages"][0]["content"] for request in vendor.requests)
    assert "could not be used" not in first
    assert "could not be used (schema violation at satisfaction: 9 is greater than the maximum of 5)" in second
    analysis = await analysis_of(session_pk)
    assert analysis is not None and analysis.predicted_satisfaction == 2 and analysis.error == ""
    assert await calls_of(session_pk) == [("analysis", "openai", "ok", "", None)] * 2


async def test_malformed_json_twice_falls_back_to_offline(use_vendor) -> None:
    session_pk = await asession()
    with FakeVendor("openai", tokens=json_tokens('{"sentiment": -0.6, "satisf')) as vendor:
        use_vendor(vendor)
        summary = await runner.analyse_many([session_pk])
    assert (summary.llm, summary.offline, summary.calls) == (0, 1, 2)
    assert len(vendor.requests) == 2
    analysis = await analysis_of(session_pk)
    assert analysis is not None and analysis.method == "offline" and "not a JSON object" in analysis.error
    assert analysis.methods["sentiment"] == "lexicon:vader-en" and analysis.sentiment_label == "negative"
    assert analysis.predicted_satisfaction is None and analysis.methods["predicted_satisfaction"] == "none"
    assert await calls_of(session_pk) == [("analysis", "openai", "ok", "", None)] * 2


@pytest.mark.parametrize("vendor_name", ["openai", "anthropic", "gemini"])
async def test_a_refusal_is_not_retried_on_the_provider_but_asked_once_more(use_vendor, vendor_name: str) -> None:
    session_pk = await asession()
    with FakeVendor(vendor_name, tokens=json_tokens(GOOD)) as vendor:
        use_vendor(vendor)
        vendor.faults.append("refusal")
        summary = await runner.analyse_many([session_pk])
    assert (summary.llm, summary.calls) == (1, 2)  # the refused call (no same-call retry), then the retry call
    assert await calls_of(session_pk) == [
        ("analysis", vendor_name, "error", "refused", None),
        ("analysis", vendor_name, "ok", "", None),
    ]


async def test_refusals_on_both_calls_fall_back_to_offline(use_vendor) -> None:
    session_pk = await asession()
    with FakeVendor("openai") as vendor:
        use_vendor(vendor)
        vendor.faults.extend(["refusal", "refusal"])
        summary = await runner.analyse_many([session_pk])
    assert (summary.offline, summary.calls) == (1, 2)
    analysis = await analysis_of(session_pk)
    assert analysis is not None and "refused" in analysis.error and "I'm sorry" in analysis.error


@pytest.mark.backends
async def test_429_retry_after_longer_than_the_chat_cap_is_waited_for(settings: Any, use_vendor) -> None:
    settings.PROVIDER_RETRY_AFTER_CAP_S = 0.2  # the chat would fail over; a batch waits
    session_pk = await asession()
    with FakeVendor("openai", tokens=json_tokens(GOOD)) as vendor:
        use_vendor(vendor)
        vendor.faults.append("status:429:retry_after=1.2")
        summary = await runner.analyse_many([session_pk])
    waited = vendor.requests[1].received_at - vendor.requests[0].received_at
    assert 1.2 <= waited < 2.5
    assert summary.llm == 1
    assert await calls_of(session_pk) == [
        ("analysis", "openai", "error", "rate_limited", None),
        ("analysis", "openai", "ok", "", None),
    ]


async def test_a_hanging_vendor_times_out_and_the_offline_result_is_stored(settings: Any, use_vendor) -> None:
    settings.PROVIDER_FIRST_TOKEN_TIMEOUT_S = 0.3
    settings.PROVIDER_MAX_RETRIES = 0
    session_pk = await asession()
    with FakeVendor("openai") as vendor:
        use_vendor(vendor)
        vendor.faults.append("hang")
        started = time.monotonic()
        summary = await runner.analyse_many([session_pk])
        elapsed = time.monotonic() - started
    assert elapsed < 3
    assert (summary.offline, summary.calls) == (1, 1)  # a timeout is no invalid answer: no second call
    assert await calls_of(session_pk) == [("analysis", "openai", "error", "timeout", None)]
    analysis = await analysis_of(session_pk)
    assert analysis is not None and analysis.method == "offline" and "timeout" in analysis.error


async def test_long_transcripts_keep_their_start_and_end(settings: Any, use_vendor) -> None:
    settings.ANALYSIS_MAX_CHARS = 600
    lines = [("user", "FIRST complaint about billing")] + [("assistant", "filler " * 30)] * 10 + [("user", "LAST")]
    session_pk = await asession(lines)
    with FakeVendor("openai", tokens=json_tokens(GOOD)) as vendor:
        use_vendor(vendor)
        await runner.analyse_many([session_pk])
    sent = vendor.requests[0].json["messages"][1]["content"]
    assert len(sent) <= 600 and sent.startswith("Visitor: FIRST") and sent.endswith("Visitor: LAST")
    assert "characters left out" in sent


@pytest.mark.backends
async def test_concurrency_is_bounded_at_the_vendor(settings: Any, use_vendor) -> None:
    settings.ANALYSIS_CONCURRENCY = 3
    pks = [await asession() for _ in range(10)]
    with FakeVendor("openai", tokens=json_tokens(GOOD)) as vendor:
        vendor.default_fault = "slow_first:0.1"
        use_vendor(vendor)
        summary = await runner.analyse_many(pks)
    assert summary.llm == 10 and len(vendor.requests) == 10
    assert vendor.max_in_flight == 3


def test_request_bodies_are_json_serialisable() -> None:
    from analytics.intelligence.schema import vendor_schema

    assert "maxLength" not in json.dumps(vendor_schema())


async def test_a_retry_after_beyond_the_analysis_budget_is_not_waited_for(settings: Any, use_vendor) -> None:
    settings.ANALYSIS_TIMEOUT_S = 2.0
    session_pk = await asession()
    with FakeVendor("openai", tokens=json_tokens(GOOD)) as vendor:
        use_vendor(vendor)
        vendor.faults.append("status:429:retry_after=30")
        started = time.monotonic()
        summary = await runner.analyse_many([session_pk])
    assert time.monotonic() - started < 1.5 and len(vendor.requests) == 1
    assert (summary.offline, summary.calls) == (1, 1)


async def test_a_refusal_fails_over_to_the_next_provider_within_the_call(settings: Any) -> None:
    with FakeVendor("openai") as first, FakeVendor("anthropic", tokens=json_tokens(GOOD)) as second:
        first.faults.append("refusal")
        settings.AI_PROVIDERS = ["openai", "anthropic", "local"]
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", f"{first.base_url}/v1"
        settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL = "k", second.base_url
        session_pk = await asession()
        summary = await runner.analyse_many([session_pk])
    assert (summary.llm, summary.calls, len(first.requests), len(second.requests)) == (1, 2, 1, 1)
    assert await calls_of(session_pk) == [
        ("analysis", "openai", "error", "refused", None),
        ("analysis", "anthropic", "ok", "", None),
    ]
    analysis = await analysis_of(session_pk)
    assert analysis is not None and analysis.provider == "anthropic" and analysis.methods["summary"] == "llm:anthropic"


async def test_refusals_do_not_open_the_breaker_the_chat_depends_on(settings: Any, use_vendor) -> None:
    settings.PROVIDER_BREAKER_THRESHOLD = 2
    pks = [await asession() for _ in range(3)]
    with FakeVendor("openai", tokens=json_tokens(GOOD)) as vendor:
        use_vendor(vendor)
        vendor.faults.extend(["refusal"] * 6)  # both calls of all three conversations refused
        summary = await runner.analyse_many(pks, concurrency=1)
        assert summary.offline == 3 and len(vendor.requests) == 6
        assert (await runner.analyse_many([await asession()])).llm == 1  # the provider was not taken out

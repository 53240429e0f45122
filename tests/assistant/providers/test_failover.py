"""Failover end to end: websocket → router → real vendor SDKs → loopback fake vendors.

Every fault mode the issue lists, for each vendor as the primary, with a healthy vendor of
another kind behind it. Each case checks who answered, how long the failover took, what the
client saw, what was stored and what the `ProviderCall` rows say.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from channels.db import database_sync_to_async

from assistant.models import ChatMessage, ProviderCall

# Imported up front, as apps.ready does when keys are set, so that no timed turn pays for it.
from assistant.providers import anthropic_provider, gemini_provider, openai_provider  # noqa: F401
from tests.support.chat import ChatClient, open_client
from tests.support.fake_vendors import FakeVendor, refused_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends, pytest.mark.usefixtures("drain_replies")]

PRIMARY_TOKENS = ["The ", "primary ", "vendor ", "says ", "hello ", "in ", "eight ", "pieces."]
BACKUP_TOKENS = ["Backup ", "answer: ", "add ", "one ", "script ", "tag."]
BACKUP_USAGE = (41, 6, 7)
VENDORS = ("openai", "anthropic", "gemini")
BACKUP_OF = {"openai": "anthropic", "anthropic": "gemini", "gemini": "openai"}


def point(settings: Any, vendor: str, base_url: str) -> None:
    """Give `vendor` a key and send it to `base_url` (OpenAI's SDK wants the /v1 prefix)."""
    prefix = vendor.upper()
    setattr(settings, f"{prefix}_API_KEY", f"test-{vendor}-key")
    setattr(settings, f"{prefix}_BASE_URL", f"{base_url}/v1" if vendor == "openai" else base_url)
    setattr(settings, f"{prefix}_MODEL", f"{vendor}-test-model")


@pytest.fixture
def fast_failover(settings: Any) -> Any:
    """Timeouts and backoff small enough for a test, same rules as production."""
    settings.PROVIDER_CONNECT_TIMEOUT_S = 0.5
    settings.PROVIDER_FIRST_TOKEN_TIMEOUT_S = 0.6
    settings.PROVIDER_IDLE_TIMEOUT_S = 0.6
    settings.PROVIDER_BACKOFF_BASE_S = 0.02
    settings.PROVIDER_RETRY_AFTER_CAP_S = 1.0
    settings.PROVIDER_MAX_RETRIES = 2
    settings.PROVIDER_BREAKER_THRESHOLD = 100
    settings.CHAT_REPLY_TIMEOUT_S = 15
    settings.TITLE_FROM_PROVIDER = False
    settings.RESPONSE_CACHE_TTL_S = 0
    settings.CHAT_DELTA_INTERVAL_MS = 0
    return settings


@pytest.fixture
def backup_vendors() -> Iterator[dict[str, FakeVendor]]:
    servers = {name: FakeVendor(name, tokens=BACKUP_TOKENS, usage=BACKUP_USAGE).start() for name in VENDORS}
    yield servers
    for server in servers.values():
        server.stop()


@dataclass
class Turn:
    frames: list[dict[str, Any]]
    elapsed_s: float
    session_id: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if frame["type"] == kind]

    def text_of(self, seq: int) -> str:
        return "".join(frame["text"] for frame in self.of("reply.delta") if frame["seq"] == seq)


async def ask(question: str = "How do I embed the widget?", *, timeout: float = 20) -> Turn:
    """Send one message; read until the reply that is not replaced has ended."""
    client: ChatClient
    client, ok, _ = await open_client()
    assert ok
    welcome = await client.hello()
    started = time.monotonic()
    await client.send({"type": "message", "text": question, "client_id": "q1"})
    frames: list[dict[str, Any]] = []
    while True:
        frame = await client.recv(timeout=timeout)
        frames.append(frame)
        if frame["type"] == "reply.end" and frame.get("error") != "provider_interrupted":
            break
    elapsed = time.monotonic() - started
    await client.close()
    return Turn(frames=frames, elapsed_s=elapsed, session_id=welcome["session_id"])


@database_sync_to_async
def stored(session_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    messages = list(
        ChatMessage.objects.filter(session__public_id=session_id)
        .order_by("seq")
        .values("seq", "role", "status", "text", "provider", "model", "error_code", "retry_of__seq", "input_tokens")
    )
    calls = list(
        ProviderCall.objects.filter(session__public_id=session_id)
        .order_by("started_at", "id")
        .values(
            "provider",
            "attempt",
            "outcome",
            "error_kind",
            "status_code",
            "fallback_from",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "tokens_estimated",
            "message__seq",
            "feature",
        )
    )
    return messages, calls


# fault → (faults queued on the primary, expected primary attempts, error kind, status, mid-stream)
BEFORE_TEXT = {
    "connection refused": (None, 3, "retryable", None),
    "hang before headers": (["hang"] * 3, 3, "timeout", None),
    "500": (["status:500"] * 3, 3, "retryable", 500),
    "503": (["status:503"] * 3, 3, "retryable", 503),
    "429 with Retry-After": (["status:429:retry_after=0.2"] * 3, 3, "rate_limited", 429),
    "401 bad key": (["status:401"], 1, "auth", 401),
    "404 unknown model": (["status:404"], 1, "bad_request", 404),
    "malformed SSE before text": (["malformed:0"] * 3, 3, "retryable", None),
    # Gemini reports the event's own code (503); OpenAI's and Anthropic's events carry none.
    "in-stream error event before text": (["error_event:0"] * 3, 3, "retryable", "vendor"),
    "slow first token": (["slow_first:3"] * 3, 3, "timeout", None),
}
MID_STREAM = {
    "stream cut after 2 chunks": "cut:2",
    "malformed SSE after 2 chunks": "malformed:2",
    "in-stream error event": "error_event:2",
    "stall between chunks": "stall:2:3",
}


@pytest.mark.parametrize("primary", VENDORS)
@pytest.mark.parametrize("fault", list(BEFORE_TEXT))
async def test_fault_before_any_text_fails_over_invisibly(
    fault: str, primary: str, fast_failover: Any, backup_vendors: dict[str, FakeVendor]
) -> None:
    queued, attempts, kind, status = BEFORE_TEXT[fault]
    backup = BACKUP_OF[primary]
    with FakeVendor(primary, tokens=PRIMARY_TOKENS) as faulty:
        if queued is not None:
            faulty.faults.extend(queued)
        point(fast_failover, primary, refused_url() if queued is None else faulty.base_url)
        point(fast_failover, backup, backup_vendors[backup].base_url)
        fast_failover.AI_PROVIDERS = [primary, backup, "local"]
        turn = await ask()
        if queued is not None:
            assert len(faulty.requests) == attempts  # retried exactly as the rules say

    # The client saw one reply, complete, from the backup: the failures were invisible.
    [start], [end] = turn.of("reply.start"), turn.of("reply.end")
    assert "retry_of" not in start
    assert (end["status"], end["provider"], end["model"]) == ("complete", backup, f"{backup}-test-model")
    assert turn.text_of(end["seq"]) == "".join(BACKUP_TOKENS)
    assert end["usage"] == {"input_tokens": BACKUP_USAGE[0], "output_tokens": BACKUP_USAGE[1]}
    # Bounded: three 0.6 s timeouts plus backoff at worst, never the 15 s reply limit.
    assert turn.elapsed_s < 4.0, f"failover took {turn.elapsed_s:.2f} s"
    if fault == "429 with Retry-After":
        assert turn.elapsed_s >= 0.4  # two waits of Retry-After: 0.2 s
    if kind in {"auth", "bad_request"}:
        assert turn.elapsed_s < 1.0  # no retry, no backoff
    if fault == "connection refused":
        assert turn.elapsed_s < 1.0  # retried at once: waiting cannot revive a closed port

    messages, calls = await stored(turn.session_id)
    assert [(m["seq"], m["role"], m["status"], m["provider"]) for m in messages] == [
        (1, "user", "complete", ""),
        (2, "assistant", "complete", backup),
    ]
    assert messages[1]["text"] == "".join(BACKUP_TOKENS)
    failed = [call for call in calls if call["provider"] == primary]
    if status == "vendor":
        status = 503 if primary == "gemini" else None
    assert [(c["attempt"], c["outcome"], c["error_kind"], c["status_code"]) for c in failed] == [
        (number, "error", kind, status) for number in range(1, attempts + 1)
    ]
    [answered] = [call for call in calls if call["provider"] == backup]
    assert answered["outcome"] == "ok" and answered["fallback_from"] == primary and answered["message__seq"] == 2
    assert (answered["input_tokens"], answered["output_tokens"], answered["cached_tokens"]) == BACKUP_USAGE
    assert not answered["tokens_estimated"]


@pytest.mark.parametrize("primary", VENDORS)
@pytest.mark.parametrize("fault", list(MID_STREAM))
async def test_mid_stream_failure_keeps_the_partial_reply_and_a_new_one_follows(
    fault: str, primary: str, fast_failover: Any, backup_vendors: dict[str, FakeVendor]
) -> None:
    backup = BACKUP_OF[primary]
    with FakeVendor(primary, tokens=PRIMARY_TOKENS) as faulty:
        faulty.faults.append(MID_STREAM[fault])
        point(fast_failover, primary, faulty.base_url)
        point(fast_failover, backup, backup_vendors[backup].base_url)
        fast_failover.AI_PROVIDERS = [primary, backup, "local"]
        turn = await ask()
        assert len(faulty.requests) == 1  # text had begun: no retry of the same provider

    first_start, second_start = turn.of("reply.start")
    first_end, second_end = turn.of("reply.end")
    assert first_start["seq"] == first_end["seq"] == 2 and "retry_of" not in first_start
    assert (first_end["status"], first_end["error"], first_end["provider"]) == (
        "interrupted",
        "provider_interrupted",
        primary,
    )
    partial = turn.text_of(2)
    assert partial == "".join(PRIMARY_TOKENS[:2])
    assert (second_start["seq"], second_start["retry_of"], second_start["reply_to"]) == (3, 2, 1)
    assert (second_end["status"], second_end["provider"]) == ("complete", backup)
    assert turn.text_of(3) == "".join(BACKUP_TOKENS)
    assert turn.elapsed_s < 2.5, f"failover took {turn.elapsed_s:.2f} s"

    messages, calls = await stored(turn.session_id)
    assert [(m["seq"], m["status"], m["provider"], m["error_code"], m["retry_of__seq"]) for m in messages] == [
        (1, "complete", "", "", None),
        (2, "interrupted", primary, "provider_interrupted", None),
        (3, "complete", backup, "", 2),
    ]
    assert messages[1]["text"] == partial and messages[2]["text"] == "".join(BACKUP_TOKENS)
    assert [(c["provider"], c["outcome"], c["message__seq"], c["fallback_from"]) for c in calls] == [
        (primary, "interrupted", 2, ""),
        (backup, "ok", 3, primary),
    ]
    assert calls[0]["error_kind"] == "interrupted"
    assert calls[0]["tokens_estimated"] and calls[0]["output_tokens"]  # the vendor never sent usage


@pytest.mark.parametrize("primary", VENDORS)
async def test_a_slow_first_token_within_the_limit_is_waited_for(primary: str, fast_failover: Any) -> None:
    with FakeVendor(primary, tokens=PRIMARY_TOKENS, usage=(9, 8, 0)) as slow:
        slow.faults.append("slow_first:0.3")
        point(fast_failover, primary, slow.base_url)
        fast_failover.AI_PROVIDERS = [primary, "local"]
        turn = await ask()
    [end] = turn.of("reply.end")
    assert (end["status"], end["provider"]) == ("complete", primary)
    assert end["ttft_ms"] >= 300 and turn.text_of(2) == "".join(PRIMARY_TOKENS)
    _, calls = await stored(turn.session_id)
    assert [(c["provider"], c["outcome"], c["input_tokens"], c["output_tokens"]) for c in calls] == [
        (primary, "ok", 9, 8)
    ]


async def test_every_provider_down_ends_failed_within_the_bound(fast_failover: Any) -> None:
    with FakeVendor("openai") as first, FakeVendor("gemini") as second:
        first.faults.extend(["status:503"] * 3)
        second.faults.extend(["hang"] * 3)
        point(fast_failover, "openai", first.base_url)
        point(fast_failover, "gemini", second.base_url)
        fast_failover.AI_PROVIDERS = ["openai", "gemini"]  # no local assistant to fall back on
        turn = await ask()
    [end] = turn.of("reply.end")
    assert (end["status"], end["error"]) == ("failed", "provider_unavailable")
    assert "unavailable" in turn.text_of(2)  # the visitor is told plainly
    assert turn.elapsed_s < 4.0
    messages, calls = await stored(turn.session_id)
    assert (messages[1]["status"], messages[1]["error_code"]) == ("failed", "provider_unavailable")
    assert [(c["provider"], c["outcome"], c["error_kind"]) for c in calls] == [
        ("openai", "error", "retryable"),
        ("openai", "error", "retryable"),
        ("openai", "error", "retryable"),
        ("gemini", "error", "timeout"),
        ("gemini", "error", "timeout"),
        ("gemini", "error", "timeout"),
    ]


async def test_the_local_assistant_is_the_last_resort(fast_failover: Any) -> None:
    fast_failover.AI_PROVIDERS = ["anthropic", "local"]
    point(fast_failover, "anthropic", refused_url())
    turn = await ask()
    [end] = turn.of("reply.end")
    assert (end["status"], end["provider"]) == ("complete", "local")
    assert "script" in turn.text_of(2)  # the knowledge base answer about the embed tag


async def test_circuit_breaker_skips_a_failing_provider_then_probes_it(
    fast_failover: Any, backup_vendors: dict[str, FakeVendor]
) -> None:
    fast_failover.PROVIDER_BREAKER_THRESHOLD = 2
    fast_failover.PROVIDER_BREAKER_COOLDOWN_S = 0.5
    with FakeVendor("openai", tokens=PRIMARY_TOKENS) as flaky:
        flaky.faults.extend(["status:400", "status:400"])  # no retries, counted (not a bad key): one per turn
        point(fast_failover, "openai", flaky.base_url)
        point(fast_failover, "anthropic", backup_vendors["anthropic"].base_url)
        fast_failover.AI_PROVIDERS = ["openai", "anthropic"]
        for _ in range(2):
            assert (await ask()).of("reply.end")[0]["provider"] == "anthropic"
        assert len(flaky.requests) == 2

        # Open: the provider is not called at all, and the skip is recorded.
        skipped = await ask()
        assert skipped.of("reply.end")[0]["provider"] == "anthropic" and len(flaky.requests) == 2
        _, calls = await stored(skipped.session_id)
        assert [(c["provider"], c["outcome"]) for c in calls] == [("openai", "skipped"), ("anthropic", "ok")]

        # Half-open after the cooldown: one probe goes through, succeeds, and closes it.
        await asyncio.sleep(0.6)
        probe = await ask()
        assert probe.of("reply.end")[0]["provider"] == "openai" and len(flaky.requests) == 3
        assert (await ask()).of("reply.end")[0]["provider"] == "openai"


@pytest.mark.parametrize("vendor", VENDORS)
async def test_the_prompt_carries_system_prompt_knowledge_and_history(vendor: str, fast_failover: Any) -> None:
    fast_failover.ASSISTANT_SYSTEM_PROMPT = "You are Parley's test assistant."
    with FakeVendor(vendor) as server:
        point(fast_failover, vendor, server.base_url)
        fast_failover.AI_PROVIDERS = [vendor]
        client, ok, _ = await open_client()
        assert ok
        await client.hello()
        await client.say("How do I embed the widget?", "a")
        await client.say("And how do I scale Parley?", "b")
        await client.close()
    body = server.requests[-1].json
    flat = str(body)
    assert "You are Parley's test assistant." in flat and "Knowledge base excerpts" in flat
    assert "How do I embed the widget?" in flat and "And how do I scale Parley?" in flat
    if vendor == "anthropic":
        assert body["system"].startswith("You are Parley's test assistant.")
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    elif vendor == "openai":
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    else:
        assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]


@pytest.mark.parametrize("vendor", VENDORS)
async def test_stop_during_a_cloud_reply_keeps_the_text_and_records_a_stopped_call(
    vendor: str, fast_failover: Any
) -> None:
    with FakeVendor(vendor, tokens=[f"w{i} " for i in range(40)], token_interval_s=0.05) as slow:
        point(fast_failover, vendor, slow.base_url)
        fast_failover.AI_PROVIDERS = [vendor, "local"]
        client, ok, _ = await open_client()
        assert ok
        welcome = await client.hello()
        await client.send({"type": "message", "text": "Tell me everything", "client_id": "s"})
        await client.recv_type("reply.delta")
        await client.send({"type": "stop"})
        _, end = await client.read_reply()
        await client.close()
    assert (end["status"], end["provider"]) == ("stopped", vendor)
    messages, calls = await stored(welcome["session_id"])
    assert messages[1]["status"] == "stopped" and 0 < len(messages[1]["text"]) < len(" ".join(["w00"] * 40))
    assert [(c["provider"], c["outcome"]) for c in calls] == [(vendor, "stopped")]
    assert calls[0]["tokens_estimated"]  # the stream never reached its usage report

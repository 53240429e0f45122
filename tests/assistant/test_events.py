"""The event seam: delivery to subscribers, isolation of failures, copies from other processes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from assistant import events


def rated(**overrides: Any) -> events.SessionRated:
    values: dict[str, Any] = {"session_pk": 7, "session_id": "7" * 32, "score": 4, "resolved": True}
    return events.SessionRated(**(values | overrides))


def ended_reply() -> events.ReplyEnded:
    return events.ReplyEnded(
        session_pk=7,
        session_id="7" * 32,
        seq=2,
        message_id="m",
        status="complete",
        provider="anthropic",
        model="claude",
        ttft_ms=12,
        duration_ms=40,
        cached=False,
        sources=({"id": "a#b", "title": "A › B", "score": 1.5},),
        calls=(
            events.ProviderCallInfo(provider="openai", model="gpt", outcome="error", error_kind="status"),
            events.ProviderCallInfo(provider="anthropic", model="claude", outcome="ok", fallback_from="openai"),
        ),
    )


@pytest.fixture
def bus() -> events.EventBus:
    return events.EventBus()


def test_subscribers_get_the_events_of_their_type_in_subscription_order(bus: events.EventBus) -> None:
    seen: list[str] = []
    bus.subscribe(events.SessionRated, lambda e: seen.append(f"first {e.score}"))
    bus.subscribe(events.SessionRated, lambda e: seen.append(f"second {e.score}"))
    bus.subscribe(events.SessionEnded, lambda e: seen.append("ended"))
    bus.publish(rated(score=5))
    assert seen == ["first 5", "second 5"]


def test_a_failing_subscriber_is_logged_and_the_next_still_gets_the_event(bus: events.EventBus, caplog) -> None:
    seen: list[int] = []

    def broken(event: events.SessionRated) -> None:
        raise RuntimeError("boom")

    bus.subscribe(events.SessionRated, broken)
    bus.subscribe(events.SessionRated, lambda e: seen.append(e.score))
    with caplog.at_level(logging.ERROR, logger="assistant.events"):
        bus.publish(rated())  # does not raise
    assert seen == [4]
    assert any("broken" in record.getMessage() for record in caplog.records)


def test_events_are_frozen() -> None:
    event = rated()
    with pytest.raises(AttributeError):
        event.score = 1  # type: ignore[misc]


def test_a_copy_crosses_as_plain_values_and_is_rebuilt_equal_but_marked_as_a_copy(bus: events.EventBus) -> None:
    original = ended_reply()
    message = original.message("process-a")
    assert message["type"] == "chat.event" and message["process"] == "process-a"
    assert isinstance(message["fields"]["calls"], list)  # msgpack and JSON carry lists
    copies: list[events.ReplyEnded] = []
    bus.subscribe(events.ReplyEnded, copies.append, copies=True)
    bus.receive_copy(message)
    (copy,) = copies
    assert copy.copy is True and original.copy is False
    assert copy.calls == original.calls and copy.sources == original.sources
    assert (copy.failovers, copy.errors) == (1, 1) == (original.failovers, original.errors)


def test_a_copy_reaches_only_subscribers_that_asked_for_copies_and_only_once(bus: events.EventBus) -> None:
    originals: list[events.ChatEvent] = []
    everything: list[events.ChatEvent] = []
    bus.subscribe(events.SessionRated, originals.append)
    bus.subscribe(events.SessionRated, everything.append, copies=True)
    message = rated().message("process-a")
    bus.receive_copy(message)
    bus.receive_copy(message)  # a second tab of the session in this process got it too
    assert originals == [] and len(everything) == 1


def test_a_malformed_copy_is_dropped_with_a_log_line(bus: events.EventBus, caplog) -> None:
    seen: list[events.ChatEvent] = []
    bus.subscribe(events.SessionRated, seen.append, copies=True)
    with caplog.at_level(logging.ERROR, logger="assistant.events"):
        bus.receive_copy({"type": "chat.event", "event": "SessionRated", "fields": {"score": 1}})
        bus.receive_copy({"type": "chat.event", "event": "NoSuchEvent", "fields": {}})
    assert seen == [] and len(caplog.records) == 2


async def test_a_coroutine_subscriber_runs_in_the_background_without_blocking_publish(bus: events.EventBus) -> None:
    from project import runtime

    started, release = asyncio.Event(), asyncio.Event()

    async def slow(event: events.SessionRated) -> None:
        started.set()
        await release.wait()

    bus.subscribe(events.SessionRated, slow)
    bus.publish(rated())  # returns at once
    await asyncio.wait_for(started.wait(), 1)
    assert len(runtime.current().tasks("subscribers")) == 1
    release.set()
    await runtime.current().drain()
    assert runtime.current().tasks("subscribers") == []


def test_every_event_type_is_registered_for_copies() -> None:
    declared = {cls for cls in vars(events).values() if isinstance(cls, type) and issubclass(cls, events.ChatEvent)}
    assert declared - {events.ChatEvent} == set(events.EVENT_TYPES.values())


def test_the_chat_app_imports_nothing_from_analytics() -> None:
    """The import contract of pyproject.toml, checked where `make test` sees it too."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]

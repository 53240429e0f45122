"""Escalation phrases: one list (the topics file's `[escalation]` table), read by the chat, which
offers a person on them (`ack.asks_for_person`), and counted by analytics from the same rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics import taxonomy
from assistant.handoff import escalation
from tests.assistant.test_consumers import connected

SHIPPED = Path(taxonomy.__file__).parent / "data" / "topics.toml"


def test_shipped_phrases_match_whole_words_across_any_whitespace() -> None:
    rules = escalation.reload()
    assert rules.asks_for_person("Can I TALK TO A\n human, please?")
    assert not rules.asks_for_person("human-friendly docs") and not rules.asks_for_person("escalated")
    assert "escalate" in rules.events


def test_analytics_counts_the_phrases_the_chat_offers_a_person_on(tmp_path: Path, settings) -> None:
    path = tmp_path / "topics.toml"
    path.write_text('[escalation]\nphrases = ["a manager"]\nevents = ["call_me"]\n', encoding="utf-8")
    settings.ANALYTICS_TOPICS_FILE = path
    try:
        rules = taxonomy.reload()  # also re-reads the chat's copy
        assert escalation.get().asks_for_person("Get me a manager") and rules.asks_for_human("Get me a manager")
        assert not escalation.get().asks_for_person("talk to a human") and not rules.asks_for_human("talk to a human")
        assert rules.escalation_events == escalation.get().events == frozenset({"call_me"})
    finally:
        settings.ANALYTICS_TOPICS_FILE = SHIPPED
        taxonomy.reload()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drain_replies")
async def test_the_ack_of_a_message_asking_for_a_person_says_so(settings) -> None:
    settings.WIDGET_ASK_CONTACT = "required"
    escalation.reload()
    client = await connected()
    welcome = await client.hello()
    assert welcome["config"]["ask_contact"] == "required"
    await client.send({"type": "message", "text": "How do I embed the widget?", "client_id": "m1"})
    assert "asks_for_person" not in await client.recv_type("ack")
    await client.read_reply()
    await client.send({"type": "message", "text": "I want to speak to a human", "client_id": "m2"})
    assert (await client.recv_type("ack"))["asks_for_person"] is True
    await client.read_reply()
    await client.close()

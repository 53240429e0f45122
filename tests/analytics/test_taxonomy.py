"""Topic keywords and escalation phrases from the operator's taxonomy file."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from analytics import taxonomy


def test_shipped_taxonomy_tags_whole_words_case_insensitively() -> None:
    rules = taxonomy.reload()
    assert rules.topics_of("How do I get a REFUND?") == ["billing"]
    assert rules.topics_of("I cannot log in to my account") == ["account"]
    assert rules.topics_of("refunded") == []  # whole words only
    assert rules.topics_of("The widget is broken") == ["widget", "bug_report"]


def test_escalation_phrases_span_any_whitespace() -> None:
    rules = taxonomy.reload()
    assert rules.asks_for_human("Can I talk to a\n human please")
    assert not rules.asks_for_human("human-friendly docs")
    assert "escalate" in rules.escalation_events


def test_operator_file_replaces_the_shipped_one(tmp_path: Path, settings) -> None:
    path = tmp_path / "topics.toml"
    path.write_text('[topics.shipping]\nkeywords = ["parcel", "tracking number"]\n', encoding="utf-8")
    settings.ANALYTICS_TOPICS_FILE = path
    try:
        rules = taxonomy.reload()
        assert rules.topics_of("Where is my parcel? tracking  number 12") == ["shipping"]
        assert rules.topics_of("refund") == [] and not rules.asks_for_human("talk to a human")
    finally:
        settings.ANALYTICS_TOPICS_FILE = Path(taxonomy.__file__).parent / "data" / "topics.toml"
        taxonomy.reload()


def test_bad_taxonomy_file_names_the_file_and_topic(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text('[topics.billing]\nwords = ["x"]\n', encoding="utf-8")
    with pytest.raises(ImproperlyConfigured, match=r"\[topics.billing\] needs a 'keywords' list"):
        taxonomy.parse(path)

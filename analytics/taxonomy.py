"""The operator's topic taxonomy and escalation phrases (ANALYTICS_TOPICS_FILE, TOML).

Loaded once per process; `reload()` re-reads it (tests, and `recover_chat_analytics --all`
after the operator edits the file). Matching is whole-word and case-insensitive, one compiled
regular expression per topic, so tagging a message costs microseconds. The `[escalation]`
table is the chat's too (it offers "Talk to a person" on the same phrases): it is read, and
matched, by `assistant.handoff.escalation`, and counted here.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from assistant.handoff import escalation as escalation_rules
from assistant.handoff.escalation import word_pattern


@dataclass(frozen=True, slots=True)
class Taxonomy:
    """Topic patterns, escalation phrases and escalation event names."""

    topics: tuple[tuple[str, re.Pattern[str]], ...]
    escalation: re.Pattern[str] | None
    escalation_events: frozenset[str]

    def topics_of(self, text: str) -> list[str]:
        """The topics `text` mentions, in taxonomy order."""
        return [name for name, pattern in self.topics if pattern.search(text)]

    def asks_for_human(self, text: str) -> bool:
        """Whether `text` asks to be handed to a person."""
        return self.escalation is not None and self.escalation.search(text) is not None


def parse(path: Path) -> Taxonomy:
    """Read and check a taxonomy file; errors name the file and the problem."""
    data = escalation_rules.read_toml(path)
    topics: list[tuple[str, re.Pattern[str]]] = []
    for name, table in (data.get("topics") or {}).items():
        keywords = table.get("keywords") if isinstance(table, dict) else None
        if not isinstance(keywords, list):
            raise ImproperlyConfigured(f"ANALYTICS_TOPICS_FILE {path}: [topics.{name}] needs a 'keywords' list")
        pattern = word_pattern(keywords)
        if pattern is not None:
            topics.append((name, pattern))
    escalation = escalation_rules.from_data(data)
    return Taxonomy(topics=tuple(topics), escalation=escalation.pattern, escalation_events=escalation.events)


@functools.cache
def get() -> Taxonomy:
    """The configured taxonomy."""
    return parse(settings.ANALYTICS_TOPICS_FILE)


def reload() -> Taxonomy:
    """Forget the cached taxonomy (and the chat's escalation phrases) and read the file again."""
    get.cache_clear()
    escalation_rules.reload()
    return get()

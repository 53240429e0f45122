"""The operator's topic taxonomy and escalation phrases (ANALYTICS_TOPICS_FILE, TOML).

Loaded once per process; `reload()` re-reads it (tests, and `recover_chat_analytics --all`
after the operator edits the file). Matching is whole-word and case-insensitive, one compiled
regular expression per topic, so tagging a message costs microseconds.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


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


def _pattern(words: list[str]) -> re.Pattern[str] | None:
    words = [word.strip() for word in words if isinstance(word, str) and word.strip()]
    if not words:
        return None
    alternatives = "|".join(re.escape(word).replace(r"\ ", r"\s+") for word in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def parse(path: Path) -> Taxonomy:
    """Read and check a taxonomy file; errors name the file and the problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ImproperlyConfigured(f"ANALYTICS_TOPICS_FILE {path}: {exc}") from None
    topics: list[tuple[str, re.Pattern[str]]] = []
    for name, table in (data.get("topics") or {}).items():
        keywords = table.get("keywords") if isinstance(table, dict) else None
        if not isinstance(keywords, list):
            raise ImproperlyConfigured(f"ANALYTICS_TOPICS_FILE {path}: [topics.{name}] needs a 'keywords' list")
        pattern = _pattern(keywords)
        if pattern is not None:
            topics.append((name, pattern))
    escalation = data.get("escalation") or {}
    events = escalation.get("events", [])
    return Taxonomy(
        topics=tuple(topics),
        escalation=_pattern(escalation.get("phrases", [])),
        escalation_events=frozenset(event for event in events if isinstance(event, str)),
    )


@functools.cache
def get() -> Taxonomy:
    """The configured taxonomy."""
    return parse(settings.ANALYTICS_TOPICS_FILE)


def reload() -> Taxonomy:
    """Forget the cached taxonomy and read the file again."""
    get.cache_clear()
    return get()

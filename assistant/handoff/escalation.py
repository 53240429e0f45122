"""The phrases with which a visitor asks for a person: the `[escalation]` table of the topics file.

The operator keeps one file (ANALYTICS_TOPICS_FILE, TOML; the shipped one is
analytics/data/topics.toml). The chat reads its `[escalation]` table here, to offer "Talk to a
person" when a visitor's message asks for one (`ack.asks_for_person`); analytics counts the same
phrases and event names as escalations by importing them from here (`analytics.taxonomy`), so
there is one list and one way to match it. Matching is whole-word and case-insensitive, and a
space in a phrase matches any run of whitespace.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True, slots=True)
class Escalation:
    """Escalation phrases (one compiled pattern) and the widget event names that also escalate."""

    pattern: re.Pattern[str] | None
    events: frozenset[str]

    def asks_for_person(self, text: str) -> bool:
        """Whether `text` asks to be handed to a person."""
        return self.pattern is not None and self.pattern.search(text) is not None


def word_pattern(words: list[Any]) -> re.Pattern[str] | None:
    """One whole-word, case-insensitive pattern for `words` (None when there are none)."""
    words = [word.strip() for word in words if isinstance(word, str) and word.strip()]
    if not words:
        return None
    alternatives = "|".join(re.escape(word).replace(r"\ ", r"\s+") for word in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed topics file; errors name the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ImproperlyConfigured(f"ANALYTICS_TOPICS_FILE {path}: {exc}") from None


def from_data(data: dict[str, Any]) -> Escalation:
    """The escalation rules of a parsed topics file (its `[escalation]` table)."""
    table = data.get("escalation") or {}
    if not isinstance(table, dict):
        table = {}
    phrases, events = table.get("phrases"), table.get("events")
    phrases = phrases if isinstance(phrases, list) else []
    events = events if isinstance(events, list) else []
    return Escalation(
        pattern=word_pattern(phrases), events=frozenset(event for event in events if isinstance(event, str))
    )


@functools.cache
def get() -> Escalation:
    """The configured escalation rules (read once per process)."""
    return from_data(read_toml(settings.ANALYTICS_TOPICS_FILE))


def reload() -> Escalation:
    """Forget the cached rules and read the file again."""
    get.cache_clear()
    return get()

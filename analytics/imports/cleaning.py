"""What is dropped from a conversation before it is stored, and its content hash.

* Autoresponses: company messages (roles agent and assistant) matching one of
  `IMPORT_AUTORESPONSE_PATTERNS`. A pattern is a case-insensitive substring, or, prefixed with
  `re:`, a case-insensitive regular expression searched anywhere in the text. Customer messages
  are never dropped (a customer typing `*977#` asked something).
* Duplicates: a message with the same time, role and text as one already kept in the
  conversation (exports that list a message twice).

The hash covers what is stored (after dropping), so a changed pattern list changes the hash of
the conversations it affects, and re-importing then updates them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from analytics.imports.records import Conversation, Message


class Autoresponses:
    """The configured patterns, compiled once into one regular expression."""

    def __init__(self, patterns: Iterable[str]) -> None:
        parts = [item[3:] if item.startswith("re:") else re.escape(item) for item in patterns if item]
        self._pattern = re.compile("|".join(f"(?:{part})" for part in parts), re.IGNORECASE) if parts else None

    def matches(self, text: str) -> bool:
        """Whether `text` is an automated reply."""
        return self._pattern is not None and self._pattern.search(text) is not None


@dataclass(slots=True)
class Cleaned:
    """A conversation's kept messages, and how many of each kind were dropped."""

    messages: list[Message]
    autoresponses: int
    duplicates: int


def clean(conversation: Conversation, autoresponses: Autoresponses) -> Cleaned:
    """The messages that count: autoresponses and duplicates dropped, file order kept."""
    kept: list[Message] = []
    seen: set[tuple[object, str, str]] = set()
    dropped_auto = dropped_dup = 0
    for message in conversation.messages:
        if message.role != "user" and autoresponses.matches(message.text):
            dropped_auto += 1
            continue
        key = (message.at, message.role, message.text)
        if key in seen:
            dropped_dup += 1
            continue
        seen.add(key)
        kept.append(message)
    return Cleaned(kept, dropped_auto, dropped_dup)


def content_hash(conversation: Conversation, messages: list[Message]) -> str:
    """SHA-256 of what the import stores of a conversation (its kept messages and its other fields)."""
    digest = hashlib.sha256()
    head = [
        conversation.customer_id,
        conversation.customer_name,
        conversation.rating,
        conversation.resolved,
        conversation.metadata,
    ]
    digest.update(json.dumps(head, sort_keys=True, ensure_ascii=False, default=str).encode())
    for message in messages:
        digest.update(b"\x1e")
        digest.update(f"{message.role}\x1f{message.at.isoformat()}\x1f{message.author}\x1f".encode())
        digest.update(message.text.encode())
    return digest.hexdigest()

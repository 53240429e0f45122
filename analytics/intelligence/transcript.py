"""The conversation as the model reads it, its cap, and its content hash.

The hash is taken over the whole normalised transcript (roles and texts, whitespace collapsed,
Unicode NFC), not over the capped one: it says whether the conversation changed, whatever
ANALYSIS_MAX_CHARS is. With `ANALYSIS_VERSION` it is the cache key of an analysis.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

#: How each stored role is named to the model.
SPEAKERS = {"user": "Visitor", "assistant": "Assistant", "agent": "Agent"}


@dataclass(frozen=True, slots=True)
class Line:
    """One message of the conversation."""

    role: str  # user, assistant or agent
    text: str


def normalise(lines: list[Line]) -> list[Line]:
    """Known roles only, texts NFC with whitespace collapsed, empty ones dropped."""
    kept = []
    for line in lines:
        text = " ".join(unicodedata.normalize("NFC", line.text).split())
        if line.role in SPEAKERS and text:
            kept.append(Line(line.role, text))
    return kept


def render(lines: list[Line]) -> str:
    """`Visitor: …` / `Assistant: …` / `Agent: …`, one message a line."""
    return "\n".join(f"{SPEAKERS[line.role]}: {line.text}" for line in lines)


def content_hash(lines: list[Line]) -> str:
    """SHA-256 of the normalised transcript."""
    return hashlib.sha256(render(normalise(lines)).encode()).hexdigest()


def capped(text: str, max_chars: int) -> str:
    """`text`, or its start and its end with a marker between when longer than `max_chars`.

    Both ends matter: the opening says what the visitor wanted, the end whether they got it.
    """
    if len(text) <= max_chars:
        return text
    marker = "\n[… {} characters left out …]\n"
    room = max_chars - len(marker.format(len(text)))
    head = room // 2
    tail = room - head
    return text[:head] + marker.format(len(text) - head - tail) + text[len(text) - tail :]

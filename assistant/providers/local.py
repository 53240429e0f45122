"""The offline local assistant: answers only from the knowledge base, never invents.

It needs no network and no key, so `make run` serves real answers out of the box, and it stays
the last resort behind the cloud providers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from assistant.knowledge import SearchHit
from assistant.providers.base import AIProvider, ReplyRequest, StreamEvent, TextChunk, UsageReport

_PIECE = re.compile(r"\S+\s*|\s+")
MAX_SECTION_CHARS = 1500
SECOND_SECTION_RATIO = 0.75


class LocalProvider(AIProvider):
    """Stream the best-matching knowledge sections, naming them as sources."""

    name = "local"

    def __init__(self, *, model: str = "knowledge-base", token_delay_ms: int = 20, chunk_words: int = 1) -> None:
        super().__init__(model=model)
        self.token_delay_s = token_delay_ms / 1000
        self.chunk_words = chunk_words

    async def stream(self, request: ReplyRequest) -> AsyncIterator[StreamEvent]:
        """Yield the composed answer word by word (or in `chunk_words` groups)."""
        text = compose_answer(request)
        chunks = split_chunks(text, self.chunk_words)
        for index, chunk in enumerate(chunks):
            if index and self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            yield TextChunk(chunk)
        prompt_chars = len(request.query) + sum(len(hit.section.text) for hit in request.hits)
        # Nothing is billed; token counts are a chars/4 estimate so analytics stay comparable.
        yield UsageReport(input_tokens=-(-prompt_chars // 4), output_tokens=-(-len(text) // 4), estimated=True)


def compose_answer(request: ReplyRequest) -> str:
    """The reply text: the best section (and a close second), or an honest 'I don't know'."""
    hits = used_hits(request.hits)
    if not hits:
        lines = [
            "I'm sorry, I don't know the answer to that: it isn't covered in my knowledge base, "
            "and I'd rather not guess."
        ]
        if request.quick_replies:
            lines.append("\nHere are some things I can help with:")
            lines.extend(f"- {reply}" for reply in request.quick_replies)
        return "\n".join(lines)
    parts = []
    for hit in hits:
        parts.append(f"**{hit.section.title}**\n\n{_trim(hit.section.text)}")
    sources = "; ".join(hit.section.label for hit in hits)
    return "\n\n".join(parts) + f"\n\nSources: {sources}"


def used_hits(hits: tuple[SearchHit, ...]) -> list[SearchHit]:
    """The hits an answer is built from: the best, plus the second if it scores close to it."""
    if not hits:
        return []
    chosen = [hits[0]]
    if len(hits) > 1 and hits[1].score >= hits[0].score * SECOND_SECTION_RATIO:
        chosen.append(hits[1])
    return chosen


def split_chunks(text: str, chunk_words: int) -> list[str]:
    """Split into word chunks keeping whitespace, so joining them gives back `text`."""
    if chunk_words <= 0:
        return [text]
    pieces = _PIECE.findall(text)
    return ["".join(pieces[i : i + chunk_words]) for i in range(0, len(pieces), chunk_words)]


def _trim(text: str) -> str:
    if len(text) <= MAX_SECTION_CHARS:
        return text
    cut = text.rfind("\n\n", 0, MAX_SECTION_CHARS)
    if cut < MAX_SECTION_CHARS // 3:
        cut = text.rfind(" ", 0, MAX_SECTION_CHARS)
    if cut < MAX_SECTION_CHARS // 3:
        cut = MAX_SECTION_CHARS  # one long word (a URL, a base64 blob): cut it
    return text[:cut].rstrip() + " …"

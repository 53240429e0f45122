"""BM25 search over the knowledge base, rebuilt when its files change.

Scores are only meaningful relative to the corpus, so a hit must pass two gates before the
assistant may answer from it: a minimum BM25 score and a minimum share of the question's
content words found in the section. Below either, the assistant says it does not know.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import bm25s
import Stemmer
from bm25s.stopwords import STOPWORDS_EN
from django.conf import settings

from assistant.knowledge.loader import Section, load_sections

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
# Question words carry no topic: "how do I embed…" is about "embed".
_STOPWORDS = frozenset(STOPWORDS_EN) | {
    "how",
    "do",
    "does",
    "did",
    "what",
    "which",
    "who",
    "whom",
    "why",
    "when",
    "where",
    "can",
    "could",
    "i",
    "me",
    "my",
    "we",
    "our",
    "you",
    "your",
    "it's",
    "i'm",
    "is",
    "are",
    "am",
    "should",
    "would",
    "please",
    "hi",
    "hello",
    "thanks",
    "thank",
    "get",
    "make",
    "want",
    "need",
    "use",
    "using",
    "parley",
}
_MIN_COVERAGE = 0.5


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A section with its BM25 score and the share of query terms it contains."""

    section: Section
    score: float
    coverage: float


class KnowledgeBase:
    """Sections of one folder plus their BM25 index; thread-safe, reloads on change."""

    def __init__(self, directory: Path, *, reload_check_s: float = 2.0) -> None:
        self.directory = directory
        self.reload_check_s = reload_check_s
        self._stemmer = Stemmer.Stemmer("english")
        self._lock = threading.Lock()
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._checked_at = 0.0
        self._sections: list[Section] = []
        self._terms: list[frozenset[str]] = []
        self._index: bm25s.BM25 | None = None
        self.version = "empty"

    @property
    def sections(self) -> list[Section]:
        """The current sections (reloading first if the files changed)."""
        self._refresh()
        return self._sections

    def tokenize(self, text: str) -> list[str]:
        """Lower-case, drop stop words, stem: the same for documents and questions."""
        words = [word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]
        return self._stemmer.stemWords(words)

    def search(self, query: str, *, limit: int = 3) -> list[SearchHit]:
        """The best sections for `query` that pass the relevance gates, best first."""
        self._refresh()
        index, sections, terms = self._index, self._sections, self._terms
        query_terms = set(self.tokenize(query))
        if index is None or not query_terms:
            return []
        scores = index.get_scores(list(query_terms))
        ranked = sorted(range(len(sections)), key=lambda i: -float(scores[i]))
        hits: list[SearchHit] = []
        for position in ranked[: max(limit * 3, limit)]:
            score = float(scores[position])
            coverage = len(query_terms & terms[position]) / len(query_terms)
            if score >= settings.KNOWLEDGE_MIN_SCORE and coverage >= _MIN_COVERAGE:
                hits.append(SearchHit(section=sections[position], score=round(score, 3), coverage=round(coverage, 3)))
            if len(hits) == limit:
                break
        return hits

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._signature is not None and now - self._checked_at < self.reload_check_s:
            return
        with self._lock:
            if self._signature is not None and now - self._checked_at < self.reload_check_s:
                return
            signature = self._file_signature()
            self._checked_at = now
            if signature == self._signature:
                return
            self._build(signature)

    def _file_signature(self) -> tuple[tuple[str, int, int], ...]:
        if not self.directory.is_dir():
            return ()
        entries = []
        for path in sorted(self.directory.rglob("*.md")):
            stat = path.stat()
            entries.append((path.as_posix(), stat.st_mtime_ns, stat.st_size))
        return tuple(entries)

    def _build(self, signature: tuple[tuple[str, int, int], ...]) -> None:
        started = time.perf_counter()
        sections = load_sections(self.directory) if self.directory.is_dir() else []
        # The heading is repeated so that a word in the title outweighs one in passing.
        corpus = [self.tokenize(f"{s.document} {s.title} {s.title} {s.text}") for s in sections]
        index = None
        if sections:
            index = bm25s.BM25()
            index.index([tokens or ["_"] for tokens in corpus], show_progress=False)
        digest = hashlib.sha256()
        for section in sections:
            digest.update(f"{section.id}\0{section.text}\0".encode())
        self._sections, self._index = sections, index
        self._terms = [frozenset(tokens) for tokens in corpus]
        self.version = digest.hexdigest()[:16] if sections else "empty"
        self._signature = signature
        if not sections:
            logger.warning(
                "Knowledge base %s has no sections: the local assistant will not know anything", self.directory
            )
        else:
            logger.info(
                "Knowledge base %s: %d sections from %d files indexed in %.0f ms (version %s)",
                self.directory,
                len(sections),
                len(signature),
                (time.perf_counter() - started) * 1000,
                self.version,
            )


@lru_cache(maxsize=8)
def _knowledge_base_for(directory: str, reload_check_s: float) -> KnowledgeBase:
    return KnowledgeBase(Path(directory), reload_check_s=reload_check_s)


def get_knowledge_base() -> KnowledgeBase:
    """The process-wide knowledge base for the configured KNOWLEDGE_DIR."""
    return _knowledge_base_for(str(settings.KNOWLEDGE_DIR), float(settings.KNOWLEDGE_RELOAD_CHECK_S))

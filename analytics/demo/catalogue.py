"""The demo's visitor texts with what the real knowledge search finds for them, computed once per run."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.conf import settings

from analytics.demo.vocabulary import ANNOYED, CURIOUS, GLAD, HUMAN, NO_ANSWER, TOPIC_QUESTIONS, TOPIC_WEIGHTS


@dataclass(frozen=True, slots=True)
class Query:
    """A visitor text before decoration, with what the assistant answers to it."""

    text: str
    kind: str  # question, glad, curious, annoyed, human
    sections: list[dict[str, Any]]  # knowledge_sections of the reply (one list shared by its replies)
    local_sections: list[dict[str, Any]]  # the local assistant quotes only the best section
    reply: str
    links: tuple[str, ...]  # documentation URLs of the sections (for link_click events)
    prompt_tokens: int


class Catalogue:
    """Every template with its knowledge hits, searched once with the real knowledge base."""

    def __init__(self) -> None:
        self.queries: dict[str, Query] = {}
        self.by_topic = {
            topic: [self._query(text, "question") for text in texts] for topic, texts in TOPIC_QUESTIONS.items()
        }
        self.topics = list(TOPIC_WEIGHTS)
        self.topic_weights = list(TOPIC_WEIGHTS.values())
        self.quick_replies = [self._query(text, "question") for text in settings.ASSISTANT_QUICK_REPLIES]
        self.glad = [self._query(text, "glad") for text in GLAD]
        self.curious = [self._query(text, "curious") for text in CURIOUS]
        self.annoyed = [self._query(text, "annoyed") for text in ANNOYED]
        self.human = [self._query(text, "human") for text in HUMAN]

    def random_topic(self, rng: random.Random) -> str:
        """A topic drawn by its share of sessions."""
        return rng.choices(self.topics, weights=self.topic_weights)[0]

    @cached_property
    def _search(self) -> Callable[[str], list[Any]]:
        try:
            from assistant.knowledge.index import get_knowledge_base

            knowledge = get_knowledge_base()
            knowledge.search("warm up")
        except Exception:  # no or broken knowledge base: replies cite nothing
            return lambda text: []
        return lambda text: knowledge.search(text, limit=settings.KNOWLEDGE_MAX_SECTIONS)

    def _query(self, text: str, kind: str) -> Query:
        if text in self.queries:
            return self.queries[text]
        hits = self._search(text) if kind in {"question", "curious"} else []
        sections = [{"id": hit.section.id, "title": hit.section.label, "score": hit.score} for hit in hits]
        if hits:
            best = hits[0].section
            excerpt = " ".join(best.text.replace("#", "").replace("`", "").split()[:70])
            labels = "; ".join(section["title"] for section in sections)
            reply = f"Here is what the documentation says about **{best.title}**:\n\n{excerpt}…\n\nSources: {labels}"
        else:
            reply = NO_ANSWER[kind]
        links = tuple(
            "https://docs.example.com/" + hit.section.id.replace(".md#", "#", 1).removesuffix(".md") for hit in hits
        )
        section_tokens = sum(min(400, len(hit.section.text) // 4) for hit in hits)
        query = Query(
            text=text,
            kind=kind,
            sections=sections,
            local_sections=sections[:1],
            reply=reply,
            links=links,
            prompt_tokens=len(text) // 4 + section_tokens,
        )
        self.queries[text] = query
        return query

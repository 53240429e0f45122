"""The knowledge base: Markdown files chunked by heading, searched with BM25."""

from assistant.knowledge.index import KnowledgeBase, SearchHit, get_knowledge_base
from assistant.knowledge.loader import Section, load_sections

__all__ = ["KnowledgeBase", "SearchHit", "Section", "get_knowledge_base", "load_sections"]

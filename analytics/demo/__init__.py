"""Demo data: a realistic chat history for an empty database (`manage.py seed_demo_data`).

A new installation has nothing to show on the analytics dashboard, and the analytics benchmark
(`bench/analytics_scale.py`) needs volume. This writes demo conversations over the last
`--days` days, then builds their analytics the way recovery does (`analytics_recover`, then
`rollups_rebuild`), so every number on the dashboard comes from the same code as for real chats.

What the history looks like (all drawn from `random.Random(--seed)`: the same options and
`--now` give the same rows, apart from the random public ids and client ids):

* Sessions start more on weekdays and in business hours (local `TIME_ZONE`), traffic grows
  by about a third over the period; 70 % anonymous visitors, the rest identified clients and
  providers (repeat visitors from a pool of identities).
* About 5 visitor turns per session (so ~10 messages; 100,000 sessions give ~1,000,000
  messages). Visitor texts come from templates that hit the taxonomy's topics
  (`analytics/data/topics.toml`), follow-ups that are glad or annoyed depending on how the chat
  goes, and in ~6 % of sessions a request for a human (`escalate` events, agent messages).
* Replies name the knowledge sections the real search finds for the question, and go through
  the provider chain most deployments configure: OpenAI `gpt-4.1-mini`, then Anthropic
  `claude-haiku-4-5`, Gemini `gemini-2.5-flash` and the local assistant. Each attempt is a
  `ProviderCall` row, as the router writes them: retries, failovers before any text
  (`fallback_from`), mid-stream failovers (an `interrupted` reply followed by its replacement),
  replies stopped by the visitor, timed-out replies, two provider outages where the breaker
  skips OpenAI, and one title call per session. A second server pool (5 % of sessions) runs an
  OpenAI-compatible `llama3.1:8b`, which has no price ("price unknown" in the reports) and no
  fallback (its failures are failed replies). Some FAQ first questions are answered from the
  response cache (local assistant, `cached`, no provider call).
* Thumbs up/down on ~20 % of replies (mostly up), an end-of-chat rating on ~15 % of sessions,
  widget events (`widget_open`, `quick_reply`, `link_click`), and ~40 % of sessions ended.

Rows are inserted in batches of whole sessions, one transaction each, with `COPY` on Postgres
(1,000,000 messages take minutes, not hours). The command refuses a database that already has
chat sessions unless `--append` is given, and never prompts: demo data must not mix with real
conversations by accident. It exits with status 3 when it refuses (`make demo` treats that as
"nothing to do").

The package, by subject: `vocabulary` (the texts, from `analytics/data/demo_vocabulary.toml`),
`catalogue` (those texts with their knowledge hits), `sessions` (who comes when and how the chat
goes), `replies` (each reply and its provider calls), `drafts` (the model rows while a session is
drawn) and `writing` (batches into the database).
"""

from __future__ import annotations

from analytics.demo.catalogue import Catalogue
from analytics.demo.sessions import Generator
from analytics.demo.vocabulary import ANNOYED, GLAD, HUMAN, TOPIC_QUESTIONS
from analytics.demo.writing import BATCH_SESSIONS, Batch, Writer, analyze

#: Exit status when the database already has chat sessions and --append was not given.
REFUSED_EXIT_STATUS = 3

__all__ = [
    "ANNOYED",
    "BATCH_SESSIONS",
    "GLAD",
    "HUMAN",
    "REFUSED_EXIT_STATUS",
    "TOPIC_QUESTIONS",
    "Batch",
    "Catalogue",
    "Generator",
    "Writer",
    "analyze",
]

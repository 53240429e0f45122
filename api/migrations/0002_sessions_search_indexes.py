"""Indexes for the staff API's sessions listing on Postgres (none on SQLite, where the data is small).

- `q` (text in the title or in what the visitor or an agent wrote): trigram GIN indexes (pg_trgm)
  on `upper(title)` and on `upper(text)` of visitor and agent messages, which serve Django's
  `icontains` (`UPPER(x::text) LIKE UPPER(%s)`). Assistant replies are not indexed (nor searched):
  their text is rewritten at every streaming checkpoint, and every rewrite of an indexed text
  would add its trigrams again; visitor and agent messages are written once.
  The index is partial, so the planner takes its estimates of `q` (how many messages match,
  which decides the plan: `api.staff.selectors.sessions.text_match`) from an expression
  statistics object on `upper(text)` (Postgres 14+), gathered by the ANALYZE below.
- `topic`: a GIN index (jsonb_path_ops) on `topics_discussed`, for the `@>` containment test.

Built CONCURRENTLY (outside a transaction) so that a live chat keeps writing while they build.
Without the right to create the pg_trgm extension (it is "trusted" since Postgres 13: a database
owner may), the trigram indexes are skipped with a warning and `q` still works, only slower.
These live in the API's migrations, not the chat's, because only the API reads them.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

TRIGRAM = [
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatsession_title_trgm_idx "
    "ON assistant_chatsession USING gin (upper(title) gin_trgm_ops)",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatmessage_text_trgm_idx "
    "ON assistant_chatmessage USING gin (upper(text) gin_trgm_ops) WHERE role IN ('user', 'agent')",
]
TOPICS = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatanalytics_topics_idx "
    "ON analytics_chatanalytics USING gin (topics_discussed jsonb_path_ops)"
)
STATISTICS = "CREATE STATISTICS IF NOT EXISTS chatmessage_text_upper_stats ON (upper(text)) FROM assistant_chatmessage"
NAMES = ["chatsession_title_trgm_idx", "chatmessage_text_trgm_idx", "chatanalytics_topics_idx"]


def create(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(TOPICS)
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except Exception as exc:  # no right to create it: search works, without its index
            print(f"\n  pg_trgm unavailable ({exc}): the sessions search (q) will scan instead of using an index.")
            return
        for statement in TRIGRAM:
            cursor.execute(statement)
        if connection.pg_version >= 140000:  # expression statistics are Postgres 14+
            cursor.execute(STATISTICS)
            cursor.execute("ANALYZE assistant_chatmessage")


def drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in NAMES:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        cursor.execute("DROP STATISTICS IF EXISTS chatmessage_text_upper_stats")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("api", "0001_initial"),
        ("assistant", "0008_chatsession_source"),
        ("analytics", "0002_human_support"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
